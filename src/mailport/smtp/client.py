"""SMTP submission (465 implicit TLS, 587 STARTTLS) on aiosmtplib, with mailport's auth rules.

aiosmtplib does the protocol; this module adds what mailport needs around it:

* the same security rules as the IMAP client: TLS or STARTTLS by default, plain only when
  explicitly allowed, credentials never over an unencrypted connection unless allowed,
  certificates verified (custom CA file; opt-in skip-verify logs a warning);
* PLAIN, LOGIN, XOAUTH2 and OAUTHBEARER from :mod:`mailport.sasl` credentials (a token may
  come from an async callable, fetched at connect time);
* only a mechanism the server advertised is sent (:func:`mailport.sasl.choose_mechanism`);
  PLAIN and LOGIN are sent by this module too (not aiosmtplib's ``auth_*``), so that every
  mechanism shares the next rule;
* when a server rejects ``AUTH <mech> <initial-response>`` as too long (Dovecot's submission
  service answers ``500 5.5.2 Line too long`` to a 2-3 KB Microsoft token, or to a long
  password), the AUTH is retried once without the initial response, sending it after the
  ``334`` instead;
* the OAuth error challenge (``334 <base64 JSON>``) is answered and decoded into the error;
* aiosmtplib's exceptions are translated here, once, keeping the reply code
  (``smtp_code``) and the server's text (``server_said``);
* the transaction primitives :meth:`SmtpClient.write`, :meth:`SmtpClient.read_reply`,
  :meth:`SmtpClient.drain` and :meth:`SmtpClient.rset` for the outbound queue's transport
  (:mod:`mailport.sending.smtp_transport`), which needs what ``send_message`` cannot give:
  a pause before the final ``.`` of DATA, and PIPELINING (RFC 2920).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, Self

import aiosmtplib
from aiosmtplib import SMTPResponse
from aiosmtplib.protocol import SMTPProtocol

from mailport import sasl
from mailport.errors import (
    AuthenticationError,
    AuthUnavailableError,
    ConnectError,
    ConnectionLostError,
    InsecureAuthRefusedError,
    InvalidCredentialsError,
    MailportError,
    MailTimeoutError,
    ProviderError,
    SMTPRejectedError,
    TLSError,
    UnsupportedFeatureError,
)
from mailport.imap.models import TLSInfo
from mailport.imap.transport import shared_context, tls_info
from mailport.net.connect import open_socket
from mailport.net.guard import HostGuard
from mailport.net.signin import signed_in
from mailport.net.trust import certificate_error
from mailport.servers import DEFAULT_PORTS, Security

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SendResult:
    """What the server answered to the message (``250 2.0.0 Ok: queued as …``)."""

    code: int
    text: str
    refused: dict[str, tuple[int, str]]  # recipients the server refused while accepting others


def _ssl_cause(exc: BaseException) -> ssl.SSLError | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def translate(exc: Exception, where: str) -> MailportError:
    """aiosmtplib/ssl/OS errors -> the mailport error tree (the caller chains the cause)."""
    cause = _ssl_cause(exc)
    if isinstance(cause, ssl.SSLCertVerificationError):
        return certificate_error(cause, where)
    if cause is not None:
        return TLSError(f"{where}: TLS failed: {cause.reason or cause}")
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return _auth_refused(  # aiosmtplib's own AUTH methods: PLAIN and LOGIN, i.e. a password
            f"{where}: authentication failed: {exc.code} {exc.message}", exc.code, exc.message, password=True
        )
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        first = exc.recipients[0]
        said = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
        return SMTPRejectedError(
            f"{where}: all recipients refused: {said}", smtp_code=first.code, server_said=said
        )
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return SMTPRejectedError(
            f"{where}: {exc.code} {exc.message}", smtp_code=exc.code, server_said=exc.message
        )
    if isinstance(exc, aiosmtplib.SMTPTimeoutError | TimeoutError):
        return MailTimeoutError(f"{where}: the SMTP server did not answer in time")
    if isinstance(exc, aiosmtplib.SMTPServerDisconnected):
        return ConnectionLostError(f"{where}: the SMTP server closed the connection: {exc}")
    if isinstance(exc, aiosmtplib.SMTPConnectError | OSError):
        return ConnectError(f"{where}: {exc}")
    if isinstance(exc, aiosmtplib.SMTPNotSupported):
        return UnsupportedFeatureError(f"{where}: {exc}")
    return ProviderError(f"{where}: {exc}")


def _auth_refused(
    message: str, code: int, said: str, *, password: bool = False, **details: Any
) -> ProviderError:
    """A refused AUTH: 4xx is temporary (RFC 4954 454 "Temporary authentication failure", or a
    451 from an overloaded backend) and must not read as a wrong password; 535 to a password is
    "credentials invalid" (RFC 4954); other 5xx are refusals the troubleshooting catalog explains."""
    kind: type[ProviderError] = AuthenticationError
    if 400 <= code < 500:
        kind = AuthUnavailableError
    elif code == 535 and password:
        kind = InvalidCredentialsError
    return kind(message, server_said=said, smtp_code=code, **details)


def _too_long(response: SMTPResponse) -> bool:
    text = response.message.lower()
    return response.code in (500, 501, 504) and ("too long" in text or "line length" in text)


def _no_delay(sock: socket.socket) -> None:
    """TCP_NODELAY, which asyncio sets only on sockets it creates itself (``proto`` 6): without
    it the final ``.`` of DATA, a few bytes after the body, waits for the server's delayed ACK
    (~40 ms a message on Linux)."""
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _keep_replies(protocol: SMTPProtocol) -> None:
    """Make ``protocol`` keep the bytes it would drop.

    aiosmtplib discards what arrives while no command waits or while a parsed reply has not been
    picked up yet (its guard against unsolicited data). The replies to a pipelined group can
    arrive just then (the second packet before the task reading the first one ran), and would be
    lost; they go to the buffer instead, where :meth:`SmtpClient.read_reply` looks first.
    """
    received = protocol.data_received

    def data_received(data: bytes) -> None:
        waiter = protocol._response_waiter
        if waiter is not None and (waiter.done() or not protocol._response_pending):
            protocol._buffer.extend(data)
            return
        received(data)

    protocol.data_received = data_received  # type: ignore[method-assign]
    protocol._mailport_keeps_replies = True  # type: ignore[attr-defined]


class SmtpClient:
    """One SMTP submission session: :meth:`connect`, :meth:`authenticate`, :meth:`send`, :meth:`quit`."""

    def __init__(
        self,
        host: str,
        port: int | None = None,
        *,
        security: Security | str = Security.STARTTLS,
        ssl_context: ssl.SSLContext | None = None,
        ca_file: str | None = None,
        verify: bool = True,
        allow_plaintext: bool = False,
        allow_plaintext_auth: bool = False,
        timeout: float = 30.0,
        local_hostname: str | None = None,
        sock: socket.socket | None = None,
        server_hostname: str | None = None,
        guard: HostGuard | None = None,
    ) -> None:
        """``sock``: an already connected socket to use (e.g. from
        :func:`mailport.net.guard.connect_vetted`); TLS then verifies the certificate against
        ``server_hostname`` (default ``host``). Otherwise every connection is opened by
        :func:`mailport.net.connect.open_socket`: ``guard`` vets the host (the service passes its
        SSRF guard; None: the operator's, any address) and the vetted address is the one
        connected to."""
        self.security = Security.parse(security)
        self.host = host
        self.port = port or DEFAULT_PORTS["smtp"][self.security]
        if self.security is Security.NONE and not allow_plaintext:
            raise InsecureAuthRefusedError(
                f"{host}:{self.port}: an unencrypted SMTP connection needs allow_plaintext=True"
            )
        self.allow_plaintext_auth = allow_plaintext_auth
        if not verify and ssl_context is None:
            log.warning("%s:%s: TLS certificate verification is DISABLED (skip-verify)", host, self.port)
        context = ssl_context or shared_context(ca_file, verify)
        self._where = f"{host}:{self.port}"
        self._sock = sock
        self._guard = guard or HostGuard.for_operator()
        self._timeout = timeout
        self._smtp = aiosmtplib.SMTP(
            hostname=server_hostname or host,
            port=None,  # aiosmtplib never connects by itself: it is always handed a vetted socket
            use_tls=self.security is Security.SSL,
            start_tls=self.security is Security.STARTTLS,
            tls_context=context,
            timeout=timeout,
            local_hostname=local_hostname,
        )

    def __repr__(self) -> str:
        return f"SmtpClient({self.host!r}, {self.port}, security={self.security.value!r})"

    @classmethod
    async def open(
        cls, host: str, port: int | None = None, *, auth: sasl.Credentials | None = None, **kw: Any
    ) -> Self:
        return await signed_in(cls(host, port, **kw), auth)

    async def __aenter__(self) -> Self:
        if not self._smtp.is_connected:
            await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.quit()

    # ------------------------------------------------------------------ session

    async def _socket(self) -> socket.socket:
        """The socket given to the constructor (once), else a new one to a vetted address."""
        if self._sock is not None:
            sock, self._sock = self._sock, None
            return sock
        _vetted, sock = await open_socket(
            self._guard, self.host, self.port, timeout=self._timeout, field="smtp.host"
        )
        _no_delay(sock)
        return sock

    async def connect(self) -> None:
        """Connect, greeting, EHLO, and STARTTLS for the ``starttls`` security."""
        sock = await self._socket()
        try:
            await self._smtp.connect(sock=sock)
            if not self._smtp.esmtp_extensions:
                await self._smtp.ehlo()  # so that the AUTH mechanisms are known before authenticate()
        except (aiosmtplib.SMTPException, OSError, ssl.SSLError) as exc:
            self.close()
            error = translate(exc, self._where)
            if (
                isinstance(exc, aiosmtplib.SMTPException)
                and "STARTTLS" in str(exc)
                and _ssl_cause(exc) is None
            ):
                error = TLSError(f"{self._where}: STARTTLS failed: {exc}")
            raise error from exc

    # The same session one step at a time (connection tests time each step):
    # ``greet()`` (TCP/TLS and the 220 greeting), ``ehlo()``, ``starttls()``, ``authenticate()``.

    async def greet(self) -> str:
        """Open the connection (implicit TLS included) and read the greeting; no EHLO, no STARTTLS."""
        sock = await self._socket()
        try:
            response = await self._smtp.connect(start_tls=False, sock=sock)
        except (aiosmtplib.SMTPException, OSError, ssl.SSLError) as exc:
            self.close()
            raise translate(exc, self._where) from exc
        return f"{response.code} {response.message}"

    async def ehlo(self) -> dict[str, str]:
        """EHLO; returns the extensions the server offers."""
        try:
            await self._smtp.ehlo()
        except (aiosmtplib.SMTPException, OSError) as exc:
            self.close()
            raise translate(exc, self._where) from exc
        return self.extensions

    async def starttls(self) -> TLSInfo | None:
        """STARTTLS, then EHLO again; returns the TLS facts."""
        try:
            await self._smtp.starttls()
            await self._smtp.ehlo()
        except (aiosmtplib.SMTPException, OSError, ssl.SSLError) as exc:
            self.close()
            raise translate(exc, self._where) from exc
        return self.tls

    @property
    def encrypted(self) -> bool:
        transport = self._smtp.transport
        return transport is not None and transport.get_extra_info("ssl_object") is not None

    @property
    def tls(self) -> TLSInfo | None:
        transport = self._smtp.transport
        return tls_info(transport) if transport is not None and self.encrypted else None

    @property
    def extensions(self) -> dict[str, str]:
        return dict(self._smtp.esmtp_extensions)

    @property
    def auth_mechanisms(self) -> list[str]:
        return [m.upper() for m in self._smtp.server_auth_methods]

    async def authenticate(self, auth: sasl.Credentials) -> None:
        """Sign in with a mechanism the server advertised (:func:`mailport.sasl.choose_mechanism`)."""
        if not self.encrypted and not self.allow_plaintext_auth:
            self.close()
            raise InsecureAuthRefusedError(
                f"{self._where}: refusing to send credentials over an unencrypted connection"
            )
        mechanism = sasl.choose_mechanism(auth, self.auth_mechanisms, where=self._where)
        try:
            if isinstance(auth, sasl.PasswordAuth):
                password = auth.password.reveal()
                if mechanism == "PLAIN":
                    await self._sasl(mechanism, [sasl.plain(auth.username, password)])
                else:  # LOGIN: the user name, then the password after the server's 334
                    await self._sasl(mechanism, [auth.username.encode(), password.encode()])
            else:
                token = (await auth.access_token()).reveal()
                if mechanism == "XOAUTH2":
                    payload = sasl.xoauth2(auth.username, token)
                else:
                    payload = sasl.oauthbearer(auth.username, token, host=self.host, port=self.port)
                await self._sasl(mechanism, [payload])
        except MailportError:
            raise
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise translate(exc, self._where) from exc

    async def _sasl(self, mechanism: str, responses: list[bytes]) -> None:
        """AUTH with the first response as initial response, the others after each ``334``.

        When the server refuses the AUTH line as too long, AUTH is sent once more without the
        initial response, which then goes after the ``334`` like the others (RFC 4954 §4), for
        every mechanism alike. A ``334`` left over is an OAuth error challenge (answered to get
        the final reply) or, for a password mechanism, cancelled with ``*``.
        """
        encoded = [sasl.b64(r) for r in responses]
        pending = encoded[1:]
        response = await self._smtp.execute_command(b"AUTH", mechanism.encode(), encoded[0] or b"=")
        if _too_long(response):
            log.info(
                "%s: AUTH %s line too long (%s); retrying without initial response",
                self._where,
                mechanism,
                response.code,
            )
            response = await self._smtp.execute_command(b"AUTH", mechanism.encode())
            pending = encoded
        while response.code == 334 and pending:
            response = await self._smtp.execute_command(pending.pop(0))
        oauth_error: dict[str, Any] | None = None
        if response.code == 334 and mechanism in sasl.OAUTH_MECHANISMS:
            oauth_error = sasl.decode_oauth_error(response.message)
            response = await self._smtp.execute_command(b"AQ==" if mechanism == "OAUTHBEARER" else b"")
        elif response.code == 334:
            response = await self._smtp.execute_command(b"*")
        if response.code != 235:
            detail = sasl.describe_oauth_error(oauth_error)
            raise _auth_refused(
                f"{self._where}: {mechanism} authentication failed: {response.code} {response.message}"
                + (f" ({detail})" if detail else ""),
                response.code,
                response.message,
                password=mechanism not in sasl.OAUTH_MECHANISMS,
                oauth_error=oauth_error,
            )

    async def send(
        self, message: EmailMessage, *, sender: str | None = None, recipients: Sequence[str] | None = None
    ) -> SendResult:
        """Send ``message``; the envelope defaults to its From and To/Cc/Bcc headers."""
        try:
            refused, text = await self._smtp.send_message(message, sender=sender, recipients=recipients)
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise translate(exc, self._where) from exc
        # aiosmtplib returns the DATA reply's text only when the code was 250
        return SendResult(code=250, text=text, refused={k: (v.code, v.message) for k, v in refused.items()})

    # ------------------------------------------------------------------ transaction primitives

    @property
    def connected(self) -> bool:
        return self._smtp.is_connected

    def _protocol(self) -> SMTPProtocol:
        protocol = self._smtp.protocol
        if protocol is None or not protocol.is_connected:
            raise ConnectionLostError(f"{self._where}: the SMTP connection is closed")
        if not getattr(protocol, "_mailport_keeps_replies", False):
            _keep_replies(protocol)
        return protocol

    def write(self, data: bytes) -> None:
        """Queue ``data`` (one or more commands, or DATA's body) on the connection."""
        try:
            self._protocol().write(data)
        except (aiosmtplib.SMTPException, OSError) as exc:
            self.close()
            raise translate(exc, self._where) from exc

    async def read_reply(self, timeout: float | None = None) -> SMTPResponse:
        """The next reply, in order, also when several came in one packet (pipelined commands).

        aiosmtplib's protocol parses one reply per packet received and keeps the rest in its
        buffer; the replies to a pipelined group are taken from that buffer first. A timeout
        closes the connection: a late reply would be read as the next command's.
        """
        protocol = self._protocol()
        try:
            buffered = protocol._read_response_from_buffer()
            if buffered is not None:
                return buffered
            return await protocol.read_response(timeout=self._timeout if timeout is None else timeout)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            self.close()
            raise translate(exc, self._where) from exc

    async def drain(self, timeout: float | None = None) -> None:
        """Wait until the queued bytes are handed to the kernel (flow control, like a stream's drain)."""
        protocol = self._protocol()
        if not protocol._paused:  # below the high-water mark: nothing to wait for
            return
        try:
            await asyncio.wait_for(protocol._drain_helper(), self._timeout if timeout is None else timeout)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            self.close()
            raise translate(exc, self._where) from exc

    async def rset(self) -> None:
        """End a failed transaction, keeping the session (RFC 5321 §4.1.1.5)."""
        try:
            await self._smtp.rset()
        except (aiosmtplib.SMTPException, OSError) as exc:
            self.close()
            raise translate(exc, self._where) from exc

    async def quit(self) -> None:
        if self._smtp.is_connected:
            try:
                await self._smtp.quit()
            except (aiosmtplib.SMTPException, OSError):
                self.close()

    def close(self) -> None:
        self._smtp.close()


async def send_message(
    message: EmailMessage,
    *,
    host: str,
    port: int | None = None,
    auth: sasl.Credentials | None,
    sender: str | None = None,
    recipients: Sequence[str] | None = None,
    **options: Any,
) -> SendResult:
    """Connect, authenticate, send one message, quit."""
    client = await SmtpClient.open(host, port, auth=auth, **options)
    try:
        return await client.send(message, sender=sender, recipients=recipients)
    finally:
        await client.quit()
