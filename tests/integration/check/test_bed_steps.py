"""Every step and failure class of the connection check against the real bed (Dovecot, the
aiosmtpd submission server, the OAuth server) and small real TLS/TCP servers.

Each test runs the real :class:`ConnectionChecker` end to end and reads the answer the API and
the CLI give (``to_dict()``).
"""

from __future__ import annotations

import asyncio
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from mailport.check import CheckCredentials, CheckResult, ConnectionChecker, ServerTarget
from mailport.crypto import Secret
from mailport.net.guard import HostGuard
from mailport.net.resolve import DnsResolver
from tests.conftest import issue_token
from tests.fixtures.tls import Pem
from tests.mailstack.dovecot import Dovecot, free_port
from tests.mailstack.idp import MockIdP
from tests.mailstack.smtp import SubmissionServer

LOCAL = "127.0.0.1"


def steps(result: CheckResult, protocol: str = "imap") -> dict[str, dict[str, Any]]:
    body = result.to_dict()[protocol]
    assert body is not None
    return {s["step"]: s for s in body["steps"]}


def failed(result: CheckResult, protocol: str = "imap") -> dict[str, Any]:
    body = result.to_dict()[protocol]
    bad = [s for s in body["steps"] if not s["ok"]]
    assert len(bad) == 1, body
    assert body["steps"][-1] is bad[0] or body["steps"][-1] == bad[0], "the check stops at the first failure"
    return bad[0]


def pw(user: str, secret: str) -> CheckCredentials:
    return CheckCredentials(user, password=Secret(secret))


# --------------------------------------------------------------------------- everything passes


async def test_every_step_passes_with_implicit_tls(
    checker: ConnectionChecker, dovecot: Dovecot, smtp: SubmissionServer, password_user: tuple[str, str]
) -> None:
    user, password = password_user
    dovecot.deliver(user, b"From: a@example.test\r\nSubject: hi\r\n\r\nbody\r\n")
    result = await checker.check(
        ServerTarget(LOCAL, dovecot.imaps_port, "ssl"),
        ServerTarget(LOCAL, smtp.tls_port, "ssl"),
        pw(user, password),
        ca_file=dovecot.ca_file,
    )
    body = result.to_dict()
    assert body["ok"] is True and body["imap"]["ok"] and body["smtp"]["ok"]
    imap = steps(result)
    assert list(imap) == ["dns", "tcp_connect", "tls_handshake", "greeting", "authentication", "select"]
    assert imap["tls_handshake"]["detail"].startswith("TLSv1.")
    assert "certificate localhost" in imap["tls_handshake"]["detail"]
    assert (
        "valid until 20" in imap["tls_handshake"]["detail"] and "verified" in imap["tls_handshake"]["detail"]
    )
    assert "IMAP4REV1" in imap["greeting"]["detail"]
    assert imap["authentication"]["detail"] == f"signed in as {user} with AUTHENTICATE PLAIN"
    assert imap["select"]["detail"].startswith("INBOX: 1 message, UIDVALIDITY ")
    smtp_steps = steps(result, "smtp")
    assert list(smtp_steps) == ["dns", "tcp_connect", "tls_handshake", "smtp_ehlo", "smtp_auth"]
    assert (
        smtp_steps["smtp_ehlo"]["detail"].startswith("220 ") and "AUTH" in smtp_steps["smtp_ehlo"]["detail"]
    )
    assert smtp_steps["smtp_auth"]["detail"].endswith("with AUTH PLAIN")
    for step in body["imap"]["steps"] + body["smtp"]["steps"]:
        assert set(step) == {"step", "ok", "ms", "detail"} and step["ms"] >= 0
    assert password not in str(body)


async def test_every_step_passes_with_starttls(
    checker: ConnectionChecker, dovecot: Dovecot, smtp: SubmissionServer, password_user: tuple[str, str]
) -> None:
    user, password = password_user
    result = await checker.check(
        ServerTarget(LOCAL, dovecot.imap_port, "starttls"),
        ServerTarget(LOCAL, smtp.port, "starttls"),
        pw(user, password),
        ca_file=dovecot.ca_file,
    )
    assert result.ok, result.to_dict()
    assert list(steps(result)) == ["dns", "tcp_connect", "greeting", "starttls", "authentication", "select"]
    assert list(steps(result, "smtp")) == ["dns", "tcp_connect", "smtp_ehlo", "smtp_starttls", "smtp_auth"]
    assert steps(result)["starttls"]["detail"].startswith("TLSv1.")
    assert "STARTTLS" in steps(result, "smtp")["smtp_ehlo"]["detail"]


