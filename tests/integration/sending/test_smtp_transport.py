"""The outbound queue's SMTP transport against the aiosmtpd submission bed (and Dovecot)."""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
import ssl
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from email.message import EmailMessage

import pytest

from mailport.crypto import Secret
from mailport.errors import (
    AuthenticationError,
    ConnectionLostError,
    HostNotAllowedError,
    InvalidCredentialsError,
    MessageTooLargeError,
    SmtpNotConfiguredError,
    SMTPRejectedError,
    SMTPUTF8UnsupportedError,
)
from mailport.imap import ImapClient, PasswordAuth
from mailport.mailboxes.models import (
    AuthMethod,
    Health,
    Mailbox,
    ProcessingSettings,
    Security,
    ServerSettings,
)
from mailport.net.guard import HostGuard
from mailport.sending.smtp_transport import SmtpTransport, is_temporary_send_error, seven_bit
from mailport.sending.transport import Accepted, Outgoing
from tests.conftest import issue_token
from tests.mailstack.dovecot import Dovecot, free_port
from tests.mailstack.smtp import SubmissionHandler, SubmissionServer, introspection_validator

NOW = datetime(2026, 12, 5, tzinfo=UTC)


@pytest.fixture(scope="module")
def bed(dovecot: Dovecot, idp) -> Iterator[SubmissionServer]:
    """A submission server of this module's own (scripts and switches never leak to other tests);
    no LMTP: what arrived is in ``handler.messages``."""
    handler = SubmissionHandler(
        users=dovecot.users, token_validator=introspection_validator(f"{idp.url}/introspect")
    )
    server = SubmissionServer(
        handler,
        cert=str(dovecot.root / "ssl/cert.pem"),
        key=str(dovecot.root / "ssl/key.pem"),
        port=free_port(),
        tls_port=free_port(),
    )
    with server:
        yield server


@pytest.fixture
def server(bed: SubmissionServer) -> Iterator[SubmissionServer]:
    bed.handler.reset()
    yield bed
    bed.handler.reset()


def mailbox(
    port: int,
    *,
    email_address: str | None = None,
    password: str | None = None,
    auth: AuthMethod = AuthMethod.PASSWORD,
    security: Security = Security.STARTTLS,
    host: str = "127.0.0.1",
    provider_id: str | None = None,
    smtp: bool = True,
) -> Mailbox:
    local = f"u{uuid.uuid4().hex[:8]}"
    address = email_address or f"{local}@dyn.example.test"
    return Mailbox(
        id="mbx_test",
        tenant_id="ten_test",
        email=address,
        auth_method=auth,
        imap=None,
        smtp=ServerSettings(host, port, security) if smtp else None,
        label=None,
        purpose=None,
        provider_id=provider_id,
        password=Secret(password if password is not None else f"pw-{address.split('@')[0]}")
        if auth is not AuthMethod.OAUTH2
        else None,
        oauth=None,
        token_version=0,
        settings=ProcessingSettings(),
        health=Health(),
        created_at=NOW,
        updated_at=NOW,
    )


def outgoing(
    sender: str,
    *recipients: str,
    subject: str = "hello",
    body: str = "sent by the outbox\n",
    eight_bit: bool = False,
    smtputf8: bool = False,
) -> Outgoing:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, ", ".join(recipients), subject
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@example.test>"
    msg.set_content(body, cte="8bit" if eight_bit else None)
    raw = msg.as_bytes(policy=email.policy.SMTP.clone(utf8=smtputf8))
    return Outgoing(raw=raw, sender=sender, recipients=recipients, eight_bit=eight_bit, smtputf8=smtputf8)


def lf(data: bytes) -> bytes:
    """Line endings as LF (an 8-bit part read back keeps the CRLF of the wire; a re-encoded one does not)."""
    return data.replace(b"\r\n", b"\n")


async def noop() -> None:
    return None


@pytest.fixture
def tls(dovecot: Dovecot) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=dovecot.ca_file)


@pytest.fixture
async def make(tls: ssl.SSLContext) -> AsyncIterator:
    """Build transports that are closed after the test."""
    built: list[SmtpTransport] = []

    def build(box: Mailbox, **options) -> SmtpTransport:
        options.setdefault("guard", HostGuard.for_operator())
        options.setdefault("ssl_context", tls)
        options.setdefault("timeout", 10)
        transport = SmtpTransport(box, **options)
        built.append(transport)
        return transport

    yield build
    for transport in built:
        await transport.aclose()


