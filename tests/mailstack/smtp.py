"""aiosmtpd-based submission server for tests.

* STARTTLS (port N) and/or implicit TLS (port M), AUTH PLAIN / LOGIN / XOAUTH2 / OAUTHBEARER
* every accepted message is recorded (self.handler.messages) and, if lmtp_port is
  given, delivered to Dovecot over LMTP so the test can read it back over IMAP.
* handler.fail_next = "451 4.3.0 try later" makes the next DATA fail (retry tests).
* scripted replies per stage: ``handler.script("RCPT", "550 5.1.1 no such user")`` answers the
  next RCPT so (a queue per stage: MAIL, RCPT, DATA); ``handler.refuse["x@y"] = "550 …"`` refuses
  one address every time. A reply starting with 421 closes the connection after it; ``DROP``
  closes it without a reply.
* ``handler.data_without_recipients = True``: DATA is answered 354 even when every RCPT was
  refused (RFC 2920 §3.1 says a pipelining client must cope), the body then refused.
* what the server offers: ``handler.pipelining`` / ``eight_bit_mime`` / ``smtputf8`` (bools) and
  ``handler.size`` (the SIZE limit; None: not advertised).
* what arrived: ``handler.messages`` (:class:`Received`: envelope, MAIL parameters, bytes, which
  connection, whether the client pipelined), ``handler.connections`` (opened so far),
  ``handler.active`` / ``handler.max_active`` (concurrent connections).
* ``handler.on_message``: called (sync or async) with the :class:`Received` after it is recorded
  and before the reply is sent — e.g. to kill a worker process between "the server has the
  message" and "the client saw 250".
"""

from __future__ import annotations

import asyncio
import base64
import collections
import errno
import inspect
import json
import smtplib
import ssl
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from .dovecot import free_port

# XOAUTH2 / OAUTHBEARER error challenge, as Gmail sends it
_OAUTH_ERR = base64.b64encode(
    json.dumps({"status": "401", "schemes": "bearer", "scope": "https://mail.google.com/"}).encode()
)


def introspection_validator(introspection_url: str) -> Callable[[str, str], bool]:
    """Token check against an RFC 7662 endpoint: active and issued to `user`."""

    def check(user: str, token: str) -> bool:
        data = urllib.parse.urlencode({"token": token}).encode()
        with urllib.request.urlopen(introspection_url, data=data, timeout=5) as r:
            info = json.load(r)
        return bool(info.get("active")) and info.get("email", info.get("username")) == user

    return check


class LongLineSMTP(SMTP):
    """aiosmtpd enforces RFC 5321's 512-byte command / 1001-byte line limits. A base64
    XOAUTH2 initial response carrying a JWT (Microsoft tokens are 1.5-3 KB) is longer,
    and Gmail/Outlook accept it, so lift both limits."""

    line_length_limit = 64 * 1024
    command_size_limit = 64 * 1024
    command_size_limits = collections.defaultdict(lambda: 64 * 1024)

    def connection_made(self, transport):
        first = self.transport is None  # not the STARTTLS re-entry
        super().connection_made(transport)
        if first:
            opened = getattr(self.event_handler, "opened", None)
            self.number = opened() if opened else 0

    def connection_lost(self, error):
        closed = getattr(self.event_handler, "closed", None)
        if closed:
            closed()
        super().connection_lost(error)

    async def smtp_DATA(self, arg):
        """``handler.data_without_recipients``: answer 354 to a DATA that has no recipient (as
        RFC 2920 §3.1 warns some servers do), swallow the body, then refuse the transaction."""
        if getattr(self.event_handler, "data_without_recipients", False) and not self.envelope.rcpt_tos:
            await self.push("354 End data with <CR><LF>.<CR><LF>")
            while (await self._reader.readuntil(b"\r\n")) != b".\r\n":
                pass
            await self.push("554 5.5.1 Error: no valid recipients")
            return
        await super().smtp_DATA(arg)


