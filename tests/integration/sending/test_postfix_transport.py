"""mailport's SMTP transport against a real MTA: Postfix, with SMTP AUTH checked by Dovecot and
every accepted message delivered into Dovecot, read back over IMAP.

The aiosmtpd bed (test_smtp_transport.py) scripts the server's replies; this one proves the same
code against the server people actually run: its EHLO, its PIPELINING, its refusals in its words.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest

from mailport.crypto import Secret
from mailport.errors import InvalidCredentialsError, MessageTooLargeError, SMTPRejectedError
from mailport.mailboxes.models import AuthMethod, Mailbox, Security, ServerSettings
from mailport.sending.smtp_transport import SmtpTransport, is_temporary_send_error
from mailport.sending.transport import Outgoing
from tests.conftest import issue_token
from tests.integration.sending.outbox_bed import Box
from tests.integration.sending.postfix_bed import (
    Account,
    database_url,
    delivered,
    recipient,
    sender,
    settings,
)
from tests.mailstack.dovecot import Dovecot
from tests.mailstack.idp import MockIdP
from tests.mailstack.postfix import Postfix

__all__ = ["database_url", "recipient", "sender", "settings"]


def letter(
    frm: str, to: str, text: str = "Hello from mailport through Postfix.\n", **extra: str
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = frm, to, extra.pop("subject", "through Postfix")
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@example.test>"
    msg.set_content(text, **extra)  # type: ignore[arg-type]
    return msg


def wire(msg: EmailMessage) -> bytes:
    return msg.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def message_id(msg: EmailMessage) -> str:
    return str(msg["Message-ID"]).strip("<>")


async def mailbox(box: Box) -> Mailbox:
    return await box.services.mailboxes.get(box.tenant_id, box.mailbox_id)


class Commits:
    """The ``committing`` callback, counting its calls (the worker records the row there)."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self) -> None:
        self.calls += 1


async def test_password_auth_through_dovecot_sasl_and_delivery(
    sender: Box, recipient: Account, dovecot: Dovecot, postfix: Postfix
) -> None:
    transport = sender.services.transport(await mailbox(sender))
    msg = letter(sender.email, recipient.email)
    commits = Commits()
    try:
        accepted = await transport.transmit(
            Outgoing(wire(msg), sender.email, (recipient.email,)), committing=commits
        )
    finally:
        await transport.aclose()
    assert commits.calls == 1
    assert accepted.reply.startswith("250 2.0.0 Ok: queued as ") and accepted.refused == {}
    queue_id = accepted.reply.rsplit(" ", 1)[1]
    raw = delivered(dovecot, recipient, message_id(msg))
    assert f"with ESMTPSA id {queue_id}".encode() in raw  # submitted over TLS, authenticated
    assert raw.endswith(b"Hello from mailport through Postfix.\r\n")
    assert f"{queue_id}: client=localhost[127.0.0.1], sasl_method=PLAIN, sasl_username={sender.email}" in (
        postfix.log_tail(400)
    )


async def test_implicit_tls_port(sender: Box, recipient: Account, dovecot: Dovecot, postfix: Postfix) -> None:
    box = await mailbox(sender)
    ssl_box = dataclasses.replace(
        box, smtp=ServerSettings("127.0.0.1", postfix.submissions_port, Security.SSL)
    )
    transport = sender.services.transport(ssl_box)
    msg = letter(sender.email, recipient.email)
    try:
        await transport.transmit(Outgoing(wire(msg), sender.email, (recipient.email,)), committing=Commits())
    finally:
        await transport.aclose()
    assert b"with ESMTPSA" in delivered(dovecot, recipient, message_id(msg))


async def test_a_wrong_password_is_invalid_credentials_with_the_servers_words(
    sender: Box, recipient: Account
) -> None:
    wrong = dataclasses.replace(await mailbox(sender), password=Secret("not-the-password-42"))
    transport = sender.services.transport(wrong)
    commits = Commits()
    try:
        with pytest.raises(InvalidCredentialsError) as refused:
            await transport.transmit(
                Outgoing(wire(letter(sender.email, recipient.email)), sender.email, (recipient.email,)),
                committing=commits,
            )
    finally:
        await transport.aclose()
    error = refused.value
    assert error.code == "invalid_credentials" and not is_temporary_send_error(error)
    assert str(error.server_said).startswith("5.7.8 Error: authentication failed")  # Postfix's words
    assert "not-the-password-42" not in f"{error} {error!r} {error.server_said} {error.hint}"
    assert commits.calls == 0


async def test_an_8bit_message_arrives_byte_for_byte(
    sender: Box, recipient: Account, dovecot: Dovecot
) -> None:
    text = "Grüße aus Köln — ½ € für naïve Tests.\n"
    msg = letter(sender.email, recipient.email, text, subject="8bit", cte="8bit")
    raw = wire(msg)
    assert b"Content-Transfer-Encoding: 8bit" in raw and "Köln".encode() in raw
    transport = sender.services.transport(await mailbox(sender))
    try:
        await transport.transmit(
            Outgoing(raw, sender.email, (recipient.email,), eight_bit=True), committing=Commits()
        )
    finally:
        await transport.aclose()
    arrived = delivered(dovecot, recipient, message_id(msg))
    assert arrived.endswith(raw.split(b"\r\n\r\n", 1)[1])  # the body, not re-encoded
    assert b"Content-Transfer-Encoding: 8bit" in arrived


