"""The library's sending (``mailport.open()`` -> ``box.send(...)``, ``outbox``, ``send_status``,
``cancel_send``, ``wait_for_send``): the API's checks and answers, and a send through the real
worker to the aiosmtpd submission bed."""

from __future__ import annotations

import re
import textwrap
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import mailport
from mailport.bootstrap import Services
from mailport.config import Settings
from mailport.errors import (
    IdempotencyKeyReusedError,
    InputError,
    SendNotCancellableError,
    SendNotFoundError,
)
from mailport.mailboxes.handle import MailboxHandle
from mailport.sending.draft import OutgoingAttachment
from mailport.sending.models import AttachmentRef, ReplyTo, SendState
from mailport.sending.worker import SendWorker
from tests.integration.sending.outbox_bed import Box, letter, make_box, row
from tests.mailstack.dovecot import Dovecot
from tests.mailstack.smtp import SubmissionServer


@pytest.fixture
def settings(settings: Settings, dovecot: Dovecot) -> Settings:
    return settings.model_copy(update={"allowed_hosts": ["127.0.0.1"], "mail_ca_file": Path(dovecot.ca_file)})


@pytest.fixture
async def handle(services: Services, box: Box) -> AsyncIterator[MailboxHandle]:
    async with mailport.open(services=services) as mp:
        yield mp.mailbox(box.tenant_id, box.mailbox_id)


async def test_send_outbox_status_and_cancel(handle: MailboxHandle, box: Box, tmp_path: Path) -> None:
    (tmp_path / "plan.csv").write_text("a,b\n1,2\n")
    later = datetime.now(UTC) + timedelta(days=1)
    send = await handle.send(
        to=["Ann <ann@example.test>"],
        subject="Plan",
        html="<p>The <b>plan</b></p>",
        attachments=[tmp_path / "plan.csv", OutgoingAttachment("notes.txt", "text/plain", b"notes")],
        headers={"X-Ticket": "7"},
        send_at=later,
    )
    assert send.state is SendState.SCHEDULED and send.subject == "Plan" and send.send_at == later
    raw = bytes((await row(box.services, send.id)).raw)
    assert b'filename="plan.csv"' in raw and b"Content-Type: text/csv" in raw and b"X-Ticket: 7" in raw
    assert b"The plan" in raw  # the text part made from the HTML

    page = await handle.outbox()
    assert [s.id for s in page.items] == [send.id] and page.next_cursor is None
    assert (await handle.outbox(state="scheduled")).items[0].id == send.id
    assert (await handle.outbox(state=SendState.SENT)).items == []
    assert (await handle.send_status(send.id)).state is SendState.SCHEDULED
    assert (await handle.cancel_send(send.id)).state is SendState.CANCELLED
    with pytest.raises(SendNotCancellableError):
        await handle.cancel_send(send.id)
    with pytest.raises(SendNotFoundError):
        await handle.send_status("snd_00000000000000000000000000")


async def test_the_apis_checks_hold_in_the_library(handle: MailboxHandle, box: Box) -> None:
    with pytest.raises(InputError, match="to.0"):
        await handle.send(to=["nobody"], text="x")
    with pytest.raises(InputError, match="at least one recipient"):
        await handle.send(text="x")
    with pytest.raises(InputError, match="raw excludes"):
        await handle.send(raw=b"From: a@example.test\r\n\r\nx", to=["a@example.test"])
    with pytest.raises(InputError, match="timezone"):
        await handle.send(to=["a@example.test"], text="x", send_at=datetime(2030, 1, 1, 9))
    with pytest.raises(InputError, match="cannot be set"):
        await handle.send(to=["a@example.test"], text="x", headers={"Bcc": "x@example.test"})
    with pytest.raises(InputError, match="idempotency_key"):
        await handle.send(to=["a@example.test"], text="x", idempotency_key="with space")
    with pytest.raises(InputError, match="state"):
        await handle.outbox(state="lost")
    with pytest.raises(InputError, match="cannot read the attachment"):
        await handle.send(to=["a@example.test"], text="x", attachments=[Path("/nonexistent/file.pdf")])

    first = await handle.send(to=["a@example.test"], text="x", idempotency_key="k-1")
    assert (await handle.send(to=["a@example.test"], text="x", idempotency_key="k-1")).id == first.id
    with pytest.raises(IdempotencyKeyReusedError):
        await handle.send(to=["a@example.test"], text="y", idempotency_key="k-1")


async def test_a_reply_with_the_originals_attachment(handle: MailboxHandle, box: Box) -> None:
    box.deliver(letter("Invoice please"))
    original = (await handle.page()).items[0]
    send = await handle.send(
        reply=ReplyTo(original.ref.encode(), quote=False),
        text="Attached.",
        attachments=[AttachmentRef(original.ref.encode(), "0", "invoice-copy.pdf")],
    )
    assert send.subject == "Re: Invoice please" and send.recipients == ("ann@example.test",)
    raw = bytes((await row(box.services, send.id)).raw)
    assert b"invoice-copy.pdf" in raw and b"PDFDATA" not in raw  # base64 in the message
    replied_by_summary = await handle.send(reply=original, text="Again.")
    assert replied_by_summary.in_reply_to == send.in_reply_to


async def test_send_and_wait_through_the_worker(
    handle: MailboxHandle, box: Box, services: Services, smtp: SubmissionServer, dovecot: Dovecot
) -> None:
    other = await make_box(services, dovecot, smtp.port, tenant_id=box.tenant_id)
    worker = SendWorker(services, poll_seconds=0.2)
    worker.start()
    try:
        send = await handle.send(to=[other.email], subject="Library hello", text="hi", sent_copy=False)
        done = await handle.wait_for_send(send.id, timeout=60)
    finally:
        await worker.stop()
    assert done.state is SendState.SENT, done
    assert done.smtp_reply and done.smtp_reply.startswith("250")
    assert len([m for m in smtp.handler.messages if m.rcpt_tos == [other.email]]) == 1
    async with mailport.open(services=services) as mp:
        inbox = await mp.mailbox(other.tenant_id, other.mailbox_id).page()
    assert [m.envelope.subject for m in inbox.items] == ["Library hello"]


async def test_the_docs_snippet_runs(
    handle: MailboxHandle, box: Box, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/library.md's sending snippet, as written, on this mailbox (no worker: it waits)."""
    text = (Path(__file__).resolve().parents[3] / "docs" / "library.md").read_text()
    blocks = re.findall(r"^```py\n(.*?)^```", text, re.M | re.S)
    assert len(blocks) == 1
    monkeypatch.chdir(tmp_path)
    (tmp_path / "booking.pdf").write_bytes(b"%PDF-1.4 booking")
    box.deliver(letter("Booking question"))
    item = (await handle.page()).items[0]
    source = "async def snippet(box, item):\n" + textwrap.indent(
        blocks[0].replace("timeout=60", "timeout=0.5"), "    "
    )
    source += "\n    return send, reply, again, done\n"
    namespace: dict[str, Any] = {}
    exec(compile(source, "docs/library.md", "exec"), namespace)
    send, reply, again, done = await namespace["snippet"](handle, item)
    assert send.state is SendState.QUEUED and send.subject == "Your booking"
    assert reply.subject == "Re: Booking question" and again.recipients[0] == reply.recipients[0]
    assert done.id == send.id and done.state is SendState.QUEUED  # no worker here
    raw = bytes((await row(box.services, send.id)).raw)
    assert b'filename="booking.pdf"' in raw and b"application/pdf" in raw
