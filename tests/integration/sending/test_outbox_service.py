"""SendService against the real store (SQLite and PostgreSQL) and the real Dovecot: the From
rule, idempotency, scheduling, cancelling, tenant isolation, and reply/forward/attachment refs
resolved from a message on the server."""

from __future__ import annotations

import asyncio
import email
from datetime import UTC, datetime, timedelta
from email import policy

import pytest

from mailport.bootstrap import Services
from mailport.connectors.mail import ListQuery
from mailport.errors import (
    AttachmentNotFoundError,
    IdempotencyKeyReusedError,
    InputError,
    NotFoundError,
    SenderNotAllowedError,
    SendNotCancellableError,
    SendNotFoundError,
    SmtpNotConfiguredError,
)
from mailport.sending.draft import OutgoingAttachment
from mailport.sending.models import (
    AttachmentRef,
    Forward,
    ReplyTo,
    SendingSettings,
    SendRequest,
    SendState,
    SentCopyMode,
    SentCopyState,
)
from mailport.sending.service import SendService
from tests.fixtures.api import TenantHandle
from tests.integration.sending.outbox_bed import Box, count_rows, letter, make_box, row
from tests.mailstack.dovecot import Dovecot
from tests.mailstack.smtp import SubmissionServer

HELLO = SendRequest(to=("Ann <ann@example.test>",), subject="Hello", text="Hi Ann")


def parsed(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=policy.default)  # type: ignore[return-value]


async def test_from_defaults_to_the_mailbox_address_with_its_from_name(box: Box) -> None:
    queued = await box.services.sending.send(box.tenant_id, box.mailbox_id, HELLO)
    assert not queued.replayed
    send = queued.send
    assert send.id.startswith("snd_") and send.state is SendState.QUEUED
    assert send.sender == box.email and send.recipients == ("ann@example.test",)
    assert send.subject == "Hello" and send.attempts == 0 and send.sent_copy is SentCopyState.PENDING
    message = parsed(bytes((await row(box.services, send.id)).raw))
    assert message["From"].addresses[0].display_name == "Support Desk"
    assert message["From"].addresses[0].addr_spec == box.email
    assert message["Message-ID"] == f"<{send.message_id}>"


async def test_from_may_name_an_alias_in_any_case_and_nothing_else(
    services: Services, tenant: TenantHandle, dovecot: Dovecot, smtp: SubmissionServer
) -> None:
    box = await make_box(
        services,
        dovecot,
        smtp.port,
        tenant_id=tenant.id,
        sending=SendingSettings(aliases=("help@example.test",)),
    )
    ok = await services.sending.send(
        tenant.id,
        box.mailbox_id,
        SendRequest(from_="Help <HELP@Example.TEST>", to=("a@example.test",), text="x"),
    )
    assert ok.send.sender == "HELP@Example.TEST"
    with pytest.raises(SenderNotAllowedError):
        await services.sending.send(
            tenant.id,
            box.mailbox_id,
            SendRequest(from_="boss@example.test", to=("a@example.test",), text="x"),
        )
    raw = b"From: Boss <boss@example.test>\r\nTo: a@example.test\r\nSubject: s\r\n\r\nbody\r\n"
    with pytest.raises(SenderNotAllowedError):
        await services.sending.send(tenant.id, box.mailbox_id, SendRequest(raw=raw))
    own = raw.replace(b"boss@example.test", box.email.encode())
    queued = await services.sending.send(tenant.id, box.mailbox_id, SendRequest(raw=own))
    assert queued.send.sender == box.email and queued.send.subject == "s"
    assert await count_rows(services, box.mailbox_id) == 2


async def test_refusals_without_a_row(
    services: Services, tenant: TenantHandle, dovecot: Dovecot, box: Box
) -> None:
    with pytest.raises(InputError):
        await services.sending.send(tenant.id, box.mailbox_id, SendRequest(subject="nobody", text="x"))
    far = datetime.now(UTC) + timedelta(days=400)
    with pytest.raises(InputError):
        await services.sending.send(
            tenant.id, box.mailbox_id, SendRequest(to=("a@example.test",), send_at=far)
        )
    with pytest.raises(InputError):
        await services.sending.send(tenant.id, box.mailbox_id, HELLO, idempotency_key="has space")
    no_smtp = await make_box(services, dovecot, None, tenant_id=tenant.id)
    with pytest.raises(SmtpNotConfiguredError):
        await services.sending.send(tenant.id, no_smtp.mailbox_id, HELLO)
    assert await count_rows(services, box.mailbox_id) == 0


