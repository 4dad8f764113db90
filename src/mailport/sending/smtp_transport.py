"""SMTP submission as the outbound queue's :class:`~mailport.sending.transport.Transport`.

Why not ``aiosmtplib.send_message``: the queue must record ``committing`` immediately before the
final ``.`` of DATA (the one point after which the server may have accepted the message), and at
the bench's rate the round trips matter. So the transaction is written here on the SMTP session
of :class:`mailport.smtp.SmtpClient` (which keeps TLS, STARTTLS, AUTH and the host guard):

* ``MAIL FROM``, every ``RCPT TO`` and ``DATA`` go in one write when the server offers PIPELINING
  (RFC 2920), one at a time otherwise. Every reply is read, in order; when no recipient (or the
  sender) was accepted but the server still answered ``354`` to DATA, a lone ``.`` ends it
  (RFC 2920 §3.1), then RSET.
* After ``354`` the dot-stuffed body is written and drained, ``committing()`` is awaited, and only
  then the final ``.``. When ``committing()`` raises, the session is closed without the final
  dot: the server discards the message.
* ``BODY=8BITMIME`` when the message has 8-bit parts and the server offers it; otherwise those
  parts are re-encoded (quoted-printable or base64, by the stdlib ``email`` package) before
  sending, as RFC 6152 §3 asks. ``SMTPUTF8`` (RFC 6531) when the message needs it; a server
  without it is refused with :class:`~mailport.errors.SMTPUTF8UnsupportedError` (no downgrade).
  ``SIZE=`` (RFC 1870) when offered; a message over the server's limit is never sent
  (:class:`~mailport.errors.MessageTooLargeError`).
* Sessions: up to ``connections`` at once, kept between messages (RSET after a failed
  transaction), closed after ``idle_seconds`` unused and by :meth:`SmtpTransport.aclose`. A kept
  session found dead (``421``, a closed connection) before ``committing`` is replaced once, inside
  :meth:`SmtpTransport.transmit`, by a fresh one. A ``421`` always drops the session.
* Auth: the mailbox's password (PLAIN/LOGIN), or OAuth (XOAUTH2/OAUTHBEARER) with a token from the
  token manager; a refused token is force-refreshed once and the session opened again.

Which failures are worth retrying is :func:`is_temporary_send_error` (4xx replies, lost or refused
connections, timeouts; never a 5xx, an authentication failure or a refused feature).

The Sent copy (:attr:`SmtpTransport.files_sent_copy`): Gmail and Google Workspace file every
message submitted over their SMTP (smtp.gmail.com) in the Sent folder themselves, so mailport must
not append a second copy ("Gmail files sent mail by itself"; nmail's maintainer: "many email service
providers (incl. gmail) handles the copying to sent mail internally"). For Microsoft 365 /
Outlook.com SMTP AUTH, Microsoft's own documentation of client submission
(https://learn.microsoft.com/exchange/mail-flow-best-practices/how-to-set-up-a-multifunction-device-or-application-to-send-email-using-microsoft-365-or-office-365)
says nothing about Sent Items; only third parties report that Exchange Online files SMTP AUTH
submissions (a mailserver issue thread, "This is already the behavior of Office 365 and Google
Apps", bitbucket.org/analogic/mailserver/issues/793; FreeITSM's guide lists "Microsoft 365 SMTP
AUTH" among servers that file sent mail). Undocumented behaviour is not relied on: Microsoft
answers ``False`` here, and the Sent copy's search for the Message-ID before APPEND
(:mod:`mailport.sending.sent_copy`) keeps it at one copy where Exchange did file one.
"""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
import io
import logging
import quopri
import re
import ssl
from dataclasses import dataclass, field
from email.generator import BytesGenerator
from email.message import Message

from aiosmtplib import SMTPResponse
from aiosmtplib.protocol import PERIOD_REGEX, normalize_message_line_endings

from mailport import sasl
from mailport.connectors.registry import ForceRefresh, TokenSource
from mailport.crypto import Secret
from mailport.diagnosis import Failure, diagnose
from mailport.errors import (
    AuthenticationError,
    ConnectionLostError,
    InputError,
    InvalidCredentialsError,
    MailportError,
    MessageTooLargeError,
    SendRefusedError,
    SmtpNotConfiguredError,
    SMTPRejectedError,
    SMTPUTF8UnsupportedError,
)
from mailport.failures import is_temporary
from mailport.mailboxes.models import AuthMethod, Mailbox, Security, ServerSettings
from mailport.net.guard import HostGuard
from mailport.sending.transport import Accepted, Committing, Outgoing
from mailport.smtp.client import SmtpClient

