"""aiosmtpd-based submission server for tests.

* STARTTLS (port N) and/or implicit TLS (port M), AUTH PLAIN / LOGIN / XOAUTH2 / OAUTHBEARER
* every accepted message is recorded (self.handler.messages) and, if lmtp_port is
  given, delivered to Dovecot over LMTP so the test can read it back over IMAP.
* handler.fail_next = "451 4.3.0 try later" makes the next DATA fail (retry tests).
"""

from __future__ import annotations

import asyncio
import base64
import collections
import errno
import json
import smtplib
import ssl
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field

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


@dataclass
class SubmissionHandler:
    users: dict[str, str]
    token_validator: Callable[[str, str], bool] | None = None
    lmtp_port: int | None = None
    messages: list[Received] = field(default_factory=list)
    fail_next: str | None = None

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
        data = envelope.original_content or envelope.content
        self.messages.append(
            Received(
                envelope.mail_from,
                list(envelope.rcpt_tos),
                data,
                session.auth_data,
                getattr(session, "auth_mech", None),
            )
        )
        if self.lmtp_port:
            await asyncio.to_thread(self._lmtp, envelope.mail_from, list(envelope.rcpt_tos), data)
        return "250 2.0.0 Ok: queued"

    def _lmtp(self, mail_from: str, rcpts: list[str], data: bytes):
        with smtplib.LMTP("127.0.0.1", self.lmtp_port) as lmtp:
            refused = lmtp.sendmail(mail_from, rcpts, data)
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