# --------------------------------------------------------------------------- the transaction


@pytest.mark.parametrize("pipelining", [True, False])
async def test_sends_pipelined_or_one_command_at_a_time(
    server: SubmissionServer, make, pipelining: bool
) -> None:
    server.handler.pipelining = pipelining
    box = mailbox(server.port)
    transport = make(box)
    message = outgoing(box.email, "ann@example.org", "bob@example.org")
    accepted = await transport.transmit(message, committing=noop)
    assert accepted.reply.startswith("250 2.0.0 Ok: queued") and accepted.refused == {}
    received = server.handler.messages[-1]
    assert received.mail_from == box.email
    assert received.rcpt_tos == ["ann@example.org", "bob@example.org"]
    assert received.auth_user == box.email
    assert received.pipelined is pipelining  # MAIL, RCPT… and DATA came in one write, or not
    assert received.data.replace(b"\r\n", b"\n") == message.raw.replace(b"\r\n", b"\n")
    assert any(o.startswith("SIZE=") for o in received.mail_options)


async def test_dot_stuffing_and_bare_line_endings(server: SubmissionServer, make) -> None:
    box = mailbox(server.port)
    raw = b"From: a@example.test\nTo: b@example.org\nSubject: dots\n\n.leading dot\n..two\n.\nend"
    accepted = await make(box).transmit(
        Outgoing(raw=raw, sender=box.email, recipients=("b@example.org",)), committing=noop
    )
    assert accepted.reply.startswith("250")
    assert server.handler.messages[-1].data == raw.replace(b"\n", b"\r\n") + b"\r\n"


async def test_committing_is_awaited_before_the_final_dot(server: SubmissionServer, make) -> None:
    box = mailbox(server.port)
    seen: list[int] = []

    async def committing() -> None:
        await asyncio.sleep(0.2)  # the body has reached the server by now: it still has nothing
        seen.append(len(server.handler.messages))

    await make(box).transmit(outgoing(box.email, "ann@example.org"), committing=committing)
    assert seen == [0]
    assert len(server.handler.messages) == 1


async def test_a_failing_committing_sends_nothing_and_closes_the_session(
    server: SubmissionServer, make
) -> None:
    box = mailbox(server.port)
    transport = make(box)

    class Boom(Exception):
        pass

    async def committing() -> None:
        raise Boom

    with pytest.raises(Boom):
        await transport.transmit(outgoing(box.email, "ann@example.org"), committing=committing)
    await asyncio.sleep(0.2)
    assert server.handler.messages == []
    assert server.handler.active == 0  # closed without the final dot: the server dropped it
    accepted = await transport.transmit(outgoing(box.email, "ann@example.org"), committing=noop)
    assert accepted.reply.startswith("250") and len(server.handler.messages) == 1
    assert server.handler.connections == 2


async def test_a_large_message_is_written_in_full_before_committing(server: SubmissionServer, make) -> None:
    # 3 MB: far over the transport's write buffer, so the body is drained (flow control) first
    box = mailbox(server.port)
    message = outgoing(box.email, "ann@example.org", body=("y" * 76 + "\n") * 40_000)
    seen: list[int] = []

    async def committing() -> None:
        seen.append(len(server.handler.messages))

    await make(box).transmit(message, committing=committing)
    assert seen == [0]
    assert lf(server.handler.messages[-1].data) == lf(message.raw)


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("pipelining", [True, False])
async def test_partial_refusal_is_reported_and_the_rest_is_sent(
    server: SubmissionServer, make, pipelining: bool
) -> None:
    server.handler.pipelining = pipelining
    server.handler.refuse["nobody@example.org"] = "550 5.1.1 no such user"
    box = mailbox(server.port)
    accepted = await make(box).transmit(
        outgoing(box.email, "ann@example.org", "nobody@example.org"), committing=noop
    )
    assert accepted.refused == {"nobody@example.org": "550 5.1.1 no such user"}
    assert server.handler.messages[-1].rcpt_tos == ["ann@example.org"]