async def test_oauth2_token_signs_in_to_imap_and_smtp(
    checker: ConnectionChecker,
    dovecot: Dovecot,
    smtp: SubmissionServer,
    oauth_user: tuple[str, dict[str, object]],
) -> None:
    email, token = oauth_user
    calls: list[int] = []

    async def fresh_token() -> Secret:  # an async source, as the token manager gives
        calls.append(1)
        return Secret(str(token["access_token"]))

    result = await checker.check(
        ServerTarget(LOCAL, dovecot.imaps_port, "ssl"),
        ServerTarget(LOCAL, smtp.tls_port, "ssl"),
        CheckCredentials(email, access_token=fresh_token),
        ca_file=dovecot.ca_file,
    )
    assert result.ok, result.to_dict()
    assert steps(result)["authentication"]["detail"] == f"signed in as {email} with XOAUTH2"
    assert steps(result, "smtp")["smtp_auth"]["detail"] == f"signed in as {email} with AUTH XOAUTH2"
    assert len(calls) == 2  # asked once per protocol, at sign-in time
    assert str(token["access_token"]) not in str(result.to_dict())


# --------------------------------------------------------------------------- credentials


async def test_wrong_password(
    checker: ConnectionChecker, dovecot: Dovecot, smtp: SubmissionServer, password_user: tuple[str, str]
) -> None:
    user, _ = password_user
    result = await checker.check(
        ServerTarget(LOCAL, dovecot.imaps_port, "ssl"),
        ServerTarget(LOCAL, smtp.tls_port, "ssl"),
        pw(user, "not-the-password-9f1c"),
        ca_file=dovecot.ca_file,
    )
    assert result.to_dict()["ok"] is False
    imap = failed(result)
    assert imap["step"] == "authentication" and imap["code"] == "invalid_credentials"
    assert imap["server_said"] == "NO [AUTHENTICATIONFAILED] Authentication failed."
    assert "user name" in imap["hint"]
    smtp_step = failed(result, "smtp")
    assert smtp_step["step"] == "smtp_auth" and smtp_step["code"] == "invalid_credentials"
    assert smtp_step["server_said"].startswith("535")
    assert "not-the-password-9f1c" not in str(result.to_dict())


@pytest.mark.parametrize("kind", ["expired", "revoked"])
async def test_expired_and_revoked_tokens(
    checker: ConnectionChecker,
    dovecot: Dovecot,
    smtp: SubmissionServer,
    idp: MockIdP,
    oauth_user: tuple[str, dict[str, object]],
    kind: str,
) -> None:
    email, token = oauth_user
    if kind == "expired":
        token = issue_token(idp, email, expires_in=-1)
    else:
        form = urllib.parse.urlencode({"token": str(token["access_token"])}).encode()
        await asyncio.to_thread(urllib.request.urlopen, f"{idp.url}/revoke", form, 10)
    result = await checker.check(
        ServerTarget(LOCAL, dovecot.imaps_port, "ssl"),
        ServerTarget(LOCAL, smtp.tls_port, "ssl"),
        CheckCredentials(email, access_token=Secret(str(token["access_token"]))),
        ca_file=dovecot.ca_file,
    )
    imap = failed(result)
    assert (imap["step"], imap["code"]) == ("authentication", "oauth_token_rejected")
    assert "Reconnect the mailbox" in imap["hint"]
    smtp_step = failed(result, "smtp")
    assert (smtp_step["step"], smtp_step["code"]) == ("smtp_auth", "oauth_token_rejected")
    assert str(token["access_token"]) not in str(result.to_dict())


# --------------------------------------------------------------------------- TLS


async def test_wrong_ca(
    checker: ConnectionChecker, dovecot: Dovecot, smtp: SubmissionServer, pki: dict[str, Pem]
) -> None:
    """The bed's certificate checked against another CA: self-signed, whichever mode."""
    result = await checker.check(
        ServerTarget(LOCAL, dovecot.imaps_port, "ssl"),
        ServerTarget(LOCAL, smtp.port, "starttls"),
        pw("someone@dyn.example.test", "x"),
        ca_file=str(pki["ca"].cert),
    )
    imap = failed(result)
    assert imap["step"] == "tls_handshake" and imap["code"] == "certificate_self_signed"
    assert "trust this certificate" in imap["hint"]
    assert imap["certificate"]["subject"] == "localhost"  # what was presented, to pin it
    smtp_step = failed(result, "smtp")
    assert smtp_step["step"] == "smtp_starttls" and smtp_step["code"] == "certificate_self_signed"