async def test_a_large_message_arrives_whole(sender: Box, recipient: Account, dovecot: Dovecot) -> None:
    msg = letter(sender.email, recipient.email, subject="large")
    blob = bytes(range(256)) * (6 * 1024 * 1024 // 256)  # 6 MiB of every byte value
    msg.add_attachment(blob, maintype="application", subtype="octet-stream", filename="big.bin")
    raw = wire(msg)
    transport = sender.services.transport(await mailbox(sender))
    try:
        await transport.transmit(Outgoing(raw, sender.email, (recipient.email,)), committing=Commits())
    finally:
        await transport.aclose()
    arrived = delivered(dovecot, recipient, message_id(msg), timeout=60)
    body = arrived.split(b"\r\n\r\n", 1)[1]
    assert body == raw.split(b"\r\n\r\n", 1)[1]
    parts = list(message_from_bytes(arrived, policy=policy.default).iter_attachments())  # type: ignore[attr-defined]
    assert parts[0].get_content() == blob


async def test_a_message_over_postfixs_size_limit_is_never_sent(
    sender: Box, recipient: Account, postfix: Postfix
) -> None:
    raw = wire(letter(sender.email, recipient.email, "x" * 70 + "\n")) + (b"y" * 998 + b"\r\n") * (
        postfix.message_size_limit // 1000 + 10
    )
    transport = sender.services.transport(await mailbox(sender))
    commits = Commits()
    try:
        with pytest.raises(MessageTooLargeError) as too_large:
            await transport.transmit(Outgoing(raw, sender.email, (recipient.email,)), committing=commits)
    finally:
        await transport.aclose()
    assert too_large.value.code == "message_too_large" and not is_temporary_send_error(too_large.value)
    assert commits.calls == 0


async def test_recipients_postfix_refuses(sender: Box, recipient: Account, dovecot: Dovecot) -> None:
    unknown = f"nosuch-{uuid.uuid4().hex[:6]}@example.test"
    transport = sender.services.transport(await mailbox(sender))
    try:
        msg = letter(sender.email, recipient.email)
        accepted = await transport.transmit(
            Outgoing(wire(msg), sender.email, (unknown, recipient.email)), committing=Commits()
        )
        refused = f"550 5.1.1 <{unknown}>: Recipient address rejected: User unknown in virtual mailbox table"
        assert accepted.refused == {unknown: refused}
        delivered(dovecot, recipient, message_id(msg))
        commits = Commits()
        with pytest.raises(SMTPRejectedError) as rejected:
            await transport.transmit(
                Outgoing(wire(letter(sender.email, unknown)), sender.email, (unknown,)), committing=commits
            )
        assert rejected.value.smtp_code == 550 and not is_temporary_send_error(rejected.value)
        assert "User unknown in virtual mailbox table" in str(rejected.value.server_said)
        assert commits.calls == 0
        # the session survives a refused transaction (RSET) and sends the next message
        again = letter(sender.email, recipient.email)
        await transport.transmit(
            Outgoing(wire(again), sender.email, (recipient.email,)), committing=Commits()
        )
    finally:
        await transport.aclose()
    delivered(dovecot, recipient, message_id(again))


async def test_concurrent_messages_share_two_sessions(
    sender: Box, recipient: Account, dovecot: Dovecot, postfix: Postfix
) -> None:
    box = await mailbox(sender)
    transport = SmtpTransport(
        box,
        guard=sender.services.guard,
        ssl_context=sender.services.trust.context(None),
        connections=2,
    )
    letters = [letter(sender.email, recipient.email, subject=f"batch {i}") for i in range(8)]
    try:
        results = await asyncio.gather(
            *(
                transport.transmit(Outgoing(wire(m), sender.email, (recipient.email,)), committing=Commits())
                for m in letters
            )
        )
    finally:
        await transport.aclose()
    assert len({r.reply for r in results}) == 8  # eight queue ids
    assert transport.sessions_opened == 2
    for m in letters:
        delivered(dovecot, recipient, message_id(m))
    # each message was its own authenticated transaction in Postfix's log
    assert postfix.log_tail(100_000).count(f"sasl_method=PLAIN, sasl_username={sender.email}") == 8


async def test_xoauth2_through_postfix_refreshes_an_expired_token_once(
    sender: Box, recipient: Account, dovecot: Dovecot, idp: MockIdP, oauth_user: tuple[str, dict[str, object]]
) -> None:
    """Dovecot checks the token Postfix relays (introspection at the IdP); the expired one is
    refused, the transport asks for a fresh one once and sends with it."""
    email, token = oauth_user
    expired = Secret(str(issue_token(idp, email, expires_in=-1)["access_token"]))
    refreshed: list[Secret | None] = []

    async def token_source() -> Secret:
        return expired

    async def force_refresh(rejected: Secret | None) -> Secret:
        refreshed.append(rejected)
        return Secret(str(token["access_token"]))

    box = dataclasses.replace(
        await mailbox(sender), email=email, auth_method=AuthMethod.OAUTH2, password=None
    )
    transport = SmtpTransport(
        box,
        token_source=token_source,
        force_refresh=force_refresh,
        guard=sender.services.guard,
        ssl_context=sender.services.trust.context(None),
    )
    msg = letter(email, recipient.email)
    try:
        await transport.transmit(Outgoing(wire(msg), email, (recipient.email,)), committing=Commits())
    finally:
        await transport.aclose()
    assert refreshed == [expired]
    assert b"with ESMTPSA" in delivered(dovecot, recipient, message_id(msg))