@pytest.mark.parametrize("pipelining", [True, False])
async def test_all_refused_raises_with_the_first_code_and_the_session_stays_usable(
    server: SubmissionServer, make, pipelining: bool
) -> None:
    server.handler.pipelining = pipelining
    server.handler.refuse["x@example.org"] = "550 5.1.1 no such user"
    server.handler.refuse["y@example.org"] = "451 4.3.0 try later"
    box = mailbox(server.port)
    transport = make(box)
    committed: list[bool] = []

    async def committing() -> None:
        committed.append(True)

    with pytest.raises(SMTPRejectedError) as info:
        await transport.transmit(outgoing(box.email, "x@example.org", "y@example.org"), committing=committing)
    assert info.value.smtp_code == 550
    assert "x@example.org: 550 5.1.1 no such user" in (info.value.server_said or "")
    assert "y@example.org: 451 4.3.0 try later" in (info.value.server_said or "")
    assert not is_temporary_send_error(info.value)
    assert committed == [] and server.handler.messages == []
    # the pipelined DATA's 503 was read in order and RSET sent: the next message goes through
    accepted = await transport.transmit(outgoing(box.email, "ann@example.org"), committing=noop)
    assert accepted.reply.startswith("250")
    assert server.handler.connections == 1


async def test_354_after_every_recipient_was_refused_is_ended_with_a_lone_dot(
    server: SubmissionServer, make
) -> None:
    # RFC 2920 §3.1: the client "cannot assume that the DATA command will be rejected just
    # because none of the RCPT TO commands worked"; if it was accepted, it sends a single dot.
    server.handler.data_without_recipients = True
    server.handler.refuse["x@example.org"] = "550 5.1.1 no such user"
    box = mailbox(server.port)
    transport = make(box)
    with pytest.raises(SMTPRejectedError) as info:
        await transport.transmit(outgoing(box.email, "x@example.org"), committing=noop)
    assert info.value.smtp_code == 550
    assert server.handler.messages == []
    accepted = await transport.transmit(outgoing(box.email, "ann@example.org"), committing=noop)
    assert accepted.reply.startswith("250") and server.handler.connections == 1


@pytest.mark.parametrize(
    ("stage", "reply", "temporary"),
    [
        ("MAIL", "451 4.3.0 try later", True),
        ("MAIL", "550 5.7.1 sender refused", False),
        ("DATA", "451 4.3.0 try later", True),
        ("DATA", "554 5.6.0 message refused", False),
    ],
)
async def test_4xx_is_temporary_and_5xx_permanent(
    server: SubmissionServer, make, stage: str, reply: str, temporary: bool
) -> None:
    server.handler.script(stage, reply)
    box = mailbox(server.port)
    transport = make(box)
    with pytest.raises(SMTPRejectedError) as info:
        await transport.transmit(outgoing(box.email, "ann@example.org"), committing=noop)
    code, _, words = reply.partition(" ")
    assert info.value.smtp_code == int(code)
    assert info.value.server_said == words
    assert is_temporary_send_error(info.value) is temporary
    assert server.handler.messages == []
    # RSET after the failed transaction; the same session carries the next message
    await transport.transmit(outgoing(box.email, "ann@example.org"), committing=noop)
    assert len(server.handler.messages) == 1 and server.handler.connections == 1


async def test_connection_errors_are_temporary(make) -> None:
    port = free_port()  # nothing listens there
    transport = make(mailbox(port))
    with pytest.raises(Exception) as info:
        await transport.transmit(outgoing("a@dyn.example.test", "ann@example.org"), committing=noop)
    assert is_temporary_send_error(info.value)


# --------------------------------------------------------------------------- extensions


async def test_8bit_body_with_8bitmime(server: SubmissionServer, make) -> None:
    box = mailbox(server.port)
    text = "Grüße aus Köln — ça marche\n"
    message = outgoing(box.email, "ann@example.org", body=text, eight_bit=True)
    assert b"\xc3\xbc" in message.raw
    await make(box).transmit(message, committing=noop)
    received = server.handler.messages[-1]
    assert "BODY=8BITMIME" in received.mail_options
    assert received.data.replace(b"\r\n", b"\n") == message.raw.replace(b"\r\n", b"\n")