async def test_certificate_for_another_host_suggests_it(
    checker: ConnectionChecker, serve: Callable[..., Any], pki: dict[str, Pem]
) -> None:
    async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"* OK ready\r\n")
        await reader.read(100)

    port = await serve(greet, tls=pki["other_host"])
    result = await checker.check(
        ServerTarget(LOCAL, port, "ssl"), None, pw("a@b.test", "x"), ca_file=str(pki["ca"].cert)
    )
    step = failed(result)
    assert step["code"] == "certificate_hostname_mismatch"
    assert step["suggestions"][0] == {"host": "imap.hoster.test"}
    assert "imap.hoster.test" in step["hint"]


async def test_expired_certificate(
    checker: ConnectionChecker, serve: Callable[..., Any], pki: dict[str, Pem]
) -> None:
    async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"* OK ready\r\n")
        await reader.read(100)

    port = await serve(greet, tls=pki["expired"])
    result = await checker.check(
        ServerTarget(LOCAL, port, "ssl"), None, pw("a@b.test", "x"), ca_file=str(pki["ca"].cert)
    )
    assert failed(result)["code"] == "certificate_expired"


# --------------------------------------------------------------------------- port / security


async def test_tls_spoken_to_plaintext_ports(
    checker: ConnectionChecker, dovecot: Dovecot, smtp: SubmissionServer
) -> None:
    result = await checker.check(
        ServerTarget(LOCAL, dovecot.imap_port, "ssl"),
        ServerTarget(LOCAL, smtp.port, "ssl"),
        pw("a@b.test", "x"),
        ca_file=dovecot.ca_file,
    )
    imap = failed(result)
    assert (imap["step"], imap["code"]) == ("tls_handshake", "tls_on_plaintext_port")
    assert imap["suggestions"][0] == {"port": dovecot.imap_port, "security": "starttls"}
    smtp_step = failed(result, "smtp")
    assert (smtp_step["step"], smtp_step["code"]) == ("tls_handshake", "tls_on_plaintext_port")
    assert {"port": 465, "security": "ssl"} in smtp_step["suggestions"]


async def test_plaintext_spoken_to_implicit_tls_ports(dovecot: Dovecot, smtp: SubmissionServer) -> None:
    # The server waits for a TLS handshake: the greeting step can only time out (1.5 s here).
    checker = ConnectionChecker(HostGuard.for_operator(), timeout=8, step_timeout=1.5)
    result = await checker.check(
        ServerTarget(LOCAL, dovecot.imaps_port, "starttls"),
        ServerTarget(LOCAL, smtp.tls_port, "starttls"),
        pw("a@b.test", "x"),
        ca_file=dovecot.ca_file,
    )
    imap = failed(result)
    assert (imap["step"], imap["code"]) == ("greeting", "plaintext_on_tls_port")
    assert imap["suggestions"][0] == {"port": dovecot.imaps_port, "security": "ssl"}
    smtp_step = failed(result, "smtp")
    assert (smtp_step["step"], smtp_step["code"]) == ("smtp_ehlo", "plaintext_on_tls_port")
    assert smtp_step["suggestions"][0] == {"port": smtp.tls_port, "security": "ssl"}


async def test_closed_port(checker: ConnectionChecker) -> None:
    port = free_port()
    result = await checker.check(
        ServerTarget(LOCAL, port, "ssl"), ServerTarget(LOCAL, port, "starttls"), pw("a@b.test", "x")
    )
    for protocol in ("imap", "smtp"):
        step = failed(result, protocol)
        assert (step["step"], step["code"]) == ("tcp_connect", "connection_refused")
        assert step["suggestions"]


@pytest.mark.serial
async def test_a_server_that_accepts_tcp_and_never_speaks(serve: Callable[..., Any]) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    port = await serve(silent)
    checker = ConnectionChecker(HostGuard.for_operator(), timeout=6, step_timeout=1)
    started = time.perf_counter()
    result = await checker.check(
        ServerTarget(LOCAL, port, "starttls"), ServerTarget(LOCAL, port, "ssl"), pw("a@b.test", "x")
    )
    elapsed = time.perf_counter() - started
    imap = failed(result)
    assert (imap["step"], imap["code"]) == ("greeting", "server_silent")
    assert imap["ms"] >= 900  # the step's deadline, measured
    smtp_step = failed(result, "smtp")
    assert (smtp_step["step"], smtp_step["code"]) == ("tls_handshake", "server_silent")
    # IMAP and SMTP ran concurrently: one step deadline plus the plaintext probe, not the sum.
    assert elapsed < 5.5


@pytest.mark.serial
async def test_the_overall_deadline_bounds_the_check(serve: Callable[..., Any]) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    port = await serve(silent)
    checker = ConnectionChecker(HostGuard.for_operator(), timeout=1.0, step_timeout=10)
    started = time.perf_counter()
    result = await checker.check(ServerTarget(LOCAL, port, "ssl"), None, pw("a@b.test", "x"))
    assert time.perf_counter() - started < 2.0
    step = failed(result)
    assert step["code"] == "server_silent" and 800 <= step["ms"] <= 1500


