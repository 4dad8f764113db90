"""mailport's asyncio POP3 client (RFC 1939, RFC 2449 CAPA, RFC 2595 STLS, RFC 5034 AUTH).

Why our own: Python's :mod:`poplib` is blocking (a thread per mailbox, no deadline per command,
no guarded socket), and PyPI has no maintained asyncio POP3 client: its POP3 packages are a
threaded downloader (``cs-pop3``), honeypots (``pop3pot``) or whole mail applications and
services. POP3 is small; the parts are:

* :mod:`~mailport.pop3.parser` -- pure framing (status lines, dot-stuffing, the ``.``
  terminator, listings, CAPA), tested on bytes;
* this module -- the session: the connection through the host guard
  (:func:`mailport.net.connect.open_socket`), TLS with mailport's trust (pinned certificates
  included), authentication, and one command at a time with a deadline.

Rules, as in the IMAP client (:mod:`mailport.imap.session`):

* Plain connections only with ``allow_plaintext``; credentials never sent unencrypted unless
  ``allow_plaintext_auth`` (:class:`~mailport.errors.InsecureAuthRefusedError`); bytes the
  server sent before the TLS handshake of STLS (response injection) are a protocol error.
* Every command has a deadline; when it passes, or the caller is cancelled, the connection is
  closed (a half-read response would desync the session) and
  :class:`~mailport.errors.MailTimeoutError` is raised.
* Lines and responses are bounded: a status line over :data:`~mailport.pop3.parser.MAX_STATUS_LINE`
  is a protocol error; a message over ``max_message_bytes`` is read to its end and dropped
  (``Retrieved.data`` is None), so the session stays usable.
* Refusals keep the server's words (``server_said``) and RFC 2449 / RFC 3206 response codes:
  ``[AUTH]`` a wrong password, ``[SYS/TEMP]`` a temporary failure, ``[IN-USE]`` and
  ``[LOGIN-DELAY]`` a locked maildrop (:class:`~mailport.errors.MaildropBusyError`).

Sessions are short (one per poll, see :mod:`mailport.connectors.pop3`), so the TLS read buffer
is asyncio's own rather than the IMAP client's small idle one.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Self

from mailport import sasl
from mailport.errors import (
    AuthenticationError,
    AuthUnavailableError,
    CommandError,
    ConnectError,
    ConnectionLostError,
    InsecureAuthRefusedError,
    InvalidCredentialsError,
    MaildropBusyError,
    MailportError,
    MailTimeoutError,
    ProtocolError,
    ProviderError,
    StartTLSNotOfferedError,
    TLSError,
)
from mailport.imap.transport import enable_keepalive, shared_context
from mailport.net.connect import open_socket
from mailport.net.guard import HostGuard
from mailport.net.signin import signed_in
from mailport.net.trust import certificate_error
from mailport.pop3.parser import (
    MAX_STATUS_LINE,
    MultiLineReader,
    Status,
    challenge_data,
    is_continuation,
    parse_capabilities,
    parse_listing,
    parse_status,
)
from mailport.servers import Security

log = logging.getLogger(__name__)

DEFAULT_PORTS = {Security.SSL: 995, Security.STARTTLS: 110, Security.NONE: 110}
DEFAULT_MAX_MESSAGE = 50 * 1024 * 1024
MAX_LISTING = 32 * 1024 * 1024  # UIDL/LIST/CAPA answers (a 100,000-message UIDL is ~2.5 MB)
READ_CHUNK = 64 * 1024
AUTH_LINE_LIMIT = 255  # RFC 5034 §4: a longer AUTH line sends its initial response after "+"

# RFC 2449 / RFC 3206 response codes of a refused login that mean something else than "wrong
# user name or password" (no code, or [AUTH], means that).
_LOGIN_REFUSALS: dict[str, type[ProviderError]] = {
    "IN-USE": MaildropBusyError,
    "LOGIN-DELAY": MaildropBusyError,
    "SYS/TEMP": AuthUnavailableError,
    "SYS/PERM": AuthenticationError,
    "AUTH": InvalidCredentialsError,
}


@dataclass(frozen=True, slots=True)
class Retrieved:
    """A RETR/TOP answer: ``data`` (unstuffed, CRLF lines) or None when it was over the limit;
    ``size`` the bytes the server sent for it (stuffed)."""

    data: bytes | None
    size: int


class Pop3Client:
    """One POP3 session. Step-wise (``connect_tcp``, ``tls_handshake``, ``read_greeting``,
    ``capa``, ``stls``, ``authenticate``) so a connection check can time each step, or all at
    once with :meth:`open`."""

    def __init__(
        self,
        host: str,
        port: int | None = None,
        *,
        security: Security | str = Security.SSL,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        allow_plaintext: bool = False,
        allow_plaintext_auth: bool = False,
        connect_timeout: float = 15.0,
        command_timeout: float = 60.0,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE,
        guard: HostGuard | None = None,
    ) -> None:
        """``ssl_context``: mailport's trust for this server (a pinned certificate's context
        included); None: the system CAs. ``guard``: vets the host at every connection (the
        operator's, allowing any address, when None)."""
        self.host = host
        self.security = Security.parse(security)
        self.port = port or DEFAULT_PORTS[self.security]
        self.server_hostname = server_hostname or host
        if self.security is Security.NONE and not allow_plaintext:
            raise InsecureAuthRefusedError(
                f"{host}:{self.port}: an unencrypted POP3 connection needs allow_plaintext=True"
            )
        self.allow_plaintext_auth = allow_plaintext_auth
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self.max_message_bytes = max_message_bytes
        self.guard = guard or HostGuard.for_operator()
        self._ssl_context = ssl_context
        if ssl_context is None and self.security is not Security.NONE:
            self._ssl_context = shared_context(None, True)
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._buffer = bytearray()
        self._lock = asyncio.Lock()
        self._caps: dict[str, tuple[str, ...]] | None = None
        self._tls = False
        self._greeting: Status | None = None
        self._authenticated = False
        self._failed: MailportError | None = None

    def __repr__(self) -> str:
        return f"Pop3Client({self.host!r}, {self.port}, security={self.security.value!r})"

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    # ================================================================== connection steps

    @classmethod
    async def open(
        cls, host: str, port: int | None = None, *, auth: sasl.Credentials | None = None, **options: Any
    ) -> Self:
        """Connect (TCP, TLS or STLS, greeting, CAPA) and authenticate in one call."""
        return await signed_in(cls(host, port, **options), auth)

    async def connect(self) -> Status:
        """Every step before authentication, for the configured security; returns the greeting."""
        await self.connect_tcp()
        if self.security is Security.SSL:
            await self.tls_handshake()
        greeting = await self.read_greeting()
        await self.capa()
        if self.security is Security.STARTTLS:
            await self.stls()
        return greeting

    async def connect_tcp(self) -> None:
        """The TCP connection to an address the guard vetted (``connect_timeout``), with keepalive;
        a closed client connects afresh (nothing of the old session is kept)."""
        self.close()
        self._buffer.clear()
        self._caps, self._greeting, self._failed = None, None, None
        self._tls = self._authenticated = False
        try:
            async with asyncio.timeout(self.connect_timeout):
                _vetted, sock = await open_socket(
                    self.guard, self.host, self.port, timeout=self.connect_timeout, field="pop3.host"
                )
                try:
                    self._reader, self._writer = await asyncio.open_connection(sock=sock, limit=READ_CHUNK)
                except BaseException:
                    sock.close()
                    raise
        except MailportError:
            raise
        except TimeoutError as exc:
            raise MailTimeoutError(
                f"{self.where}: no TCP connection within {self.connect_timeout:g} s"
            ) from exc
        except OSError as exc:
            raise ConnectError(f"{self.where}: {exc.strerror or exc}") from exc
        enable_keepalive(self._writer.transport)

    async def tls_handshake(self) -> None:
        """Implicit TLS (POP3S), or the handshake after STLS's ``+OK``."""
        writer = self._require()[1]
        if self._ssl_context is None:
            raise TLSError(f"{self.where}: no TLS context (plain connection)")
        try:
            async with asyncio.timeout(self.connect_timeout):
                await writer.start_tls(
                    self._ssl_context,
                    server_hostname=self.server_hostname,
                    ssl_handshake_timeout=self.connect_timeout,
                )
        except TimeoutError as exc:
            self.close()
            raise MailTimeoutError(
                f"{self.where}: TLS handshake did not finish in {self.connect_timeout:g} s"
            ) from exc
        except ssl.SSLCertVerificationError as exc:
            self.close()
            raise certificate_error(exc, self.where) from exc
        except (ssl.SSLError, OSError) as exc:
            self.close()
            raise TLSError(
                f"{self.where}: TLS handshake failed: {getattr(exc, 'reason', None) or exc}"
            ) from exc
        self._tls = True

    async def read_greeting(self) -> Status:
        """The server's ``+OK`` greeting; ``-ERR`` (busy, refused) raises."""
        try:
            async with asyncio.timeout(self.connect_timeout):
                status = parse_status(await self._read_line())
        except TimeoutError as exc:
            self.close()
            raise MailTimeoutError(
                f"{self.where}: the server accepted the connection but sent no greeting "
                f"within {self.connect_timeout:g} s",
                hint="This port may not be POP3, or it expects TLS (try the other security mode).",
            ) from exc
        except MailportError:
            self.close()
            raise
        if not status.ok:
            self.close()
            raise ConnectError(
                f"{self.where}: the server refused the connection: {status.text}", server_said=status.said()
            )
        self._greeting = status
        return status

    async def capa(self) -> dict[str, tuple[str, ...]]:
        """CAPA (RFC 2449); a server without it (``-ERR``) has an empty capability list."""
        status, data = await self._multi(b"CAPA", limit=MAX_LISTING, refusal_ok=True)
        self._caps = parse_capabilities(data or b"") if status.ok else {}
        return self._caps

    async def stls(self) -> None:
        """STLS (RFC 2595), then CAPA again (capabilities may change once encrypted)."""
        if self._caps is not None and self._caps and "STLS" not in self._caps:
            self.close()
            raise StartTLSNotOfferedError(
                f"{self.where}: the server does not offer STLS",
                hint="Use POP3S (implicit TLS, usually port 995) or check the port.",
            )
        status = await self._simple(b"STLS", refusal_ok=True)
        if not status.ok:
            self.close()
            raise StartTLSNotOfferedError(
                f"{self.where}: the server refused STLS: {status.text}", server_said=status.said()
            )
        if self._buffer or (self._reader is not None and self._reader._buffer):  # type: ignore[attr-defined]
            self.close()
            raise ProtocolError(f"{self.where}: the server sent data before the TLS handshake")
        await self.tls_handshake()
        await self.capa()

    # ================================================================== state

    @property
    def capabilities(self) -> dict[str, tuple[str, ...]]:
        return dict(self._caps or {})

    def has(self, capability: str) -> bool:
        return capability.upper() in (self._caps or {})

    @property
    def sasl_mechanisms(self) -> tuple[str, ...]:
        return tuple(m.upper() for m in (self._caps or {}).get("SASL", ()))

    @property
    def encrypted(self) -> bool:
        return self._tls

    @property
    def greeting(self) -> Status | None:
        return self._greeting

    @property
    def connected(self) -> bool:
        return self._writer is not None and self._failed is None and not self._writer.is_closing()

    def close(self) -> None:
        """Drop the connection at once (no QUIT: the server applies no DELE)."""
        writer, self._writer = self._writer, None
        self._reader = None
        if writer is not None:
            writer.transport.abort()
        if self._failed is None:
            self._failed = ConnectionLostError(f"{self.where}: the connection was closed by mailport")

    # ================================================================== authentication

    async def authenticate(self, auth: sasl.Credentials) -> None:
        """USER/PASS or AUTH PLAIN for a password (PLAIN when the server offers it, unless
        ``mechanism="LOGIN"`` asks for USER/PASS), AUTH XOAUTH2/OAUTHBEARER for a token."""
        if not self.encrypted and not self.allow_plaintext_auth:
            self.close()
            raise InsecureAuthRefusedError(
                f"{self.where}: refusing to send credentials over an unencrypted connection"
            )
        if isinstance(auth, sasl.PasswordAuth):
            use_sasl = auth.mechanism == "PLAIN" or (
                auth.mechanism == "auto" and "PLAIN" in self.sasl_mechanisms
            )
            if use_sasl:
                await self._sasl("PLAIN", sasl.plain(auth.username, auth.password.reveal()))
            else:
                await self._user_pass(auth)
        else:
            if self._caps and "SASL" in self._caps:
                sasl.choose_mechanism(auth, self.sasl_mechanisms, where=self.where)
            token = await auth.access_token()
            if auth.mechanism == "XOAUTH2":
                payload = sasl.xoauth2(auth.username, token.reveal())
            else:
                payload = sasl.oauthbearer(
                    auth.username, token.reveal(), host=self.server_hostname, port=self.port
                )
            await self._sasl(auth.mechanism, payload)
        self._authenticated = True

    async def _user_pass(self, auth: sasl.PasswordAuth) -> None:
        status = await self._simple(b"USER " + auth.username.encode(), refusal_ok=True, name="USER")
        if status.ok:
            status = await self._simple(
                b"PASS " + auth.password.reveal().encode(), refusal_ok=True, name="PASS"
            )
        if not status.ok:
            raise login_refused(f"{self.where}: login failed: {status.text}", status, mechanism="USER/PASS")

    async def _sasl(self, mechanism: str, payload: bytes) -> None:
        encoded = sasl.b64(payload) or b"="
        oauth_error: dict[str, Any] | None = None
        line = b"AUTH " + mechanism.encode() + b" " + encoded
        initial = len(line) + 2 <= AUTH_LINE_LIMIT

        async def converse() -> Status:
            nonlocal oauth_error
            self._write((line if initial else b"AUTH " + mechanism.encode()) + b"\r\n")
            sent = initial
            while True:
                answer = await self._read_line()
                if not is_continuation(answer):
                    return parse_status(answer)
                if not sent:
                    self._write(encoded + b"\r\n")
                    sent = True
                    continue
                # a challenge after our response is an error report (OAuth: base64 JSON);
                # the empty response asks for the -ERR
                oauth_error = sasl.decode_oauth_error(challenge_data(answer)) or oauth_error
                self._write((b"AQ==" if mechanism == "OAUTHBEARER" else b"") + b"\r\n")

        status = await self._exchange(converse, name="AUTH")
        if status.ok:
            return
        if mechanism == "PLAIN":
            raise login_refused(
                f"{self.where}: PLAIN authentication failed: {status.text}", status, mechanism="PLAIN"
            )
        detail = sasl.describe_oauth_error(oauth_error)
        kind = _LOGIN_REFUSALS.get(status.code or "", AuthenticationError)
        if kind is InvalidCredentialsError:
            kind = AuthenticationError
        raise kind(
            f"{self.where}: {mechanism} authentication failed: {status.text}"
            + (f" ({detail})" if detail else ""),
            server_said=status.said(),
            oauth_error=oauth_error,
            mechanism=mechanism,
            response_code=status.code,
        )

    # ================================================================== transaction state

    async def stat(self) -> tuple[int, int]:
        """(messages, octets) in the maildrop."""
        status = await self._simple(b"STAT")
        parts = status.text.split()
        if len(parts) < 2 or not (parts[0].isdigit() and parts[1].isdigit()):
            raise ProtocolError(f"{self.where}: unexpected STAT answer {status.line[:80]!r}")
        return int(parts[0]), int(parts[1])

    async def uidl(self) -> list[tuple[int, str]]:
        """(message number, unique id) of every message, in the server's order; a server without
        UIDL raises :class:`~mailport.errors.CommandError` (``-ERR``)."""
        _, data = await self._multi(b"UIDL", limit=MAX_LISTING)
        return parse_listing(data or b"", what="UIDL")

    async def list(self) -> list[tuple[int, int]]:
        """(message number, size in octets) of every message."""
        _, data = await self._multi(b"LIST", limit=MAX_LISTING)
        return [(n, int(size)) for n, size in parse_listing(data or b"", what="LIST")]

    async def retr(self, number: int, *, timeout: float | None = None) -> Retrieved:
        """The whole message (None over ``max_message_bytes``: read to its end and dropped)."""
        return await self._retrieve(b"RETR %d" % number, timeout)

    async def top(self, number: int, lines: int = 0, *, timeout: float | None = None) -> Retrieved:
        """The header block and the first ``lines`` body lines (TOP is optional in RFC 1939)."""
        return await self._retrieve(b"TOP %d %d" % (number, lines), timeout)

    async def _retrieve(self, command: bytes, timeout: float | None) -> Retrieved:
        reader = MultiLineReader(self.max_message_bytes)
        await self._multi(command, limit=self.max_message_bytes, reader=reader, timeout=timeout)
        return Retrieved(reader.data(), reader.size)

    async def dele(self, number: int) -> None:
        """Mark a message deleted; the server removes it only when QUIT ends the session."""
        await self._simple(b"DELE %d" % number)

    async def rset(self) -> None:
        await self._simple(b"RSET")

    async def noop(self) -> None:
        await self._simple(b"NOOP")

    async def quit(self) -> None:
        """QUIT: the server applies the DELEs (UPDATE state) and closes. A ``-ERR`` (some
        messages could not be removed) is a :class:`~mailport.errors.CommandError`."""
        try:
            await self._simple(b"QUIT")
        finally:
            self.close()

    # ================================================================== machinery

    def _require(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._failed is not None:
            raise ConnectionLostError(self._failed.message, server_said=self._failed.server_said)
        if self._reader is None or self._writer is None:
            raise ConnectionLostError(f"{self.where}: not connected")
        return self._reader, self._writer

    def _write(self, data: bytes) -> None:
        self._require()[1].write(data)

    async def _fill(self) -> None:
        reader = self._require()[0]
        try:
            chunk = await reader.read(READ_CHUNK)
        except (ConnectionError, ssl.SSLError, OSError) as exc:
            self._fail(ConnectionLostError(f"{self.where}: the connection broke: {exc}"))
            raise self._failed from exc  # type: ignore[misc]
        if not chunk:
            self._fail(ConnectionLostError(f"{self.where}: the server closed the connection"))
            raise self._failed  # type: ignore[misc]
        self._buffer += chunk

    def _fail(self, error: MailportError) -> None:
        self.close()
        self._failed = error

    async def _read_line(self) -> bytes:
        """One line up to its LF (CRLF kept), at most :data:`MAX_STATUS_LINE` bytes."""
        start = 0
        while True:
            end = self._buffer.find(b"\n", start, MAX_STATUS_LINE)
            if end >= 0:
                line = bytes(self._buffer[: end + 1])
                del self._buffer[: end + 1]
                return line.removesuffix(b"\n").removesuffix(b"\r") + b"\r\n"
            if len(self._buffer) > MAX_STATUS_LINE:
                self._fail(
                    ProtocolError(f"{self.where}: a response line longer than {MAX_STATUS_LINE} bytes")
                )
                raise self._failed  # type: ignore[misc]
            start = len(self._buffer)
            await self._fill()

    async def _exchange(self, work: Callable[[], Any], *, name: str, timeout: float | None = None) -> Any:
        """Run one command's exchange under the lock with a deadline; close on desync."""
        deadline = timeout if timeout is not None else self.command_timeout
        async with self._lock:
            self._require()
            try:
                async with asyncio.timeout(deadline):
                    return await work()
            except TimeoutError as exc:
                self._fail(MailTimeoutError(f"{self.where}: no answer to {name} within {deadline:g} s"))
                raise MailTimeoutError(
                    f"{self.where}: no answer to {name} within {deadline:g} s; the connection was closed"
                ) from exc
            except MailportError as exc:
                if isinstance(exc, ConnectionLostError | ProtocolError):
                    self.close()
                raise
            except BaseException:  # cancelled half-way: the stream position is unknown
                self.close()
                raise

    async def _simple(self, command: bytes, *, refusal_ok: bool = False, name: str | None = None) -> Status:
        label = name or command.split(b" ", 1)[0].decode()

        async def work() -> Status:
            self._write(command + b"\r\n")
            return parse_status(await self._read_line())

        status: Status = await self._exchange(work, name=label)
        if not status.ok and not refusal_ok:
            raise self._refused(label, status)
        return status

    async def _multi(
        self,
        command: bytes,
        *,
        limit: int,
        reader: MultiLineReader | None = None,
        refusal_ok: bool = False,
        timeout: float | None = None,
    ) -> tuple[Status, bytes | None]:
        """A command with a multi-line answer: its status and unstuffed data (None: refused,
        or over ``limit``)."""
        label = command.split(b" ", 1)[0].decode()
        body = reader or MultiLineReader(limit)

        async def work() -> Status:
            self._write(command + b"\r\n")
            status = parse_status(await self._read_line())
            if not status.ok:
                return status
            pending = bytes(self._buffer)
            self._buffer.clear()
            rest = body.feed(pending) if pending else None
            while rest is None:
                await self._fill()
                chunk = bytes(self._buffer)
                self._buffer.clear()
                rest = body.feed(chunk)
            self._buffer += rest
            return status

        status: Status = await self._exchange(work, name=label, timeout=timeout)
        if not status.ok:
            if refusal_ok:
                return status, None
            raise self._refused(label, status)
        if body.overflowed and reader is None:
            raise ProtocolError(f"{self.where}: the answer to {label} is larger than {limit} bytes")
        return status, body.data()

    def _refused(self, name: str, status: Status) -> CommandError:
        return CommandError(
            f"{self.where}: {name} failed: -ERR {status.text}",
            server_said=status.said(),
            response_code=status.code,
            status="-ERR",
        )


def login_refused(message: str, status: Status, **details: Any) -> ProviderError:
    """What a refused USER/PASS or AUTH PLAIN means: a wrong password unless an RFC 2449 /
    RFC 3206 response code says otherwise (``[SYS/TEMP]``, ``[IN-USE]`` are temporary)."""
    kind = _LOGIN_REFUSALS.get(status.code or "", InvalidCredentialsError)
    return kind(message, server_said=status.said(), response_code=status.code, **details)