async def test_idempotency_key_replays_refuses_and_expires(box: Box) -> None:
    now = [datetime.now(UTC)]
    woken: list[int] = []
    service = SendService(
        box.services.database,
        box.services.mailboxes,
        box.services.mail,
        clock=lambda: now[0],
        wake=lambda: woken.append(1),
    )
    first = await service.send(box.tenant_id, box.mailbox_id, HELLO, idempotency_key="order-42")
    again = await service.send(box.tenant_id, box.mailbox_id, HELLO, idempotency_key="order-42")
    assert again.replayed and again.send.id == first.send.id and not first.replayed
    assert await count_rows(box.services, box.mailbox_id) == 1
    other = SendRequest(to=("Ann <ann@example.test>",), subject="Hello", text="Hi Ann!")
    with pytest.raises(IdempotencyKeyReusedError):
        await service.send(box.tenant_id, box.mailbox_id, other, idempotency_key="order-42")
    # attachments' bytes are part of the request
    a = SendRequest(to=("a@example.test",), attachments=(OutgoingAttachment("a.txt", "text/plain", b"1"),))
    b = SendRequest(to=("a@example.test",), attachments=(OutgoingAttachment("a.txt", "text/plain", b"2"),))
    await service.send(box.tenant_id, box.mailbox_id, a, idempotency_key="att")
    with pytest.raises(IdempotencyKeyReusedError):
        await service.send(box.tenant_id, box.mailbox_id, b, idempotency_key="att")
    now[0] += timedelta(hours=24, seconds=1)
    later = await service.send(box.tenant_id, box.mailbox_id, other, idempotency_key="order-42")
    assert not later.replayed and later.send.id != first.send.id
    assert (await service.get(box.tenant_id, box.mailbox_id, first.send.id)).idempotency_key is None
    assert later.send.idempotency_key == "order-42"
    assert await count_rows(box.services, box.mailbox_id) == 3
    assert len(woken) == 3  # one wake per insert, none for a replay


async def test_concurrent_duplicates_insert_once(box: Box) -> None:
    results = await asyncio.gather(
        *(
            box.services.sending.send(box.tenant_id, box.mailbox_id, HELLO, idempotency_key="race")
            for _ in range(4)
        )
    )
    assert len({r.send.id for r in results}) == 1
    assert sum(not r.replayed for r in results) == 1
    assert await count_rows(box.services, box.mailbox_id) == 1


async def test_scheduled_and_past_send_at(box: Box) -> None:
    soon = datetime.now(UTC) + timedelta(hours=2)
    scheduled = (await box.services.sending.send(box.tenant_id, box.mailbox_id, _at(soon))).send
    assert scheduled.state is SendState.SCHEDULED and scheduled.send_at == soon
    past = (
        await box.services.sending.send(box.tenant_id, box.mailbox_id, _at(soon - timedelta(days=1)))
    ).send
    assert past.state is SendState.QUEUED and past.send_at is None
    with pytest.raises(InputError):
        await box.services.sending.send(box.tenant_id, box.mailbox_id, _at(soon.replace(tzinfo=None)))


def _at(when: datetime) -> SendRequest:
    return SendRequest(to=("a@example.test",), text="later", send_at=when)


async def test_cancel_rules(box: Box) -> None:
    sending = box.services.sending
    queued = (await sending.send(box.tenant_id, box.mailbox_id, HELLO)).send
    cancelled = await sending.cancel(box.tenant_id, box.mailbox_id, queued.id)
    assert cancelled.state is SendState.CANCELLED
    assert (await row(box.services, queued.id)).raw is None
    with pytest.raises(SendNotCancellableError):
        await sending.cancel(box.tenant_id, box.mailbox_id, queued.id)
    scheduled = (
        await sending.send(box.tenant_id, box.mailbox_id, _at(datetime.now(UTC) + timedelta(hours=1)))
    ).send
    assert (await sending.cancel(box.tenant_id, box.mailbox_id, scheduled.id)).state is SendState.CANCELLED
    with pytest.raises(SendNotFoundError):
        await sending.cancel(box.tenant_id, box.mailbox_id, "snd_00000000000000000000000000")
    with pytest.raises(SendNotFoundError):
        await sending.get(box.tenant_id, box.mailbox_id, "not an id\x00")


async def test_tenant_and_mailbox_isolation(
    services: Services, box: Box, dovecot: Dovecot, smtp: SubmissionServer
) -> None:
    mine = (await services.sending.send(box.tenant_id, box.mailbox_id, HELLO)).send
    stranger = await make_box(services, dovecot, smtp.port)  # another tenant
    sibling = await make_box(services, dovecot, smtp.port, tenant_id=box.tenant_id)
    for tenant_id, mailbox_id in (
        (stranger.tenant_id, box.mailbox_id),
        (stranger.tenant_id, stranger.mailbox_id),
    ):
        with pytest.raises(NotFoundError):
            await services.sending.get(tenant_id, mailbox_id, mine.id)
        with pytest.raises(NotFoundError):
            await services.sending.cancel(tenant_id, mailbox_id, mine.id)
    with pytest.raises(SendNotFoundError):
        await services.sending.get(box.tenant_id, sibling.mailbox_id, mine.id)
    with pytest.raises(NotFoundError):
        await services.sending.list(stranger.tenant_id, box.mailbox_id)
    with pytest.raises(NotFoundError):
        await services.sending.send(stranger.tenant_id, box.mailbox_id, HELLO)
    assert (await services.sending.list(box.tenant_id, sibling.mailbox_id)).items == []
    # the same key in two mailboxes is two sends
    a = await services.sending.send(box.tenant_id, box.mailbox_id, HELLO, idempotency_key="k")
    b = await services.sending.send(box.tenant_id, sibling.mailbox_id, HELLO, idempotency_key="k")
    assert a.send.id != b.send.id and not b.replayed