async def test_host_not_found(dns_server: Any) -> None:
    checker = ConnectionChecker(
        HostGuard.for_operator(resolver=DnsResolver([dns_server.nameserver])), timeout=5
    )
    result = await checker.check(
        ServerTarget("imap.gmial.test", 993, "ssl"),
        None,
        CheckCredentials("a@gmail.com", password=Secret("x"), provider="gmail"),
    )
    step = failed(result)
    assert (step["step"], step["code"]) == ("dns", "host_not_found")
    assert step["suggestions"] == [{"host": "imap.gmail.com"}]


GREETING_DELAY = 1.0  # seconds the slow server waits before its 220


@pytest.mark.serial
@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_smtp_handshake_and_greeting_are_timed_apart(
    loop: str, imap_server_tls: Any, dovecot: Dovecot
) -> None:
    """aiosmtplib does TLS and the 220 greeting in one call; the check still times them apart —
    on asyncio's loop and on uvloop (what ``mailport serve`` runs on)."""
    import uvloop

    async def slow_greeting(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(GREETING_DELAY)
        writer.write(b"220 slow.test ESMTP\r\n")
        while line := await reader.readline():
            verb = line.split(b" ", 1)[0].strip().upper()
            writer.write(b"250-slow.test\r\n250 AUTH PLAIN\r\n" if verb == b"EHLO" else b"535 5.7.8 no\r\n")
        writer.close()

    async def main() -> CheckResult:
        server = await asyncio.start_server(slow_greeting, LOCAL, 0, ssl=imap_server_tls)
        port = server.sockets[0].getsockname()[1]
        try:
            checker = ConnectionChecker(HostGuard.for_operator(), timeout=5, step_timeout=3)
            return await checker.check(
                ServerTarget(LOCAL, dovecot.imaps_port, "ssl"),
                ServerTarget(LOCAL, port, "ssl"),
                pw("a@dyn.example.test", "x"),
                ca_file=dovecot.ca_file,
            )
        finally:
            server.close()

    result = uvloop.run(main()) if loop == "uvloop" else asyncio.run(main())
    smtp_steps = steps(result, "smtp")
    # The greeting's wait is the greeting's, not the handshake's. A second of it leaves the
    # handshake (milliseconds alone) room for a loaded machine without blurring the two.
    assert smtp_steps["tls_handshake"]["ms"] < GREETING_DELAY * 1000
    assert smtp_steps["smtp_ehlo"]["ms"] >= GREETING_DELAY * 1000 - 50


async def test_starttls_certificate_for_another_name_suggests_the_right_host(
    dns_server: Any, dovecot: Dovecot, smtp: SubmissionServer
) -> None:
    """mail.customer.test points at the bed, whose certificate names localhost: after STARTTLS
    the check reads the certificate's names (without trusting it) and suggests one."""
    dns_server.add("mail.customer.test", "A", "127.0.0.1")
    checker = ConnectionChecker(
        HostGuard.for_operator(resolver=DnsResolver([dns_server.nameserver])), timeout=8
    )
    result = await checker.check(
        ServerTarget("mail.customer.test", dovecot.imap_port, "starttls"),
        ServerTarget("mail.customer.test", smtp.port, "starttls"),
        pw("a@dyn.example.test", "x"),
        ca_file=dovecot.ca_file,
    )
    for protocol, step in (("imap", "starttls"), ("smtp", "smtp_starttls")):
        failing = failed(result, protocol)
        assert (failing["step"], failing["code"]) == (step, "certificate_hostname_mismatch")
        assert failing["suggestions"][0] == {"host": "localhost"}
        assert "not for mail.customer.test" in failing["hint"]


async def test_too_many_simultaneous_connections_from_dovecot(
    checker: ConnectionChecker, dovecot: Dovecot, password_user: tuple[str, str]
) -> None:
    """Dovecot's own limit (mail_max_userip_connections, 10 by default), reached for real."""
    from mailport.imap import ImapClient
    from mailport.sasl import PasswordAuth

    user, password = password_user
    held = [
        await ImapClient.open(
            LOCAL, dovecot.imaps_port, auth=PasswordAuth(user, Secret(password)), ca_file=dovecot.ca_file
        )
        for _ in range(10)
    ]
    try:
        result = await checker.check(
            ServerTarget(LOCAL, dovecot.imaps_port, "ssl"), None, pw(user, password), ca_file=dovecot.ca_file
        )
    finally:
        for client in held:
            await client.logout()
    step = failed(result)
    assert (step["step"], step["code"]) == ("authentication", "too_many_connections")
    assert "Maximum number of connections" in step["server_said"]
