"""Each provider's exact words, replayed by a scripted server over TLS, through the real check.

The scripted servers (``tests/fixtures/scripted.py``) present the bed's certificate, so the
check passes DNS, TCP, TLS and the greeting for real and meets the provider's answer where the
provider gives it: at sign-in (IMAP ``LOGIN``/``AUTHENTICATE``, SMTP ``AUTH``) or at ``SELECT``.
The cases and their sources are in ``tests/unit/check/test_troubleshoot.py``.
"""

from __future__ import annotations

import ssl
from typing import Any

import pytest

from mailport.check import CheckCredentials, ConnectionChecker, ServerTarget
from mailport.crypto import Secret
from mailport.diagnosis import ServerReply
from tests.fixtures.scripted import IMAPScript, SMTPScript, scripted_imap, scripted_smtp
from tests.mailstack.dovecot import Dovecot
from tests.unit.check.test_troubleshoot import CASES, Case

IMAP_CASES = [c for c in CASES if c.protocol == "imap"]
SMTP_CASES = [c for c in CASES if c.protocol == "smtp"]
SECRET = "s3cret-never-shown-41"


def imap_wire(reply: ServerReply) -> str:
    code = f"[{reply.response_code}] " if reply.response_code else ""
    return f"{reply.status} {code}{reply.text}".strip()


def smtp_wire(reply: ServerReply) -> str:
    return " ".join(p for p in (str(reply.smtp_code), reply.enhanced_code, reply.text) if p)


def credentials(case: Case) -> CheckCredentials:
    if case.auth == "oauth2":
        return CheckCredentials("someone@example.test", access_token=Secret(SECRET), provider=case.provider)
    return CheckCredentials("someone@example.test", password=Secret(SECRET), provider=case.provider)


async def last_imap_step(checker: ConnectionChecker, port: int) -> dict[str, Any]:
    """The last step of an IMAP-only check (STARTTLS, a password) against 127.0.0.1:``port``."""
    result = await checker.check(
        ServerTarget("127.0.0.1", port, "starttls"),
        None,
        CheckCredentials("a@example.test", password=Secret("x")),
    )
    return dict(result.to_dict()["imap"]["steps"][-1])


@pytest.mark.parametrize("case", IMAP_CASES, ids=[c.name for c in IMAP_CASES])
async def test_imap_provider_answer_through_the_check(
    case: Case, checker: ConnectionChecker, dovecot: Dovecot, imap_server_tls: ssl.SSLContext
) -> None:
    script = IMAPScript()
    answer = imap_wire(case.reply)
    if case.step == "select":
        script.select = answer
    else:  # LOGIN or AUTHENTICATE PLAIN/XOAUTH2, whichever the check chooses
        script.login = script.authenticate = answer
    async with scripted_imap(script, tls=imap_server_tls) as port:
        result = await checker.check(
            ServerTarget("127.0.0.1", port, "ssl"), None, credentials(case), ca_file=dovecot.ca_file
        )
    body = result.to_dict()
    assert body["ok"] is False
    step = body["imap"]["steps"][-1]
    assert [s["ok"] for s in body["imap"]["steps"]] == [True] * (len(body["imap"]["steps"]) - 1) + [False]
    assert step["step"] == case.step, case.source
    assert step["code"] == case.code, case.source
    assert step["server_said"] == case.reply.quoted()
    for text in case.hint_has:
        assert text in step["hint"], (case.name, text)
    assert SECRET not in str(body)