class LongLineController(Controller):
    def factory(self):
        return LongLineSMTP(self.handler, **self.SMTP_kwargs)


class RestrictedSMTP(LongLineSMTP):
    """Like Dovecot 2.3's submission service, which caps AUTH parameters at ~1 KB: a longer
    ``AUTH <mech> <initial-response>`` is answered "500 5.5.2 Line too long". Every AUTH line's
    mechanism is recorded (what the client *sent*, advertised or not)."""

    auth_line_limit = 1024
    auth_sent: list[str]

    async def smtp_AUTH(self, arg: str) -> None:
        self.auth_sent.append(arg.split()[0].upper() if arg else "")
        if arg and len(arg) > self.auth_line_limit:
            await self.push("500 5.5.2 Line too long")
            return
        await super().smtp_AUTH(arg)


class RestrictedController(LongLineController):
    """A STARTTLS listener sharing a handler, with a short AUTH line limit and, optionally,
    fewer mechanisms (``exclude``, e.g. ``["PLAIN"]``); ``auth_sent`` lists the AUTH lines'
    mechanisms in order."""

    def __init__(
        self,
        handler: SubmissionHandler,
        *,
        port: int,
        cert: str,
        key: str,
        auth_line_limit: int = 1024,
        exclude: tuple[str, ...] = (),
    ):
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert, key)
        super().__init__(
            handler,
            hostname="127.0.0.1",
            port=port,
            tls_context=ctx,
            auth_required=True,
            auth_require_tls=True,
            authenticator=handler.authenticator,
            auth_exclude_mechanism=list(exclude),
            ready_timeout=10,
        )
        self.auth_line_limit = auth_line_limit
        self.auth_sent: list[str] = []

    def factory(self):
        server = RestrictedSMTP(self.handler, **self.SMTP_kwargs)
        server.auth_line_limit = self.auth_line_limit
        server.auth_sent = self.auth_sent
        return server


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    auth_user: str | None
    mechanism: str | None
    mail_options: list[str] = field(default_factory=list)  # upper-cased, e.g. ["BODY=8BITMIME", "SIZE=123"]
    connection: int = 0  # which connection (1, 2, … in the order they were opened)
    pipelined: bool = False  # more commands were already waiting when MAIL was read (RFC 2920)