async def test_8bit_body_is_converted_for_a_server_without_8bitmime(server: SubmissionServer, make) -> None:
    server.handler.eight_bit_mime = False
    box = mailbox(server.port)
    text = "Grüße aus Köln — ça marche\n"
    message = outgoing(box.email, "ann@example.org", subject="Umlauts", body=text, eight_bit=True)
    await make(box).transmit(message, committing=noop)
    received = server.handler.messages[-1]
    assert "BODY=8BITMIME" not in received.mail_options
    assert all(b < 0x80 for b in received.data)  # 7-bit on the wire
    parsed = email.message_from_bytes(received.data, policy=email.policy.default)
    assert parsed["Content-Transfer-Encoding"] in ("quoted-printable", "base64")
    assert parsed.get_content() == text  # the same text once decoded
    original = email.message_from_bytes(message.raw, policy=email.policy.default)
    for header in ("From", "To", "Subject", "Message-ID", "Content-Type"):
        assert parsed[header] == original[header]


def leaves(message: email.message.Message) -> list[tuple[str, bytes]]:
    parts = [p for p in message.walk() if not p.is_multipart()]
    return [(p.get_content_type(), lf(p.get_payload(decode=True))) for p in parts]


def test_seven_bit_keeps_multipart_structure_and_attachments() -> None:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "a@example.test", "b@example.org", "parts"
    msg.set_content("Ünïcödé text\n", cte="8bit")
    msg.add_alternative("<p>Ünïcödé html</p>\n", subtype="html", cte="8bit")
    msg.add_attachment(bytes(range(256)), maintype="application", subtype="octet-stream", filename="b.bin")
    raw = msg.as_bytes(policy=email.policy.SMTP)
    converted = seven_bit(raw)
    assert all(b < 0x80 for b in converted)
    before = email.message_from_bytes(raw, policy=email.policy.default)
    after = email.message_from_bytes(converted, policy=email.policy.default)
    parts_before = [
        (p.get_content_type(), lf(p.get_payload(decode=True))) for p in before.walk() if not p.is_multipart()
    ]
    parts_after = [
        (p.get_content_type(), lf(p.get_payload(decode=True))) for p in after.walk() if not p.is_multipart()
    ]
    assert parts_before == parts_after
    assert after.get_boundary() == before.get_boundary()


async def test_smtputf8_when_offered(server: SubmissionServer, make) -> None:
    box = mailbox(server.port)
    message = outgoing(box.email, "josé@example.org", body="olá\n", eight_bit=True, smtputf8=True)
    accepted = await make(box).transmit(message, committing=noop)
    assert accepted.reply.startswith("250")
    received = server.handler.messages[-1]
    assert "SMTPUTF8" in received.mail_options
    assert received.rcpt_tos == ["josé@example.org"]


async def test_smtputf8_missing_is_a_permanent_error_of_its_own(server: SubmissionServer, make) -> None:
    server.handler.smtputf8 = False
    box = mailbox(server.port)
    message = outgoing(box.email, "josé@example.org", eight_bit=True, smtputf8=True)
    with pytest.raises(SMTPUTF8UnsupportedError) as info:
        await make(box).transmit(message, committing=noop)
    assert info.value.code == "smtputf8_unsupported"
    assert not is_temporary_send_error(info.value)
    assert server.handler.messages == []


async def test_size_over_the_servers_limit_is_refused_before_sending(server: SubmissionServer, make) -> None:
    server.handler.size = 2000
    box = mailbox(server.port)
    committed: list[bool] = []

    async def committing() -> None:
        committed.append(True)

    big = outgoing(box.email, "ann@example.org", body="x" * 5000 + "\n")
    with pytest.raises(MessageTooLargeError) as info:
        await make(box).transmit(big, committing=committing)
    assert not is_temporary_send_error(info.value)
    assert committed == [] and server.handler.messages == []


# --------------------------------------------------------------------------- sessions


async def test_sessions_are_reused(server: SubmissionServer, make) -> None:
    box = mailbox(server.port)
    transport = make(box)
    for n in range(10):
        await transport.transmit(outgoing(box.email, "ann@example.org", subject=f"n{n}"), committing=noop)
    assert len(server.handler.messages) == 10
    assert server.handler.connections == 1
    assert {m.connection for m in server.handler.messages} == {server.handler.messages[0].connection}


async def test_concurrency_is_bounded_by_connections(server: SubmissionServer, make) -> None:
    async def slow(received) -> None:
        await asyncio.sleep(0.05)

    server.handler.on_message = slow
    box = mailbox(server.port)
    transport = make(box, connections=3)
    await asyncio.gather(
        *(
            transport.transmit(outgoing(box.email, "ann@example.org", subject=f"c{n}"), committing=noop)
            for n in range(12)
        )
    )
    assert len(server.handler.messages) == 12
    assert server.handler.connections == 3
    assert server.handler.max_active == 3