@pytest.mark.parametrize("case", SMTP_CASES, ids=[c.name for c in SMTP_CASES])
async def test_smtp_provider_answer_through_the_check(
    case: Case, checker: ConnectionChecker, dovecot: Dovecot, imap_server_tls: ssl.SSLContext
) -> None:
    async with (
        scripted_imap(IMAPScript(), tls=imap_server_tls) as imap_port,
        scripted_smtp(SMTPScript(auth=smtp_wire(case.reply)), tls=imap_server_tls) as smtp_port,
    ):
        result = await checker.check(
            ServerTarget("127.0.0.1", imap_port, "ssl"),
            ServerTarget("127.0.0.1", smtp_port, "ssl"),
            credentials(case),
            ca_file=dovecot.ca_file,
        )
    body = result.to_dict()
    assert body["imap"]["ok"] is True  # the scripted IMAP side accepts: only SMTP fails
    assert body["ok"] is False
    step = body["smtp"]["steps"][-1]
    assert (step["step"], step["code"]) == ("smtp_auth", case.code), case.source
    assert step["server_said"] == case.reply.quoted()
    for text in case.hint_has:
        assert text in step["hint"], (case.name, text)
    assert SECRET not in str(body)


async def test_gmail_multiline_reply_as_gmail_sends_it(
    checker: ConnectionChecker, dovecot: Dovecot, imap_server_tls: ssl.SSLContext
) -> None:
    gmail = SMTPScript(
        auth=(
            "534-5.7.9 Application-specific password required. For more information, go to\r\n"
            "534 5.7.9  https://support.google.com/mail/?p=InvalidSecondFactor "
            "6a1803df08f44-8ffd82ea9casm7101606d6.42 - gsmtp"
        )
    )
    async with (
        scripted_imap(IMAPScript(), tls=imap_server_tls) as imap_port,
        scripted_smtp(gmail, tls=imap_server_tls) as smtp_port,
    ):
        result = await checker.check(
            ServerTarget("127.0.0.1", imap_port, "ssl"),
            ServerTarget("127.0.0.1", smtp_port, "ssl"),
            CheckCredentials("someone@gmail.com", password=Secret(SECRET)),
            ca_file=dovecot.ca_file,
        )
    step = result.to_dict()["smtp"]["steps"][-1]
    assert step["code"] == "app_password_required"  # the provider is recognised from "gsmtp"
    assert "myaccount.google.com/apppasswords" in step["hint"]


async def test_starttls_not_offered(checker: ConnectionChecker, dovecot: Dovecot) -> None:
    imap_script = IMAPScript(
        greeting="* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] no tls here", capabilities="IMAP4rev1 AUTH=PLAIN"
    )
    async with (
        scripted_imap(imap_script) as imap_port,
        scripted_smtp(SMTPScript(extensions=("AUTH PLAIN LOGIN",))) as smtp_port,
    ):
        result = await checker.check(
            ServerTarget("127.0.0.1", imap_port, "starttls"),
            ServerTarget("127.0.0.1", smtp_port, "starttls"),
            CheckCredentials("a@example.test", password=Secret(SECRET)),
        )
    body = result.to_dict()
    imap = body["imap"]["steps"][-1]
    assert (imap["step"], imap["code"]) == ("starttls", "starttls_not_offered")
    assert imap["suggestions"] == [{"port": 993, "security": "ssl"}]
    smtp_step = body["smtp"]["steps"][-1]
    assert (smtp_step["step"], smtp_step["code"]) == ("smtp_starttls", "starttls_not_offered")
    assert imap_script.commands.count("LOGIN") == 0  # no credentials over plaintext


async def test_too_many_connections_at_greeting(checker: ConnectionChecker) -> None:
    script = IMAPScript(
        greeting="* BYE Maximum number of connections from user+IP exceeded (mail_max_userip_connections=10)"
    )
    async with scripted_imap(script) as port:
        step = await last_imap_step(checker, port)
    assert (step["step"], step["code"]) == ("greeting", "too_many_connections")
    assert "Maximum number of connections" in step["server_said"]


async def test_an_smtp_server_on_the_imap_port(checker: ConnectionChecker) -> None:
    async with scripted_smtp(SMTPScript()) as port:
        step = await last_imap_step(checker, port)
    assert (step["step"], step["code"]) == ("greeting", "wrong_service")
    assert step["server_said"].startswith("220 scripted.test")