@dataclass
class SubmissionHandler:
    users: dict[str, str]
    token_validator: Callable[[str, str], bool] | None = None
    lmtp_port: int | None = None
    messages: list[Received] = field(default_factory=list)
    fail_next: str | None = None
    pipelining: bool = True
    eight_bit_mime: bool = True
    smtputf8: bool = True
    size: int | None = 32 * 1024 * 1024
    refuse: dict[str, str] = field(default_factory=dict)  # address -> reply, every time
    data_without_recipients: bool = False  # 354 to a DATA without any accepted recipient
    on_message: Callable[[Received], Any] | None = None
    connections: int = 0
    active: int = 0
    max_active: int = 0
    scripted: dict[str, collections.deque[str]] = field(
        default_factory=lambda: collections.defaultdict(collections.deque)
    )
    _pipelined: dict[int, bool] = field(default_factory=dict)

    def script(self, stage: str, *replies: str) -> None:
        """Answer the next MAIL / RCPT / DATA (one reply each, in order) with ``replies``."""
        self.scripted[stage.upper()].extend(replies)

    def reset(self) -> None:
        """Forget what arrived and every script; advertise everything again."""
        self.messages.clear()
        self.scripted.clear()
        self.refuse.clear()
        self.fail_next = None
        self.on_message = None
        self.data_without_recipients = False
        self.pipelining = self.eight_bit_mime = self.smtputf8 = True
        self.size = 32 * 1024 * 1024
        self.connections = 0
        self.max_active = self.active  # connections still open from before are not counted again

    # ---- connections (LongLineSMTP calls these) ------------------------------------
    def opened(self) -> int:
        self.connections += 1
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        return self.connections

    def closed(self) -> None:
        self.active -= 1

    def _scripted(self, server: SMTP, stage: str) -> str | None:
        queue = self.scripted.get(stage)
        if not queue:
            return None
        reply = queue.popleft()
        if reply == "DROP":
            server.transport.close()
            return "421 4.4.2 dropped"  # never reaches the client: the connection is closed
        if reply.startswith("421"):
            server.loop.call_soon(server.transport.close)
        return reply

    # ---- what the server offers ------------------------------------------------------
    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses):
        session.host_name = hostname
        lines = [r[4:] for r in responses]
        offered = []
        for line in lines:
            keyword = line.split()[0].upper() if line else ""
            if keyword == "8BITMIME" and not self.eight_bit_mime:
                continue
            if keyword == "SMTPUTF8" and not self.smtputf8:
                continue
            if keyword == "SIZE":
                if self.size is None:
                    continue
                line = f"SIZE {self.size}"
            offered.append(line)
        if self.pipelining:
            offered.insert(1, "PIPELINING")
        return [f"250-{line}" for line in offered[:-1]] + [f"250 {offered[-1]}"]

    # ---- the transaction ---------------------------------------------------------------
    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope, address: str, options):
        self._pipelined[id(session)] = bool(server._reader._buffer)
        reply = self._scripted(server, "MAIL")
        if reply is not None:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str, options):
        reply = self._scripted(server, "RCPT") or self.refuse.get(address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 2.1.5 Ok"

    # ---- PLAIN / LOGIN (aiosmtpd built-ins call this) --------------------------
    def authenticator(self, server, session, envelope, mechanism, auth_data):
        if isinstance(auth_data, LoginPassword):
            user, pw = auth_data.login.decode(), auth_data.password.decode()
            local, _, domain = user.partition("@")
            if self.users.get(user) == pw or (domain == "dyn.example.test" and pw == f"pw-{local}"):
                session.auth_mech = mechanism
                return AuthResult(success=True, auth_data=user)
        return AuthResult(success=False, handled=False)

    # ---- OAuth mechanisms (custom: aiosmtpd picks up handler.auth_<MECH>) ---------
    async def _oauth(self, server: SMTP, args: list[str], mech: str) -> AuthResult:
        if len(args) == 2:
            blob = base64.b64decode(args[1])
        else:
            blob = await server.challenge_auth(b"", encode_to_b64=False)
            if not isinstance(blob, bytes):
                return AuthResult(success=False, handled=True)  # client aborted; response already sent
        parts = blob.decode(errors="replace").split("\x01")
        user = token = None
        for p in parts:
            if p.startswith("user="):  # XOAUTH2
                user = p[5:]
            elif p.startswith("n,") or p.startswith("y,"):  # OAUTHBEARER gs2 header: n,a=user,
                for kv in p.split(","):
                    if kv.startswith("a="):
                        user = kv[2:]
            elif p.lower().startswith("auth=bearer "):
                token = p[12:]
        ok = False
        if user and token and self.token_validator:
            try:
                ok = await asyncio.to_thread(self.token_validator, user, token)
            except OSError:  # the introspection endpoint is down (idp outage): temporary, RFC 4954
                return AuthResult(
                    success=False, handled=False, message="454 4.7.0 Temporary authentication failure"
                )
        if ok:
            server.session.auth_mech = mech
            return AuthResult(success=True, auth_data=user)
        # Like Gmail: 334 <base64 json>, client answers with an empty line (or \x01), then 535.
        await server.challenge_auth(_OAUTH_ERR, encode_to_b64=False)
        return AuthResult(
            success=False, handled=False, message="535 5.7.8 Username and Password not accepted"
        )

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        return await self._oauth(server, args, "XOAUTH2")

    async def auth_OAUTHBEARER(self, server: SMTP, args: list[str]) -> AuthResult:
        return await self._oauth(server, args, "OAUTHBEARER")

    # ---- message handling ---------------------------------------------------------
    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.fail_next:
            reply, self.fail_next = self.fail_next, None
            return reply
        scripted = self._scripted(server, "DATA")
        if scripted is not None:
            return scripted
        data = envelope.original_content or envelope.content
        received = Received(
            envelope.mail_from,
            list(envelope.rcpt_tos),
            data,
            session.auth_data,
            getattr(session, "auth_mech", None),
            mail_options=list(envelope.mail_options),
            connection=getattr(server, "number", 0),
            pipelined=self._pipelined.pop(id(session), False),
        )
        self.messages.append(received)
        if self.lmtp_port:
            await asyncio.to_thread(self._lmtp, envelope.mail_from, list(envelope.rcpt_tos), data)
        if self.on_message is not None:
            result = self.on_message(received)
            if inspect.isawaitable(result):
                await result
        return f"250 2.0.0 Ok: queued as {len(self.messages)}"

    def _lmtp(self, mail_from: str, rcpts: list[str], data: bytes):
        # One recipient per transaction: LMTP answers DATA once per recipient (RFC 2033), and
        # smtplib reads only the first answer, taking the next as a protocol error.
        with smtplib.LMTP("127.0.0.1", self.lmtp_port) as lmtp:
            for rcpt in rcpts:
                refused = lmtp.sendmail(mail_from, [rcpt], data)
                if refused:
                    raise RuntimeError(f"LMTP refused {refused}")


class SubmissionServer:
    """Two listeners sharing one handler: STARTTLS (port) and implicit TLS (tls_port)."""

    def __init__(
        self, handler: SubmissionHandler, cert: str, key: str, port: int, tls_port: int | None = None
    ):
        self.handler = handler
        self.port, self.tls_port = port, tls_port
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert, key)
        self.controllers = self._controllers()

    def _controllers(self) -> list[LongLineController]:
        common = dict(
            hostname="127.0.0.1",
            server_hostname="smtp.example.test",
            auth_required=True,
            auth_require_tls=True,
            authenticator=self.handler.authenticator,
            ready_timeout=10,
            enable_SMTPUTF8=True,  # offered or not as handler.smtputf8 says (handle_EHLO)
        )
        controllers = [LongLineController(self.handler, port=self.port, tls_context=self.context, **common)]
        if self.tls_port:
            # aiosmtpd only counts STARTTLS as "TLS" for auth_require_tls; on the implicit-TLS
            # listener the socket is always TLS, so the check must be switched off there.
            controllers.append(
                LongLineController(
                    self.handler,
                    port=self.tls_port,
                    ssl_context=self.context,
                    **dict(common, auth_require_tls=False),
                )
            )
        return controllers

    def start(self) -> SubmissionServer:
        # A port chosen free can be taken before the listener binds it (by another pytest
        # worker): then both listeners start again on other free ports.
        for attempt in range(3):
            try:
                for c in self.controllers:
                    c.start()
                return self
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE or attempt == 2:
                    raise
                for c in self.controllers:
                    c.stop(no_assert=True)
                self.port = free_port()
                self.tls_port = free_port() if self.tls_port else None
                self.controllers = self._controllers()
        raise AssertionError("unreachable")

    def stop(self):
        for c in self.controllers:
            c.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


if __name__ == "__main__":  # python -m mailstack.smtp --port 10587 --tls-port 10465 --lmtp-port 10024
    import argparse
    import signal
    import threading

    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=10587)
    ap.add_argument("--tls-port", type=int, default=10465)
    ap.add_argument("--lmtp-port", type=int, default=10024)
    ap.add_argument("--introspect", default="http://127.0.0.1:10080/introspect")
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    a = ap.parse_args()
    h = SubmissionHandler(
        users={"alice@example.test": "alice-pass", "bob@example.test": "bob-pass"},
        token_validator=introspection_validator(a.introspect),
        lmtp_port=a.lmtp_port,
    )
    srv = SubmissionServer(h, a.cert, a.key, a.port, a.tls_port).start()
    print(f"submission on 127.0.0.1:{a.port} (STARTTLS) and :{a.tls_port} (TLS)", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    srv.stop()