log = logging.getLogger(__name__)

__all__ = ["SmtpTransport", "files_sent_copy", "is_temporary_send_error", "seven_bit"]

# Google's submission servers file every message they accept in the account's Sent folder.
GOOGLE_SMTP_HOSTS = frozenset({"smtp.gmail.com", "smtp.googlemail.com"})
GOOGLE_PROVIDER_IDS = frozenset({"gmail", "google-workspace", "google", "gmail.com", "googlemail.com"})

CRLF = b"\r\n"
_UNSAFE_ADDRESS = re.compile(r"[\x00-\x20<>\x7f]")


def files_sent_copy(mailbox: Mailbox) -> bool:
    """Whether the provider stores the Sent copy of an SMTP submission itself (Gmail, Workspace)."""
    host = (mailbox.smtp.host if mailbox.smtp else "").lower().rstrip(".")
    provider = (mailbox.provider_id or "").lower()
    return host in GOOGLE_SMTP_HOSTS or provider in GOOGLE_PROVIDER_IDS


def is_temporary_send_error(exc: BaseException) -> bool:
    """A send failure worth retrying later: a 4xx reply, a lost/refused connection, a timeout, a
    server that could not check the credentials now. A 5xx, a refused login, an unsupported
    feature or an oversized message are permanent (a person must act)."""
    if isinstance(exc, SMTPRejectedError) and exc.smtp_code is not None and exc.smtp_code > 0:
        return 400 <= exc.smtp_code < 500
    if isinstance(exc, SendRefusedError):  # a mail API's refusal (Gmail, Graph) says which it is
        return exc.temporary
    return is_temporary(exc)


# --------------------------------------------------------------------------- 8BITMIME downgrade


def _has_8bit(data: bytes) -> bool:
    return not data.isascii()


def seven_bit(raw: bytes) -> bytes:
    """``raw`` with every 8-bit leaf part re-encoded (quoted-printable for mostly-ASCII text,
    base64 otherwise), for a server without 8BITMIME (RFC 6152 §3). Headers and the other parts
    are kept as they are (the stdlib ``email`` package in compat32 mode, no refolding)."""
    message = email.message_from_bytes(raw.replace(CRLF, b"\n"), policy=email.policy.compat32)
    for part in message.walk():
        if part.is_multipart():
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            continue
        cte = str(part.get("Content-Transfer-Encoding", "7bit")).strip().lower()
        if cte in {"base64", "quoted-printable"} or not _has_8bit(payload):
            if cte in {"8bit", "binary"}:
                part.replace_header("Content-Transfer-Encoding", "7bit")
            continue
        _reencode(part, payload)
    out = io.BytesIO()
    policy = email.policy.compat32.clone(linesep="\r\n", max_line_length=0)
    BytesGenerator(out, mangle_from_=False, policy=policy).flatten(message)
    return out.getvalue()


def _reencode(part: Message, payload: bytes) -> None:
    del part["Content-Transfer-Encoding"]
    mostly_ascii = sum(b > 0x7F for b in payload) * 6 <= len(payload)
    if part.get_content_maintype() == "text" and mostly_ascii:
        text = payload.replace(CRLF, b"\n")
        encoded = quopri.encodestring(text).decode("ascii")
        part.set_payload(encoded)
        part["Content-Transfer-Encoding"] = "quoted-printable"
    else:
        encoded = base64.encodebytes(payload).decode("ascii")
        part.set_payload(encoded)
        part["Content-Transfer-Encoding"] = "base64"


# --------------------------------------------------------------------------- sessions


@dataclass(eq=False)
class _Session:
    client: SmtpClient
    transactions: int = 0  # started on this session
    expiry: asyncio.TimerHandle | None = field(default=None, repr=False)


@dataclass
class _Progress:
    """How far a transaction went, to decide what is left of the session and whether a retry is safe."""

    started: bool = False  # a command was written (RSET needed after a failure)
    in_data: bool = False  # after 354: only the final dot (or a close) ends it
    committing: bool = False  # committing() was called: never retried


