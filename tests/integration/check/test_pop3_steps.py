"""The POP3 steps of the connection check against Dovecot's POP3 server (POP3S and STLS) and,
for behaviours Dovecot cannot show (no UIDL, STLS refused or not offered, no CAPA), a small
scripted POP3 server speaking over real TCP and TLS."""

from __future__ import annotations

import ssl
from typing import Any

from mailport.check import CheckCredentials, CheckResult, ConnectionChecker, ServerTarget
from mailport.crypto import Secret
from tests.fixtures.scripted_pop3 import POP3Script, scripted_pop3
from tests.mailstack.dovecot import Dovecot
from tests.mailstack.smtp import SubmissionServer

LOCAL = "127.0.0.1"


def steps(result: CheckResult) -> dict[str, dict[str, Any]]:
    body = result.to_dict()
    assert body["imap"] is None and "pop3" in body
    return {s["step"]: s for s in body["pop3"]["steps"]}


def last(result: CheckResult) -> dict[str, Any]:
    body = result.to_dict()["pop3"]
    assert [s["ok"] for s in body["steps"]] == [True] * (len(body["steps"]) - 1) + [False], body
    return dict(body["steps"][-1])


def pw(user: str, secret: str) -> CheckCredentials:
    return CheckCredentials(user, password=Secret(secret))


async def pop3_alone(
    checker: ConnectionChecker,
    dovecot: Dovecot,
    port: int,
    security: str,
    credentials: CheckCredentials | None = None,
) -> CheckResult:
    """POP3 alone on 127.0.0.1:``port``, trusting the bed's CA (the certificate of Dovecot and
    of the scripted servers)."""
    return await checker.check(
        None,
        None,
        credentials or pw("u", "p"),
        ca_file=dovecot.ca_file,
        pop3=ServerTarget(LOCAL, port, security),
    )


async def test_pop3s_every_step_passes_and_stat_counts_the_maildrop(
    checker: ConnectionChecker, dovecot: Dovecot, smtp: SubmissionServer, password_user: tuple[str, str]
) -> None:
    user, password = password_user
    dovecot.deliver(user, b"From: a@example.test\r\nSubject: one\r\n\r\nbody\r\n")
    dovecot.deliver(user, b"From: a@example.test\r\nSubject: two\r\n\r\nbody\r\n")
    result = await checker.check(
        None,
        ServerTarget(LOCAL, smtp.tls_port, "ssl"),
        pw(user, password),
        ca_file=dovecot.ca_file,
        pop3=ServerTarget(LOCAL, dovecot.pop3s_port, "ssl"),
    )
    body = result.to_dict()
    assert body["ok"] is True and body["pop3"]["ok"] and body["smtp"]["ok"], body
    found = steps(result)
    assert list(found) == [
        "dns", "tcp_connect", "tls_handshake", "greeting", "pop3_capa", "pop3_auth", "pop3_uidl", "pop3_stat",
    ]  # fmt: skip
    assert found["greeting"]["detail"].startswith("+OK")
    assert "UIDL" in found["pop3_capa"]["detail"] and "SASL PLAIN" in found["pop3_capa"]["detail"]
    assert found["pop3_auth"]["detail"] == f"signed in as {user} with AUTH PLAIN"
    assert found["pop3_uidl"]["detail"] == "UIDL lists 2 unique ids"
    assert found["pop3_stat"]["detail"].startswith("maildrop: 2 messages, ")
    assert password not in str(body)


async def test_stls_upgrade_then_sign_in(
    checker: ConnectionChecker, dovecot: Dovecot, password_user: tuple[str, str]
) -> None:
    user, password = password_user
    result = await pop3_alone(checker, dovecot, dovecot.pop3_port, "starttls", pw(user, password))
    assert result.ok, result.to_dict()
    found = steps(result)
    assert list(found) == [
        "dns", "tcp_connect", "greeting", "pop3_capa", "pop3_stls", "pop3_auth", "pop3_uidl", "pop3_stat",
    ]  # fmt: skip
    assert "STLS" in found["pop3_capa"]["detail"]
    assert found["pop3_uidl"]["detail"] == "UIDL lists 0 unique ids"
    assert found["pop3_stat"]["detail"] == "maildrop: 0 messages, 0 octets"