async def test_idle_sessions_are_closed(server: SubmissionServer, make) -> None:
    box = mailbox(server.port)
    transport = make(box, idle_seconds=0.2)
    await transport.transmit(outgoing(box.email, "ann@example.org"), committing=noop)
    assert server.handler.active == 1
    await asyncio.sleep(0.6)
    assert server.handler.active == 0
    await transport.transmit(outgoing(box.email, "ann@example.org"), committing=noop)
    assert server.handler.connections == 2


async def test_aclose_quits_every_session(server: SubmissionServer, make) -> None:
    box = mailbox(server.port)
    transport = make(box)
    await transport.transmit(outgoing(box.email, "ann@example.org"), committing=noop)
    await transport.aclose()
    await asyncio.sleep(0.1)
    assert server.handler.active == 0


@pytest.mark.parametrize("failure", ["421 4.3.2 shutting down", "DROP"])
async def test_a_dead_kept_session_is_replaced_transparently(
    server: SubmissionServer, make, failure: str
) -> None:
    box = mailbox(server.port)
    transport = make(box)
    await transport.transmit(outgoing(box.email, "ann@example.org"), committing=noop)
    server.handler.script("MAIL", failure)  # the kept session dies at the next MAIL
    accepted = await transport.transmit(outgoing(box.email, "ann@example.org"), committing=noop)
    assert accepted.reply.startswith("250")
    assert len(server.handler.messages) == 2
    assert server.handler.connections == 2
    assert [m.connection for m in server.handler.messages] == [1, 2]


async def test_421_on_a_fresh_session_is_a_temporary_error_and_drops_it(
    server: SubmissionServer, make
) -> None:
    box = mailbox(server.port)
    transport = make(box)
    server.handler.script("MAIL", "421 4.3.2 shutting down")
    with pytest.raises(SMTPRejectedError) as info:
        await transport.transmit(outgoing(box.email, "ann@example.org"), committing=noop)
    assert info.value.smtp_code == 421 and is_temporary_send_error(info.value)
    await transport.transmit(outgoing(box.email, "ann@example.org"), committing=noop)
    assert server.handler.connections == 2


async def test_a_lost_connection_after_committing_is_never_retried(server: SubmissionServer, make) -> None:
    box = mailbox(server.port)
    transport = make(box)
    await transport.transmit(outgoing(box.email, "ann@example.org"), committing=noop)
    server.handler.script("DATA", "DROP")
    calls: list[int] = []

    async def committing() -> None:
        calls.append(1)

    with pytest.raises(ConnectionLostError) as info:
        await transport.transmit(outgoing(box.email, "ann@example.org"), committing=committing)
    assert calls == [1]  # once: the transport did not send it again on a fresh session
    assert is_temporary_send_error(info.value)
    assert server.handler.connections == 1


# --------------------------------------------------------------------------- auth, guard, secrets


async def test_implicit_tls(server: SubmissionServer, make) -> None:
    box = mailbox(server.tls_port, security=Security.SSL)
    accepted = await make(box).transmit(outgoing(box.email, "ann@example.org"), committing=noop)
    assert accepted.reply.startswith("250")


async def test_wrong_password_is_permanent(server: SubmissionServer, make) -> None:
    box = mailbox(server.port, password="wrong")
    with pytest.raises(AuthenticationError) as info:
        await make(box).transmit(outgoing(box.email, "ann@example.org"), committing=noop)
    assert not is_temporary_send_error(info.value)
    assert server.handler.messages == []


async def test_missing_password_is_the_connectors_error(server: SubmissionServer, make) -> None:
    box = mailbox(server.port)
    box = Mailbox(**{**box.__dict__, "password": None})
    with pytest.raises(InvalidCredentialsError) as info:
        await make(box).transmit(outgoing(box.email, "ann@example.org"), committing=noop)
    assert info.value.code == "invalid_credentials"


def test_a_mailbox_without_smtp_is_refused_at_construction() -> None:
    with pytest.raises(SmtpNotConfiguredError):
        SmtpTransport(mailbox(25, smtp=False))