class _Stale(Exception):
    """A kept session turned out dead before committing (retried once on a fresh session)."""

    def __init__(self, error: MailportError) -> None:
        super().__init__(str(error))
        self.error = error


def _reply(response: SMTPResponse) -> str:
    return f"{response.code} {response.message}".strip()


def _dead(exc: BaseException) -> bool:
    """The session cannot be used any more: 421, a lost connection, a timeout."""
    if isinstance(exc, SMTPRejectedError):
        return exc.smtp_code == 421
    return isinstance(exc, ConnectionLostError | TimeoutError | OSError) or not isinstance(exc, MailportError)


class SmtpTransport:
    """A mailbox's SMTP submission: ``connections`` sessions at most, reused between messages."""

    def __init__(
        self,
        mailbox: Mailbox,
        *,
        token_source: TokenSource | None = None,
        force_refresh: ForceRefresh | None = None,
        guard: HostGuard | None = None,
        ssl_context: ssl.SSLContext | None = None,
        connections: int = 2,
        idle_seconds: float = 30,
        timeout: float = 60,
    ) -> None:
        """``ssl_context``: the trust for this server (the service's, its pin applied); None:
        the system CAs. ``guard``: vets the host at every connect (None: the operator's)."""
        if mailbox.smtp is None:
            raise SmtpNotConfiguredError(f"mailbox {mailbox.id} has no SMTP server")
        self.mailbox = mailbox
        self.server: ServerSettings = mailbox.smtp
        self.files_sent_copy = files_sent_copy(mailbox)
        self._token_source = token_source
        self._force_refresh = force_refresh
        self._guard = guard
        self._ssl_context = ssl_context
        self._timeout = timeout
        self._idle_seconds = idle_seconds
        self._slots = asyncio.Semaphore(max(1, connections))
        self._idle: list[_Session] = []
        self._busy: set[_Session] = set()
        self._closers: set[asyncio.Task[None]] = set()
        self._closed = False
        self._where = f"{self.server.host}:{self.server.port}"
        self.sessions_opened = 0  # how many SMTP sessions this transport opened (its logs say why)

    def __repr__(self) -> str:
        return f"SmtpTransport({self.server.host!r}, {self.server.port})"

    # ------------------------------------------------------------------ Transport

    async def transmit(self, message: Outgoing, *, committing: Committing) -> Accepted:
        """Send ``message`` on a free session; see the module docstring for the rules."""
        if self._closed:
            raise ConnectionLostError(f"{self._where}: the transport is closed")
        if not message.recipients:
            raise InputError("a message needs at least one recipient")
        for address in (message.sender, *message.recipients):
            if _UNSAFE_ADDRESS.search(address):
                raise InputError(f"not a usable envelope address: {address!r}", field="recipients")
        async with self._slots:
            session = await self._acquire()
            try:
                return await self._run(session, message, committing)
            except _Stale as stale:
                log.info("%s: kept SMTP session was dead (%s); sending on a fresh one", self._where, stale)
            session = await self._open()
            return await self._run(session, message, committing)  # a fresh session: never _Stale

    async def aclose(self) -> None:
        """QUIT every session (a transaction in progress keeps its own until it ends)."""
        self._closed = True
        idle, self._idle = self._idle, []
        for session in idle:
            self._quit_later(session)
        if self._closers:
            await asyncio.gather(*self._closers, return_exceptions=True)

    # ------------------------------------------------------------------ sessions

    async def _acquire(self) -> _Session:
        while self._idle:
            session = self._idle.pop()
            if session.expiry is not None:
                session.expiry.cancel()
                session.expiry = None
            if session.client.connected:
                self._busy.add(session)
                return session
            session.client.close()
        return await self._open()

    def _release(self, session: _Session) -> None:
        self._busy.discard(session)
        if self._closed or not session.client.connected:
            self._quit_later(session)
            return
        loop = asyncio.get_running_loop()
        session.expiry = loop.call_later(self._idle_seconds, self._expire, session)
        self._idle.append(session)

    def _drop(self, session: _Session) -> None:
        self._busy.discard(session)
        session.client.close()

    def _expire(self, session: _Session) -> None:
        if session in self._idle:
            self._idle.remove(session)
            log.debug("%s: SMTP session idle for %ss, closing", self._where, self._idle_seconds)
            self._quit_later(session)

    def _quit_later(self, session: _Session) -> None:
        async def quit() -> None:
            try:
                await asyncio.wait_for(session.client.quit(), 5)
            except (TimeoutError, OSError, MailportError):
                session.client.close()

        task = asyncio.get_running_loop().create_task(quit())
        self._closers.add(task)
        task.add_done_callback(self._closers.discard)

    def _client(self) -> SmtpClient:
        plain = self.server.security is Security.NONE
        return SmtpClient(
            self.server.host,
            self.server.port,
            security=self.server.security,
            ssl_context=None if plain else self._ssl_context,
            allow_plaintext=plain,
            allow_plaintext_auth=plain,  # the mailbox chose "none" explicitly
            timeout=self._timeout,
            guard=self._guard,
        )

    async def _open(self) -> _Session:
        """A new signed-in session (one token refresh when the server refuses the token)."""
        client = self._client()
        try:
            await client.connect()
            if self.mailbox.auth_method is AuthMethod.OAUTH2:
                client = await self._sign_in_oauth(client)
            else:
                await self._sign_in_password(client)
        except BaseException:
            client.close()
            raise
        self.sessions_opened += 1
        session = _Session(client)
        self._busy.add(session)
        return session

    @property
    def _username(self) -> str:
        return self.mailbox.smtp_username or self.mailbox.email

    async def _sign_in_password(self, client: SmtpClient) -> None:
        if self.mailbox.password is None:
            raise InvalidCredentialsError(
                f"mailbox {self.mailbox.id} has no password",
                hint="Set the mailbox's password (PATCH /v1/mailboxes/{id}).",
            )
        try:
            await client.authenticate(sasl.PasswordAuth(self._username, self.mailbox.password))
        except AuthenticationError as exc:
            raise self._verdict(exc) from exc

    def _verdict(self, refused: AuthenticationError) -> MailportError:
        """The troubleshooting catalog's verdict on a refused password (as the IMAP connector's)."""
        found = diagnose(
            Failure(
                step="authentication",
                protocol="smtp",
                host=self.server.host,
                port=self.server.port,
                auth="password",
                error=refused,
            )
        )
        message = found.detail if found.detail.startswith(self._where) else f"{self._where}: {found.detail}"
        return found.error_class(message, hint=found.hint, server_said=refused.server_said)

    async def _sign_in_oauth(self, client: SmtpClient) -> SmtpClient:
        if self._token_source is None:
            raise AuthenticationError(
                f"mailbox {self.mailbox.id} uses OAuth but no token manager is configured",
                code="oauth_token_rejected",
            )
        token: Secret = await self._token_source()
        try:
            await client.authenticate(sasl.OAuth2Auth(self._username, token))
            return client
        except AuthenticationError as exc:
            if self._force_refresh is None or is_temporary(exc):
                raise
            log.info("%s: the token was refused; refreshing it once", self._where)
        fresh = await self._force_refresh(token)
        client.close()
        client = self._client()
        await client.connect()
        await client.authenticate(sasl.OAuth2Auth(self._username, fresh))
        return client

    # ------------------------------------------------------------------ one transaction

    async def _run(self, session: _Session, message: Outgoing, committing: Committing) -> Accepted:
        """One transaction on ``session``; the session goes back to the idle list, or is closed."""
        reused = session.transactions > 0
        session.transactions += 1
        progress = _Progress()
        try:
            accepted = await self._transaction(session.client, message, committing, progress)
        except BaseException as exc:
            if _dead(exc) or progress.in_data:
                self._drop(session)
                if (
                    reused
                    and not progress.committing
                    and isinstance(exc, SMTPRejectedError | ConnectionLostError)
                ):
                    raise _Stale(exc) from exc
                raise
            if progress.started and not await self._reset(session):
                raise
            self._release(session)
            raise
        self._release(session)
        return accepted

    async def _reset(self, session: _Session) -> bool:
        """RSET after a failed transaction; False (and the session closed) when that failed too."""
        try:
            await session.client.rset()
        except MailportError as exc:
            log.info("%s: RSET failed (%s); closing the session", self._where, exc)
            self._drop(session)
            return False
        return True

    async def _transaction(
        self, client: SmtpClient, message: Outgoing, committing: Committing, progress: _Progress
    ) -> Accepted:
        extensions = client.extensions
        eight_bit_ok = "8bitmime" in extensions
        data = message.raw
        if message.eight_bit and not eight_bit_ok and _has_8bit(data):
            data = seven_bit(data)
        data = normalize_message_line_endings(data)
        params: list[bytes] = []
        if message.smtputf8:
            if "smtputf8" not in extensions:
                raise SMTPUTF8UnsupportedError(
                    f"{self._where}: the message needs SMTPUTF8 (non-ASCII addresses) and the server "
                    "does not offer it"
                )
            params.append(b"SMTPUTF8")
        if message.eight_bit and eight_bit_ok:
            params.append(b"BODY=8BITMIME")
        if "size" in extensions:
            limit = _int(extensions["size"])
            if limit and len(data) > limit:
                raise MessageTooLargeError(
                    f"{self._where}: the message is {len(data)} bytes; the server takes at most {limit}",
                    size=len(data),
                    limit=limit,
                )
            params.append(b"SIZE=%d" % len(data))
        charset = "utf-8" if message.smtputf8 else "ascii"
        try:
            mail = b"MAIL FROM:<" + message.sender.encode(charset) + b">"
            rcpts = [b"RCPT TO:<" + r.encode(charset) + b">" + CRLF for r in message.recipients]
        except UnicodeEncodeError:
            raise SMTPUTF8UnsupportedError(
                f"{self._where}: a non-ASCII address needs SMTPUTF8, which the message did not ask for"
            ) from None
        mail += b"".join(b" " + p for p in params) + CRLF

        progress.started = True
        if "pipelining" in extensions:
            client.write(mail + b"".join(rcpts) + b"DATA" + CRLF)
            mail_reply = await self._read(client)
            rcpt_replies = [await self._read(client) for _ in rcpts]
            data_reply = await self._read(client)
            accepted = [r for r in rcpt_replies if 200 <= r.code < 300]
            if data_reply.code == 354 and (mail_reply.code != 250 or not accepted):
                # RFC 2920 §3.1: DATA was accepted without a valid sender or recipient; end it
                progress.in_data = True
                client.write(b"." + CRLF)
                await client.read_reply()
                progress.in_data = False
        else:
            client.write(mail)
            mail_reply = await self._read(client)
            if mail_reply.code != 250:
                raise self._rejected(mail_reply, "MAIL FROM refused")
            rcpt_replies = []
            for rcpt in rcpts:
                client.write(rcpt)
                rcpt_replies.append(await self._read(client))
            if any(200 <= r.code < 300 for r in rcpt_replies):
                client.write(b"DATA" + CRLF)
                data_reply = await self._read(client)
            else:
                data_reply = SMTPResponse(-1, "")
        if mail_reply.code != 250:
            raise self._rejected(mail_reply, "MAIL FROM refused")
        refused = {
            address: _reply(reply)
            for address, reply in zip(message.recipients, rcpt_replies, strict=True)
            if not 200 <= reply.code < 300
        }
        if len(refused) == len(message.recipients):
            first = rcpt_replies[0]
            said = "; ".join(f"{address}: {text}" for address, text in refused.items())
            raise SMTPRejectedError(
                f"{self._where}: every recipient was refused: {said}",
                smtp_code=first.code,
                server_said=said,
                refused=refused,
            )
        if data_reply.code != 354:
            raise self._rejected(data_reply, "DATA refused")

        progress.in_data = True
        client.write(PERIOD_REGEX.sub(b"..", data))
        await client.drain()
        progress.committing = True
        await committing()
        client.write(b"." + CRLF)
        final = await self._read(client)
        progress.in_data = False
        if not 200 <= final.code < 300:
            raise self._rejected(final, "message refused")
        return Accepted(reply=_reply(final), refused=refused)

    async def _read(self, client: SmtpClient) -> SMTPResponse:
        """The next reply; a ``421`` ends the session at once (the server closes it, and the
        replies to the rest of a pipelined group never come)."""
        reply = await client.read_reply()
        if reply.code == 421:
            raise self._rejected(reply, "the server is closing the session")
        return reply

    def _rejected(self, response: SMTPResponse, what: str) -> SMTPRejectedError:
        return SMTPRejectedError(
            f"{self._where}: {what}: {_reply(response)}",
            smtp_code=response.code,
            server_said=response.message,
        )


def _int(value: str) -> int:
    try:
        return int(value.split()[0]) if value.strip() else 0
    except ValueError:
        return 0