async def test_list_newest_first_with_cursor_and_state(box: Box) -> None:
    sending = box.services.sending
    ids = [(await sending.send(box.tenant_id, box.mailbox_id, HELLO)).send.id for _ in range(5)]
    await sending.cancel(box.tenant_id, box.mailbox_id, ids[1])
    first = await sending.list(box.tenant_id, box.mailbox_id, limit=2)
    assert [s.id for s in first.items] == ids[::-1][:2] and first.next_cursor
    rest = await sending.list(box.tenant_id, box.mailbox_id, limit=10, cursor=first.next_cursor)
    assert [s.id for s in rest.items] == ids[::-1][2:] and rest.next_cursor is None
    cancelled = await sending.list(box.tenant_id, box.mailbox_id, state=SendState.CANCELLED)
    assert [s.id for s in cancelled.items] == [ids[1]]


async def test_sent_copy_column(
    services: Services, tenant: TenantHandle, dovecot: Dovecot, smtp: SubmissionServer
) -> None:
    never = await make_box(
        services,
        dovecot,
        smtp.port,
        tenant_id=tenant.id,
        sending=SendingSettings(sent_copy=SentCopyMode.NEVER),
    )
    assert (
        await services.sending.send(tenant.id, never.mailbox_id, HELLO)
    ).send.sent_copy is SentCopyState.SKIPPED
    auto = await make_box(services, dovecot, smtp.port, tenant_id=tenant.id)
    off = SendRequest(to=("a@example.test",), text="x", sent_copy=False)
    assert (
        await services.sending.send(tenant.id, auto.mailbox_id, off)
    ).send.sent_copy is SentCopyState.SKIPPED


async def _inbox_ref(box: Box) -> str:
    for _ in range(50):
        page = await box.services.mail.list_messages(box.tenant_id, box.mailbox_id, ListQuery(folder="INBOX"))
        if page.items:
            return page.items[0].ref.encode()
        await asyncio.sleep(0.1)
    raise AssertionError("the delivered message never appeared")


async def test_reply_forward_and_attachment_refs_from_dovecot(box: Box) -> None:
    original = letter(
        "Invoice 7", sender="Ann <ann@example.test>", to=f"Desk <{box.email}>, bob@example.test"
    )
    box.deliver(original)
    ref = await _inbox_ref(box)
    original_id = parsed(original)["Message-ID"].strip("<>")
    sending = box.services.sending

    reply = (
        await sending.send(
            box.tenant_id, box.mailbox_id, SendRequest(text="Paid.", reply=ReplyTo(ref, all=True))
        )
    ).send
    assert reply.in_reply_to == original_id and reply.subject == "Re: Invoice 7"
    assert reply.recipients == ("ann@example.test", "bob@example.test")  # never the mailbox itself
    msg = parsed(bytes((await row(box.services, reply.id)).raw))
    assert msg["In-Reply-To"] == f"<{original_id}>" and f"<{original_id}>" in msg["References"]
    assert "> the original text" in msg.get_body(("plain",)).get_content()

    forward = (
        await sending.send(
            box.tenant_id, box.mailbox_id, SendRequest(to=("carl@example.test",), forward=Forward(ref))
        )
    ).send
    assert forward.subject == "Fwd: Invoice 7" and forward.recipients == ("carl@example.test",)
    fwd = parsed(bytes((await row(box.services, forward.id)).raw))
    assert any(part.get_content_type() == "message/rfc822" for part in fwd.iter_attachments())

    with_file = SendRequest(
        to=("carl@example.test",), text="see attached", attachments=(AttachmentRef(ref, "0", "copy.pdf"),)
    )
    sent = (await sending.send(box.tenant_id, box.mailbox_id, with_file)).send
    parts = list(parsed(bytes((await row(box.services, sent.id)).raw)).iter_attachments())
    assert [(p.get_filename(), p.get_content()) for p in parts] == [("copy.pdf", b"PDFDATA")]
    for missing in ("7", "x"):
        with pytest.raises(AttachmentNotFoundError):
            await sending.send(
                box.tenant_id,
                box.mailbox_id,
                SendRequest(to=("c@example.test",), attachments=(AttachmentRef(ref, missing),)),
            )
    # compose() is what send() queues, without queueing
    composed = await sending.compose(box.tenant_id, box.mailbox_id, SendRequest(text="x", reply=ReplyTo(ref)))
    assert composed.recipients == ("ann@example.test",) and b"Re: Invoice 7" in composed.raw