async def test_xoauth2_refreshes_a_refused_token_once(server: SubmissionServer, make, idp) -> None:
    address = f"o{uuid.uuid4().hex[:10]}@example.test"
    expired = Secret(str(issue_token(idp, address, expires_in=-1)["access_token"]))
    refreshed: list[Secret | None] = []

    async def token_source() -> Secret:
        return expired

    async def force_refresh(rejected: Secret | None) -> Secret:
        refreshed.append(rejected)
        return Secret(str(issue_token(idp, address)["access_token"]))

    box = mailbox(server.port, email_address=address, auth=AuthMethod.OAUTH2)
    transport = make(box, token_source=token_source, force_refresh=force_refresh)
    accepted = await transport.transmit(outgoing(address, "ann@example.org"), committing=noop)
    assert accepted.reply.startswith("250")
    assert refreshed == [expired]
    received = server.handler.messages[-1]
    assert received.mechanism == "XOAUTH2" and received.auth_user == address


async def test_a_second_refused_token_raises(server: SubmissionServer, make, idp) -> None:
    address = f"o{uuid.uuid4().hex[:10]}@example.test"
    calls: list[int] = []

    async def token_source() -> Secret:
        return Secret(str(issue_token(idp, address, expires_in=-1)["access_token"]))

    async def force_refresh(rejected: Secret | None) -> Secret:
        calls.append(1)
        return Secret(str(issue_token(idp, address, expires_in=-1)["access_token"]))

    box = mailbox(server.port, email_address=address, auth=AuthMethod.OAUTH2)
    transport = make(box, token_source=token_source, force_refresh=force_refresh)
    with pytest.raises(AuthenticationError) as info:
        await transport.transmit(outgoing(address, "ann@example.org"), committing=noop)
    assert calls == [1]
    assert not is_temporary_send_error(info.value)
    assert server.handler.messages == []


async def test_the_host_guard_refuses_a_private_address(server: SubmissionServer, make) -> None:
    box = mailbox(server.port)
    transport = make(box, guard=HostGuard())  # the service's default: no private addresses
    with pytest.raises(HostNotAllowedError):
        await transport.transmit(outgoing(box.email, "ann@example.org"), committing=noop)
    assert server.handler.connections == 0


async def test_secrets_stay_out_of_repr_and_logs(
    server: SubmissionServer, make, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = f"pw-{uuid.uuid4().hex}"
    box = mailbox(server.port, password=secret)
    transport = make(box)
    assert repr(transport) == f"SmtpTransport('127.0.0.1', {server.port})"
    with pytest.raises(AuthenticationError) as info:
        await transport.transmit(outgoing(box.email, "ann@example.org"), committing=noop)
    assert secret not in repr(info.value) and secret not in str(info.value.to_dict())
    assert secret not in caplog.text


def test_files_sent_copy_for_google_only() -> None:
    assert SmtpTransport(mailbox(587, host="smtp.gmail.com")).files_sent_copy
    assert SmtpTransport(
        mailbox(587, host="smtp.example.com", provider_id="google-workspace")
    ).files_sent_copy
    assert not SmtpTransport(
        mailbox(587, host="smtp.office365.com", provider_id="microsoft365")
    ).files_sent_copy
    assert not SmtpTransport(mailbox(587, host="smtp.example.com")).files_sent_copy


# --------------------------------------------------------------------------- real delivery


async def test_delivered_into_dovecot(dovecot: Dovecot, smtp: SubmissionServer, make, password_user) -> None:
    user, password = password_user
    subject = f"transport {uuid.uuid4().hex[:8]}"
    box = mailbox(smtp.port, email_address=user, password=password)
    transport = make(box)
    text = "Grüße — delivered\n"
    result = await transport.transmit(
        outgoing(user, user, subject=subject, body=text, eight_bit=True), committing=noop
    )
    assert isinstance(result, Accepted)
    async with await ImapClient.open(
        "127.0.0.1", dovecot.imaps_port, ca_file=dovecot.ca_file, auth=PasswordAuth(user, Secret(password))
    ) as imap:
        for _ in range(50):
            await imap.select("INBOX")
            found = [m for m in await imap.fetch_since(1) if subject.encode() in (m.raw or b"")]
            if found:
                break
            await asyncio.sleep(0.1)
    assert found, "never delivered"
    parsed = email.message_from_bytes(found[0].raw or b"", policy=email.policy.default)
    assert parsed.get_content().replace("\r\n", "\n") == text
