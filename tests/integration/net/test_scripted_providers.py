"""Each provider's exact words, replayed by a scripted server over a real socket, then diagnosed.

IMAP is driven with a few raw commands (mailport's IMAP client lands on another branch); SMTP with
aiosmtplib, the client mailport sends with, so its exception is what the check will receive.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable
from typing import TypeVar

import aiosmtplib
import pytest

from mailport.diagnosis import Failure, ServerReply, diagnose
from tests.fixtures.scripted import IMAPScript, SMTPScript, scripted_imap, scripted_smtp
from tests.unit.check.test_troubleshoot import CASES, Case

IMAP_CASES = [c for c in CASES if c.protocol == "imap"]
SMTP_CASES = [c for c in CASES if c.protocol == "smtp"]


def imap_wire(reply: ServerReply) -> str:
    code = f"[{reply.response_code}] " if reply.response_code else ""
    return f"{reply.status} {code}{reply.text}".strip()


async def imap_client(port: int, case: Case) -> bytes:
    """Greeting, then LOGIN / AUTHENTICATE (and SELECT): the last tagged or BYE line."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        await reader.readline()
        if case.auth == "oauth2":
            sasl = base64.b64encode(b"user=someone@example.test\x01auth=Bearer t0k3n\x01\x01").decode()
            commands = [f"a1 AUTHENTICATE XOAUTH2 {sasl}"]
        else:
            commands = ['a1 LOGIN "someone@example.test" "secret"']
        if case.step == "select":
            commands.append("a2 SELECT INBOX")
        line = b""
        for command in commands:
            writer.write(command.encode() + b"\r\n")
            await writer.drain()
            line = await asyncio.wait_for(reader.readline(), 5)
            if line.startswith(b"* BYE"):
                break
        return line
    finally:
        writer.close()


@pytest.mark.parametrize("case", IMAP_CASES, ids=[c.name for c in IMAP_CASES])
async def test_imap_provider_words_over_the_wire(case: Case) -> None:
    answer = imap_wire(case.reply)
    script = IMAPScript()
    if case.step == "select":
        script.select = answer
    elif case.auth == "oauth2":
        script.authenticate = answer
    else:
        script.login = answer
    async with scripted_imap(script) as port:
        line = await imap_client(port, case)
    reply = ServerReply.imap(line)
    assert reply.text == case.reply.text
    diagnosis = diagnose(
        Failure(
            step=case.step,  # type: ignore[arg-type]
            protocol="imap",
            provider=case.provider,
            host="127.0.0.1",
            port=port,
            auth=case.auth,
            reply=reply,
        )
    )
    assert diagnosis.code == case.code, case.source


ErrorT = TypeVar("ErrorT", bound=BaseException)


async def refused_by(
    script: SMTPScript, command: Callable[[aiosmtplib.SMTP], Awaitable[object]], error: type[ErrorT]
) -> tuple[ErrorT, int]:
    """Run one aiosmtplib ``command`` against a server playing ``script``: the error it must
    raise, and the server's port."""
    async with scripted_smtp(script) as port:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, use_tls=False, start_tls=False)
        await client.connect()
        try:
            with pytest.raises(error) as info:
                await command(client)
        finally:
            client.close()
    return info.value, port


@pytest.mark.parametrize("case", SMTP_CASES, ids=[c.name for c in SMTP_CASES])
async def test_smtp_provider_words_through_aiosmtplib(case: Case) -> None:
    wire = " ".join(p for p in (str(case.reply.smtp_code), case.reply.enhanced_code, case.reply.text) if p)
    script = SMTPScript(auth=wire)
    refused, _ = await refused_by(
        script,
        lambda client: client.login("someone@example.test", "secret"),
        aiosmtplib.SMTPAuthenticationError,
    )
    diagnosis = diagnose(
        Failure(step="smtp_auth", protocol="smtp", provider=case.provider, auth=case.auth, error=refused)
    )
    assert diagnosis.code == case.code, case.source
    assert diagnosis.server_said and diagnosis.server_said.startswith(str(case.reply.smtp_code))


async def test_gmail_multiline_smtp_reply_as_sent_by_gmail() -> None:
    script = SMTPScript(
        auth=(
            "534-5.7.9 Application-specific password required. For more information, go to\r\n"
            "534 5.7.9  https://support.google.com/mail/?p=InvalidSecondFactor "
            "6a1803df08f44-8ffd82ea9casm7101606d6.42 - gsmtp"
        )
    )
    refused, _ = await refused_by(
        script,
        lambda client: client.login("someone@gmail.com", "account-password"),
        aiosmtplib.SMTPAuthenticationError,
    )
    diagnosis = diagnose(Failure(step="smtp_auth", protocol="smtp", host="smtp.gmail.com", error=refused))
    assert diagnosis.code == "app_password_required"
    assert diagnosis.server_said == (
        "534 5.7.9 Application-specific password required. For more information, go to "
        "https://support.google.com/mail/?p=InvalidSecondFactor "
        "6a1803df08f44-8ffd82ea9casm7101606d6.42 - gsmtp"
    )


async def test_starttls_not_offered_by_a_scripted_server() -> None:
    script = SMTPScript(extensions=("AUTH PLAIN",))
    refused, port = await refused_by(script, lambda client: client.starttls(), aiosmtplib.SMTPException)
    diagnosis = diagnose(Failure(step="smtp_starttls", protocol="smtp", host="127.0.0.1", port=port))
    assert "STARTTLS" in str(refused) or "starttls" in str(refused).lower()
    assert diagnosis.code == "starttls_not_offered"
