"""Contract: listing a folder and reading one message, on every bed (Dovecot standard and
``INBOX.``-dotted, the fake): newest first with decoded envelopes, neutral flags, attachments
and thread keys; pages that stay stable while new mail arrives; the unseen/since filters;
cursor errors; reading never sets ``seen``; a gone message or folder is a clear 404."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import pytest

from mailport.connectors.base import MessageRef
from mailport.connectors.imap import ImapConnector
from mailport.connectors.mail import FlagChange, ListQuery
from mailport.errors import (
    CursorExpiredError,
    FolderNotFoundError,
    InputError,
    InvalidCursorError,
    MessageNotFoundError,
)
from mailport.messages.model import Address
from mailport.messages.threading import thread_key
from tests.connectors.mailbed import MailBed, make_mailbox
from tests.integration.sync.conftest import make_message
from tests.mailstack.dovecot import Dovecot

UMLAUT = "Größe & Ärger"


def rich_message() -> bytes:
    """Encoded words, a reply, a PDF attachment."""
    msg = EmailMessage()
    msg["From"] = "=?utf-8?q?J=C3=B6rg_M=C3=BCller?= <joerg@example.test>"
    msg["To"] = "Anna <anna@example.test>, bob@example.test"
    msg["Cc"] = "carla@example.test"
    msg["Reply-To"] = "replies@example.test"
    msg["Subject"] = "=?utf-8?b?R3LDvMOfZSBhdXMgS8O2bG4=?="
    msg["Date"] = "Tue, 02 Jan 2024 10:30:00 +0100"
    msg["Message-ID"] = "<reply.1@example.test>"
    msg["In-Reply-To"] = "<root.1@example.test>"
    msg["References"] = "<root.1@example.test>"
    msg.set_content("Hallo Anna,\n\nanbei die Rechnung.\n")
    msg.add_attachment(b"%PDF-1.4 fake", maintype="application", subtype="pdf", filename="rechnung.pdf")
    return msg.as_bytes().replace(b"\n", b"\r\n")


async def test_a_listing_is_newest_first_with_decoded_envelopes_flags_and_thread_keys(bed: MailBed) -> None:
    folder = bed.path(UMLAUT)
    await bed.make_folder(folder)
    await bed.put(folder, make_message("plain one"), flags=["\\Seen", "$Forwarded"])
    await bed.put(folder, rich_message(), flags=["\\Flagged", "\\Answered"])
    page = await bed.connector.list_messages(ListQuery(folder=folder))
    assert page.next_cursor is None
    rich, plain = page.items
    assert rich.folder == folder and rich.ref.scope == folder
    envelope = rich.envelope
    assert envelope.subject == "Grüße aus Köln"
    assert envelope.from_ == (Address("Jörg Müller", "joerg@example.test"),)
    assert envelope.to == (Address("Anna", "anna@example.test"), Address("", "bob@example.test"))
    assert envelope.cc == (Address("", "carla@example.test"),)
    assert envelope.reply_to == (Address("", "replies@example.test"),)
    assert envelope.date == datetime(2024, 1, 2, 9, 30, tzinfo=UTC)
    assert (envelope.message_id, envelope.in_reply_to) == ("reply.1@example.test", "root.1@example.test")
    assert set(rich.flags) == {"flagged", "answered"}
    assert set(plain.flags) == {"seen", "$Forwarded"}
    assert rich.has_attachments is True and plain.has_attachments is False
    root_key = thread_key(message_id="root.1@example.test", in_reply_to=[], references=[], content_sha256="")
    assert rich.thread_key == root_key
    assert plain.thread_key == thread_key(
        message_id="plain.one@example.test", in_reply_to=[], references=[], content_sha256=""
    )
    assert rich.size > len("anbei die Rechnung") and rich.received_at is not None
    assert plain.preview is not None and "hello" in plain.preview
    assert "Rechnung" in (rich.preview or "")


async def test_pages_stay_stable_while_new_mail_arrives(bed: MailBed) -> None:
    folder = bed.path("Work")
    await bed.make_folder(folder)
    for n in range(7):
        await bed.put(folder, make_message(f"old {n}"))
    first = await bed.connector.list_messages(ListQuery(folder=folder, limit=3))
    assert [s.envelope.subject for s in first.items] == ["old 6", "old 5", "old 4"]
    assert first.next_cursor is not None
    for n in range(2):
        await bed.put(folder, make_message(f"new {n}"))
    second = await bed.connector.list_messages(ListQuery(folder=folder, limit=3, cursor=first.next_cursor))
    assert [s.envelope.subject for s in second.items] == ["old 3", "old 2", "old 1"]
    third = await bed.connector.list_messages(ListQuery(folder=folder, limit=3, cursor=second.next_cursor))
    assert [s.envelope.subject for s in third.items] == ["old 0"] and third.next_cursor is None
    fresh = await bed.connector.list_messages(ListQuery(folder=folder, limit=2))
    assert [s.envelope.subject for s in fresh.items] == ["new 1", "new 0"]
    refs = [s.ref for page in (first, second, third) for s in page.items]
    assert len(set(refs)) == 7


async def test_a_full_last_page_has_no_cursor(bed: MailBed) -> None:
    for n in range(4):
        await bed.put("INBOX", make_message(f"m{n}"))
    first = await bed.connector.list_messages(ListQuery(limit=2))
    second = await bed.connector.list_messages(ListQuery(limit=2, cursor=first.next_cursor))
    assert [s.envelope.subject for s in second.items] == ["m1", "m0"] and second.next_cursor is None
    empty = await bed.connector.list_messages(ListQuery(folder=bed.path("Sent")))
    assert empty.items == [] and empty.next_cursor is None


async def test_unseen_and_since_filter_exactly(bed: MailBed) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    await bed.put("INBOX", make_message("long ago"), at=now - timedelta(days=30))
    await bed.put("INBOX", make_message("an hour ago, read"), flags=["\\Seen"], at=now - timedelta(hours=1))
    await bed.put("INBOX", make_message("an hour ago"), at=now - timedelta(hours=1))
    await bed.put("INBOX", make_message("two hours ago"), at=now - timedelta(hours=2))
    unseen = await bed.connector.list_messages(ListQuery(unseen=True))
    assert [s.envelope.subject for s in unseen.items] == ["two hours ago", "an hour ago", "long ago"]
    seen = await bed.connector.list_messages(ListQuery(unseen=False))
    assert [s.envelope.subject for s in seen.items] == ["an hour ago, read"]
    recent = await bed.connector.list_messages(ListQuery(since=now - timedelta(minutes=90)))
    assert [s.envelope.subject for s in recent.items] == ["an hour ago", "an hour ago, read"]
    assert all(s.received_at == now - timedelta(hours=1) for s in recent.items)
    both = await bed.connector.list_messages(ListQuery(since=now - timedelta(days=1), unseen=True, limit=1))
    assert [s.envelope.subject for s in both.items] == ["two hours ago"]
    rest = await bed.connector.list_messages(
        ListQuery(since=now - timedelta(days=1), unseen=True, limit=1, cursor=both.next_cursor)
    )
    assert [s.envelope.subject for s in rest.items] == ["an hour ago"] and rest.next_cursor is None


async def test_cursor_errors(bed: MailBed) -> None:
    for n in range(3):
        await bed.put("INBOX", make_message(f"m{n}"))
    await bed.make_folder(bed.path("Other"))
    page = await bed.connector.list_messages(ListQuery(limit=1))
    assert page.next_cursor is not None
    with pytest.raises(InvalidCursorError) as elsewhere:
        await bed.connector.list_messages(ListQuery(folder=bed.path("Other"), cursor=page.next_cursor))
    assert elsewhere.value.code == "invalid_cursor" and elsewhere.value.http_status == 422
    for junk in ("garbage!", base64.urlsafe_b64encode(json.dumps({"a": 1}).encode()).decode()):
        with pytest.raises(InvalidCursorError):
            await bed.connector.list_messages(ListQuery(cursor=junk))
    for limit in (0, 501):
        with pytest.raises(InputError) as bad:
            await bed.connector.list_messages(ListQuery(limit=limit))
        assert bad.value.details["field"] == "limit"
    with pytest.raises(FolderNotFoundError) as missing:
        await bed.connector.list_messages(ListQuery(folder=bed.path("Nowhere")))
    assert missing.value.code == "folder_not_found" and missing.value.http_status == 404


async def test_a_cursor_of_a_reset_folder_has_expired(bed: MailBed) -> None:
    folder = bed.path("Reset")
    await bed.make_folder(folder)
    for n in range(3):
        await bed.put(folder, make_message(f"m{n}"))
    page = await bed.connector.list_messages(ListQuery(folder=folder, limit=1))
    await reset(bed, folder)
    with pytest.raises(CursorExpiredError) as expired:
        await bed.connector.list_messages(ListQuery(folder=folder, cursor=page.next_cursor))
    assert expired.value.code == "cursor_expired" and expired.value.http_status == 410
    with pytest.raises(MessageNotFoundError):
        await bed.connector.fetch_message(page.items[0].ref)


async def reset(bed: MailBed, folder: str) -> None:
    """Recreate ``folder`` so it gets a new UIDVALIDITY (from another session)."""
    if bed.other is not None:
        await bed.other.select("INBOX")
        await bed.other.delete(folder)
        await bed.other.create(folder)
        await bed.other.append(folder, make_message("after the reset"))
        await bed.connector.disconnect()  # the connector's session had the old folder selected
        await bed.connector.connect()
    else:
        assert bed.remote is not None
        bed.remote.change_epoch()


async def test_fetching_a_message_returns_its_source_and_does_not_mark_it_seen(bed: MailBed) -> None:
    await bed.put("INBOX", rich_message())
    [item] = (await bed.connector.list_messages(ListQuery())).items
    message = await bed.connector.fetch_message(item.ref)
    assert message.raw is not None and b"rechnung.pdf" in message.raw and not message.oversized
    assert message.size == item.size and message.flags == ()
    assert message.received_at == item.received_at
    assert await bed.flags_elsewhere(item.ref) == set()
    again = (await bed.connector.list_messages(ListQuery())).items[0]
    assert again.flags == ()


async def test_a_gone_message_or_folder_is_not_found(bed: MailBed) -> None:
    await bed.put("INBOX", make_message("here"))
    [item] = (await bed.connector.list_messages(ListQuery())).items
    ref = item.ref
    for stale in (
        MessageRef(ref.scope, ref.epoch, str(int(ref.item) + 100) if ref.item.isdigit() else "m100"),
        MessageRef(ref.scope, "999", ref.item),
    ):
        with pytest.raises(MessageNotFoundError) as gone:
            await bed.connector.fetch_message(stale)
        assert gone.value.code == "message_not_found" and gone.value.http_status == 404
    with pytest.raises(FolderNotFoundError):
        await bed.connector.fetch_message(MessageRef(bed.path("Nowhere"), ref.epoch, ref.item))


async def test_an_older_server_without_esearch_and_preview_lists_the_same(dovecot: Dovecot) -> None:
    user, password = dovecot.dyn_user(f"old{uuid.uuid4().hex[:8]}")
    connector = ImapConnector(
        make_mailbox("imap", user, password, dovecot.imap_port), ignore_capabilities=("ESEARCH", "PREVIEW")
    )
    await connector.connect()
    try:
        assert (await connector.list_messages(ListQuery())).items == []  # selected while empty
        for n in range(5):
            await asyncio.to_thread(dovecot.deliver, user, make_message(f"m{n}"))
        first = await connector.list_messages(ListQuery(limit=3))
        rest = await connector.list_messages(ListQuery(limit=3, cursor=first.next_cursor))
        subjects = [s.envelope.subject for s in first.items + rest.items]
        assert subjects == ["m4", "m3", "m2", "m1", "m0"] and rest.next_cursor is None
        assert all(s.preview is None for s in first.items)
    finally:
        await connector.disconnect()


@pytest.mark.parametrize("bed", ["imap", "imap-dotted"], indirect=True)
async def test_a_message_delivered_while_the_folder_stays_selected_is_found_by_its_ref(bed: MailBed) -> None:
    """The ref of a ``message.received`` event names mail this pooled session has not seen yet."""
    assert bed.other is not None
    assert (await bed.connector.list_messages(ListQuery())).items == []  # INBOX stays selected
    appended = await bed.other.append("INBOX", make_message("just arrived"))
    assert appended.uid is not None
    ref = MessageRef("INBOX", str(appended.uidvalidity), str(appended.uid))
    message = await bed.connector.fetch_message(ref)
    assert message.raw is not None and b"just arrived" in message.raw
    await bed.other.append("INBOX", make_message("and another"))
    await bed.connector.update_flags([ref], FlagChange(add=frozenset({"flagged"})))
    assert await bed.flags_elsewhere(ref) == {"flagged"}
    listed = (await bed.connector.list_messages(ListQuery())).items
    assert [s.envelope.subject for s in listed] == ["and another", "just arrived"]