async def test_wrong_password_is_invalid_credentials_with_the_servers_words(
    checker: ConnectionChecker, dovecot: Dovecot, password_user: tuple[str, str]
) -> None:
    user, _ = password_user
    result = await pop3_alone(checker, dovecot, dovecot.pop3s_port, "ssl", pw(user, "not-the-password"))
    step = last(result)
    assert step["step"] == "pop3_auth" and step["code"] == "invalid_credentials"
    assert step["server_said"].startswith("-ERR") and "hint" in step
    assert "not-the-password" not in str(result.to_dict())


async def test_certificate_not_trusted_is_diagnosed_with_the_certificate(
    checker: ConnectionChecker, dovecot: Dovecot, password_user: tuple[str, str]
) -> None:
    user, password = password_user
    for target in (
        ServerTarget(LOCAL, dovecot.pop3s_port, "ssl"),
        ServerTarget(LOCAL, dovecot.pop3_port, "starttls"),
    ):
        result = await checker.check(None, None, pw(user, password), pop3=target)  # no bed CA
        step = last(result)
        assert step["step"] == ("tls_handshake" if target.security == "ssl" else "pop3_stls")
        assert step["code"].startswith("certificate_"), step
        assert step["certificate"]["pem"].startswith("-----BEGIN CERTIFICATE-----")


async def test_implicit_tls_on_the_plain_port_is_diagnosed(
    checker: ConnectionChecker, dovecot: Dovecot, password_user: tuple[str, str]
) -> None:
    user, password = password_user
    result = await pop3_alone(checker, dovecot, dovecot.pop3_port, "ssl", pw(user, password))
    step = last(result)
    assert step["step"] == "tls_handshake" and step["code"] == "tls_on_plaintext_port", step


async def test_server_refusing_stls(checker: ConnectionChecker, dovecot: Dovecot) -> None:
    refusing = POP3Script(capa=["USER", "UIDL", "STLS"], raw={"STLS": b"-ERR TLS not available now\r\n"})
    async with scripted_pop3(refusing) as port:
        result = await pop3_alone(checker, dovecot, port, "starttls")
    step = last(result)
    assert step["step"] == "pop3_stls" and step["code"] == "starttls_not_offered", step
    assert step["server_said"] == "-ERR TLS not available now"
    assert refusing.commands == ["CAPA", "STLS"]  # nothing else sent in clear

    not_offered = POP3Script(capa=["USER", "UIDL"])
    async with scripted_pop3(not_offered) as port:
        result = await pop3_alone(checker, dovecot, port, "starttls")
    step = last(result)
    assert step["step"] == "pop3_stls" and step["code"] == "starttls_not_offered"
    assert "STLS" in step["detail"] and step["suggestions"] == [{"port": 995, "security": "ssl"}]
    assert not_offered.commands == ["CAPA"]


async def test_server_without_uidl_is_uidl_unsupported(
    checker: ConnectionChecker, dovecot: Dovecot, imap_server_tls: ssl.SSLContext
) -> None:
    # CAPA says so: UIDL is not even tried.
    script = POP3Script(capa=["USER", "TOP"])
    async with scripted_pop3(script, tls=imap_server_tls) as port:
        result = await pop3_alone(checker, dovecot, port, "ssl")
    step = last(result)
    assert step["step"] == "pop3_uidl" and step["code"] == "uidl_unsupported", step
    assert "UIDL" not in script.commands and step["hint"]
    # No CAPA (an RFC 1939 server): UIDL is asked, and its refusal is the verdict.
    bare = POP3Script(capa=None, uidl=False)
    async with scripted_pop3(bare, tls=imap_server_tls) as port:
        result = await pop3_alone(checker, dovecot, port, "ssl")
    found = steps(result)
    assert found["pop3_capa"]["ok"] and "no CAPA" in found["pop3_capa"]["detail"]
    assert found["pop3_auth"]["detail"] == "signed in as u with USER/PASS"
    step = last(result)
    assert step["step"] == "pop3_uidl" and step["code"] == "uidl_unsupported"
    assert step["server_said"] == "-ERR unknown command"
