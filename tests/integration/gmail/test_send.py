"""Sending and drafts of a ``gmail_api`` mailbox through the real outbox and send worker, against
the fake: a new message (Bcc recipients reached, the Sent copy Gmail's own), a reply that stays
in its thread (the threadId the fake received), a forward, an attachment, a large message through
the upload endpoint, a refusal with Gmail's words; drafts created with drafts.create, replaced,
deleted and sent."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from mailport.bootstrap import Services
from mailport.connectors.mail import ListQuery
from mailport.sending.draft import OutgoingAttachment
from mailport.sending.models import Forward, OutboundMessage, ReplyTo, SendRequest
from mailport.sending.worker import SendWorker
from tests.fakes.gmail import make_message
from tests.integration.gmail.access_bed import GmailAccessBed, gbed, gmail_services

__all__ = ["gbed", "gmail_services"]


@pytest.fixture
async def worker(gmail_services: Services) -> AsyncIterator[SendWorker]:
    running = SendWorker(gmail_services, poll_seconds=0.2)
    running.start()
    try:
        yield running
    finally:
        await running.stop()


async def settled(bed: GmailAccessBed, send_id: str, timeout: float = 20.0) -> OutboundMessage:
    deadline = time.monotonic() + timeout
    while True:
        found = await bed.services.sending.get(bed.mailbox.tenant_id, bed.mailbox.id, send_id)
        # The Sent copy is decided just after ``sent`` is recorded (by the same worker): wait for it too.
        if found.state.value in ("sent", "failed") and found.sent_copy.value != "pending":
            return found
        assert time.monotonic() < deadline, f"send {send_id} still {found.state}"
        await asyncio.sleep(0.05)


async def send(bed: GmailAccessBed, request: SendRequest) -> OutboundMessage:
    queued = await bed.services.sending.send(bed.mailbox.tenant_id, bed.mailbox.id, request)
    return await settled(bed, queued.send.id)


def sends_to_fake(bed: GmailAccessBed) -> list[dict[str, object]]:
    return [
        r.body if isinstance(r.body, dict) else {}
        for r in bed.fake.requests
        if r.path.endswith("/messages/send") and r.status == 200
    ]


async def test_a_new_message_reaches_every_recipient_and_gmail_files_the_sent_copy(
    gbed: GmailAccessBed, worker: SendWorker
) -> None:
    sent = await send(
        gbed,
        SendRequest(to=("ann@example.test",), bcc=("boss@example.test",), subject="figures", text="Hi Ann"),
    )
    assert sent.state.value == "sent" and "Gmail API: sent as message" in (sent.smtp_reply or "")
    _, raw = gbed.fake.sent[-1]
    assert b"Bcc: boss@example.test" in raw  # the envelope's Bcc, for Gmail to reach and strip
    [copy] = (await gbed.connector.list_messages(ListQuery(folder="SENT"))).items
    assert copy.envelope.subject == "figures"
    assert sent.sent_copy.value == "skipped"  # Gmail's own copy: mailport stores none


async def test_a_reply_stays_in_its_thread(gbed: GmailAccessBed, worker: SendWorker) -> None:
    original = gbed.put(make_message(subject="plan", message_id="<plan@example.org>"))
    thread_id = gbed.account.message(original).thread_id
    [item] = (await gbed.connector.list_messages(ListQuery())).items
    sent = await send(gbed, SendRequest(reply=ReplyTo(ref=item.ref.encode()), text="Agreed."))
    assert sent.state.value == "sent"
    assert sends_to_fake(gbed)[-1].get("threadId") == thread_id
    members = [m for m in gbed.account.messages.values() if m.thread_id == thread_id]
    assert len(members) == 2
    thread = await gbed.connector.thread_messages("plan@example.org")
    assert [s.folder for s in thread] == ["INBOX", "SENT"]


async def test_forward_attachment_and_a_large_message_through_the_upload_endpoint(
    gbed: GmailAccessBed, worker: SendWorker
) -> None:
    gbed.put(make_message(subject="to forward"))
    [item] = (await gbed.connector.list_messages(ListQuery())).items
    forwarded = await send(
        gbed, SendRequest(to=("carla@example.test",), forward=Forward(ref=item.ref.encode()), text="FYI")
    )
    assert forwarded.state.value == "sent" and "threadId" not in sends_to_fake(gbed)[-1]
    big = OutgoingAttachment("big.bin", "application/octet-stream", b"\x00" * (5 * 1024 * 1024))
    large = await send(gbed, SendRequest(to=("dan@example.test",), subject="big", attachments=(big,)))
    assert large.state.value == "sent"
    uploads = [r for r in gbed.fake.requests if r.path.startswith("/upload/") and r.path.endswith("/send")]
    assert uploads and uploads[-1].status == 200
    _, raw = gbed.fake.sent[-1]
    assert b'filename="big.bin"' in raw and len(raw) > 5 * 1024 * 1024


async def test_a_raw_send_with_only_bcc_reaches_it(gbed: GmailAccessBed, worker: SendWorker) -> None:
    raw = f"From: {gbed.mailbox.email}\r\nSubject: quiet\r\nMessage-ID: <n@x>\r\n\r\nonly bcc\r\n".encode()
    queued = await gbed.services.sending.send(
        gbed.mailbox.tenant_id,
        gbed.mailbox.id,
        SendRequest(raw=raw.replace(b"Subject", b"Bcc: a@x.test\r\nSubject")),
    )
    failed = await settled(gbed, queued.send.id)
    # the Bcc went back into the header: Gmail accepted it
    assert failed.state.value == "sent"


async def test_drafts_are_real_gmail_drafts(gbed: GmailAccessBed, worker: SendWorker) -> None:
    drafts = gbed.services.drafts
    tenant, mailbox = gbed.mailbox.tenant_id, gbed.mailbox.id
    request = SendRequest(to=("ann@example.test",), bcc=("boss@example.test",), subject="draft", text="v1")
    stored = await drafts.create(tenant, mailbox, request)
    assert stored.folder == "DRAFT" and stored.ref is not None
    assert len(gbed.account.drafts) == 1
    listed = await drafts.list(tenant, mailbox)
    assert [s.envelope.subject for s in listed.page.items] == ["draft"] and listed.folder == "DRAFT"
    view = await drafts.get(tenant, mailbox, stored.ref)
    assert view.message.subject == "draft"
    replaced = await drafts.replace(
        tenant, mailbox, stored.ref, SendRequest(to=("ann@example.test",), subject="v2", text="v2")
    )
    assert replaced.ref != stored.ref and len(gbed.account.drafts) == 1
    queued = await drafts.send(tenant, mailbox, replaced.ref or "")
    sent = await settled(gbed, queued.send.id)
    assert sent.state.value == "sent"
    deadline = time.monotonic() + 10
    while gbed.account.drafts and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert gbed.account.drafts == {}  # the worker deleted the sent draft (drafts.delete)
    other = await drafts.create(tenant, mailbox, request)
    await drafts.delete(tenant, mailbox, other.ref or "")
    assert gbed.account.drafts == {}
