"""Mailbox access over Microsoft Graph, through the service the API, the CLI and the library use
(:class:`~mailport.mailboxes.access.MailAccess`) against the fake Graph: folders with roles and
counts, listings with cursors, search as ``$filter`` or ``$search`` (never both), reading the MIME
through mailport's parser, threads by conversation, flags, move, delete, import, folder admin,
and clear 4xx answers for what Graph cannot do."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import pytest

from mailport.bootstrap import Services
from mailport.connectors.base import MessageRef
from mailport.connectors.mail import FlagChange, ListQuery, SearchQuery
from mailport.errors import (
    FolderExistsError,
    FolderNotFoundError,
    InputError,
    InvalidCursorError,
    MessageNotFoundError,
    UnsupportedFeatureError,
)
from tests.fakes.graph import Account, GraphFake
from tests.fixtures.graph import MakeGraphMailbox
from tests.integration.sync.conftest import make_message

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """This is about Graph, not storage: one database (storage runs on both elsewhere)."""
    return sqlite_url


@dataclass
class Box:
    services: Services
    tenant_id: str
    mailbox_id: str
    account: Account
    fake: GraphFake
    mark: int = 0

    def requests(self) -> Iterator[tuple[str, str, dict[str, str]]]:
        """(method, path, query) of what this mailbox sent since :meth:`reset`."""
        for exchange in self.fake.requests[self.mark :]:
            yield exchange.method, exchange.path, exchange.query

    def reset(self) -> None:
        self.mark = len(self.fake.requests)


@pytest.fixture
async def box(graph_services: Services, graph_mailbox: MakeGraphMailbox, graph: GraphFake) -> Box:
    made = await graph_mailbox(graph_services)
    return Box(graph_services, made.mailbox.tenant_id, made.mailbox.id, made.account, graph)


def with_attachment(subject: str) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "Billing <billing@example.com>", "me@example.com", subject
    msg["Message-ID"] = "<inv-1@example.com>"
    msg.set_content("Your invoice is attached.\n")
    msg.add_alternative("<p>Your invoice is attached.</p>", subtype="html")
    msg.add_attachment(b"%PDF-1.4 fake", maintype="application", subtype="pdf", filename="invoice.pdf")
    return msg.as_bytes().replace(b"\n", b"\r\n")


async def test_folders_have_paths_roles_and_counts(box: Box) -> None:
    box.account.create_folder("Clients", "inbox")
    box.account.create_folder("Projects")
    box.account.add(make_message("one"), "inbox")
    box.account.add(make_message("two"), "inbox", is_read=True)
    folders = {f.path: f for f in await box.services.mail.folders(box.tenant_id, box.mailbox_id)}
    assert folders["INBOX"].role == "inbox" and (folders["INBOX"].messages, folders["INBOX"].unseen) == (2, 1)
    assert folders["Sent Items"].role == "sent"
    assert folders["Drafts"].role == "drafts"
    assert folders["Deleted Items"].role == "trash"
    assert folders["Junk Email"].role == "junk"
    assert folders["INBOX/Clients"].role is None and folders["INBOX/Clients"].delimiter == "/"
    assert folders["INBOX/Clients"].name == "Clients"
    assert "Projects" in folders


async def test_a_listing_is_newest_first_and_pages_by_cursor(box: Box) -> None:
    for n in range(5):
        box.account.add(
            make_message(f"m{n}"), "inbox", received=T0 + timedelta(minutes=n), is_read=n % 2 == 0
        )
    first = await box.services.mail.list_messages(box.tenant_id, box.mailbox_id, ListQuery(limit=2))
    assert [s.envelope.subject for s in first.items] == ["m4", "m3"]
    assert first.items[0].folder == "INBOX" and first.items[0].received_at == T0 + timedelta(minutes=4)
    assert first.next_cursor is not None
    second = await box.services.mail.list_messages(
        box.tenant_id, box.mailbox_id, ListQuery(limit=2, cursor=first.next_cursor)
    )
    assert [s.envelope.subject for s in second.items] == ["m2", "m1"]
    unseen = await box.services.mail.list_messages(box.tenant_id, box.mailbox_id, ListQuery(unseen=True))
    assert [s.envelope.subject for s in unseen.items] == ["m3", "m1"]
    assert all("seen" not in s.flags for s in unseen.items)
    since = await box.services.mail.list_messages(
        box.tenant_id, box.mailbox_id, ListQuery(since=T0 + timedelta(minutes=3))
    )
    assert [s.envelope.subject for s in since.items] == ["m4", "m3"]
    with pytest.raises(InvalidCursorError):
        await box.services.mail.list_messages(
            box.tenant_id, box.mailbox_id, ListQuery(folder="Drafts", cursor=first.next_cursor)
        )


async def test_search_uses_filter_or_search_and_never_both(box: Box) -> None:
    box.account.add(make_message("Invoice March"), "inbox", received=T0)
    box.account.add(make_message("Invoice April"), "inbox", received=T0 + timedelta(hours=1), is_read=True)
    box.account.add(make_message("Lunch"), "inbox", received=T0 + timedelta(hours=2), flagged=True)
    box.reset()
    words = await box.services.mail.search(
        box.tenant_id, box.mailbox_id, SearchQuery(subject="invoice", seen=False)
    )
    assert [s.envelope.subject for s in words.items] == ["Invoice March"]
    sent = [q for m, p, q in box.requests() if p.endswith("/messages") and "$search" in q]
    assert sent and all("$filter" not in q and "$orderby" not in q for q in sent)
    box.reset()
    flagged = await box.services.mail.search(box.tenant_id, box.mailbox_id, SearchQuery(flagged=True))
    assert [s.envelope.subject for s in flagged.items] == ["Lunch"]
    [query] = [q for m, p, q in box.requests() if p.endswith("/messages")]
    assert (
        query["$filter"].startswith("receivedDateTime ge ")
        and "flag/flagStatus eq 'flagged'" in query["$filter"]
    )
    by_id = await box.services.mail.search(
        box.tenant_id, box.mailbox_id, SearchQuery(message_id="<Lunch@example.test>")
    )
    assert [s.envelope.subject for s in by_id.items] == ["Lunch"]
    with pytest.raises(UnsupportedFeatureError) as refused:
        await box.services.mail.search(box.tenant_id, box.mailbox_id, SearchQuery(answered=True))
    assert refused.value.http_status == 422 and "answered" in refused.value.message


async def test_a_message_is_read_from_its_mime_without_marking_it_read(box: Box) -> None:
    original = with_attachment("Invoice 2024-001")
    message_id = box.account.add(original, "inbox")
    [item] = (await box.services.mail.list_messages(box.tenant_id, box.mailbox_id, ListQuery())).items
    assert item.has_attachments is True and item.envelope.message_id == "inv-1@example.com"
    view = await box.services.mail.message(box.tenant_id, box.mailbox_id, item.ref.encode())
    body = view.to_dict()
    assert body["subject"] == "Invoice 2024-001" and body["folder"] == "INBOX"
    assert body["text"] == "Your invoice is attached.\n"
    assert [a["filename"] for a in body["attachments"]] == ["invoice.pdf"]
    raw = await box.services.mail.raw(box.tenant_id, box.mailbox_id, item.ref.encode())
    assert raw == original
    attachment, content = await box.services.mail.attachment(
        box.tenant_id, box.mailbox_id, item.ref.encode(), 0
    )
    assert attachment.filename == "invoice.pdf" and content == b"%PDF-1.4 fake"
    assert box.account.messages[message_id].is_read is False


async def test_flags_and_keywords_reach_graph(box: Box) -> None:
    message_id = box.account.add(make_message("one"), "inbox")
    [item] = (await box.services.mail.list_messages(box.tenant_id, box.mailbox_id, ListQuery())).items
    ref = item.ref.encode()
    await box.services.mail.update_flags(
        box.tenant_id, box.mailbox_id, [ref], FlagChange(add=frozenset({"seen", "flagged", "$Forwarded"}))
    )
    stored = box.account.messages[message_id]
    assert (stored.is_read, stored.flag, stored.categories) == (True, "flagged", ["$Forwarded"])
    await box.services.mail.update_flags(
        box.tenant_id, box.mailbox_id, [ref], FlagChange(remove=frozenset({"flagged", "$Forwarded"}))
    )
    assert (stored.is_read, stored.flag, stored.categories) == (True, "notFlagged", [])
    [again] = (await box.services.mail.list_messages(box.tenant_id, box.mailbox_id, ListQuery())).items
    assert again.flags == ("seen",)
    for change in (FlagChange(add=frozenset({"answered"})), FlagChange(add_labels=frozenset({"Work"}))):
        with pytest.raises(UnsupportedFeatureError) as refused:
            await box.services.mail.update_flags(box.tenant_id, box.mailbox_id, [ref], change)
        assert refused.value.http_status == 422


async def test_move_delete_and_a_gone_ref(box: Box) -> None:
    box.account.create_folder("Archive 2024")
    kept = box.account.add(make_message("keep"), "inbox")
    box.account.add(make_message("trash me"), "inbox")
    items = (await box.services.mail.list_messages(box.tenant_id, box.mailbox_id, ListQuery())).items
    by_subject = {s.envelope.subject: s.ref.encode() for s in items}
    [moved] = await box.services.mail.move(
        box.tenant_id, box.mailbox_id, [by_subject["keep"]], "Archive 2024"
    )
    assert moved.new is not None and moved.new.scope == "Archive 2024"
    assert box.account.messages[kept].folder_id == box.account.folder_id("Archive 2024")
    view = await box.services.mail.message(box.tenant_id, box.mailbox_id, moved.new.encode())
    assert view.message.subject == "keep" and view.message.folder == "Archive 2024"
    await box.services.mail.delete(box.tenant_id, box.mailbox_id, [by_subject["trash me"]])
    [trashed] = box.account.in_folder("deleteditems")
    assert trashed.subject == "trash me"
    [in_trash] = (
        await box.services.mail.list_messages(
            box.tenant_id, box.mailbox_id, ListQuery(folder="Deleted Items")
        )
    ).items
    await box.services.mail.delete(box.tenant_id, box.mailbox_id, [in_trash.ref.encode()])
    assert box.account.in_folder("deleteditems") == []
    with pytest.raises(MessageNotFoundError) as gone:
        await box.services.mail.update_flags(
            box.tenant_id, box.mailbox_id, [in_trash.ref.encode()], FlagChange(add=frozenset({"seen"}))
        )
    assert gone.value.http_status == 404
    with pytest.raises(FolderNotFoundError):
        await box.services.mail.move(box.tenant_id, box.mailbox_id, [moved.new.encode()], "Nowhere")


async def test_permanent_delete_skips_deleted_items(box: Box) -> None:
    box.account.add(make_message("gone"), "inbox")
    [item] = (await box.services.mail.list_messages(box.tenant_id, box.mailbox_id, ListQuery())).items
    await box.services.mail.delete(box.tenant_id, box.mailbox_id, [item.ref.encode()], permanent=True)
    assert box.account.in_folder("inbox") == [] and box.account.in_folder("deleteditems") == []


async def test_import_creates_the_message_from_its_mime(box: Box) -> None:
    box.account.create_folder("Imported")
    ref = await box.services.mail.import_message(
        box.tenant_id, box.mailbox_id, "Imported", make_message("old mail"), flags=("seen", "Important")
    )
    assert ref is not None and ref.scope == "Imported"
    [stored] = box.account.in_folder("Imported")
    assert stored.subject == "old mail" and stored.is_read and stored.categories == ["Important"]
    raw = await box.services.mail.raw(box.tenant_id, box.mailbox_id, ref.encode())
    assert raw == make_message("old mail")
    with pytest.raises(FolderNotFoundError):
        await box.services.mail.import_message(box.tenant_id, box.mailbox_id, "Nowhere", make_message("x"))
    with pytest.raises(InputError):
        await box.services.mail.import_message(box.tenant_id, box.mailbox_id, "Imported", b"  ")


async def test_a_thread_gathers_its_conversation_across_folders(box: Box) -> None:
    box.account.add(make_message("Welcome", message_id="w1"), "inbox", received=T0)
    reply = make_message("Re: Welcome", message_id="r1").replace(
        b"Subject:", b"In-Reply-To: <w1@example.test>\r\nReferences: <w1@example.test>\r\nSubject:", 1
    )
    box.account.add(reply, "sentitems", received=T0 + timedelta(minutes=5), is_read=True)
    box.account.add(make_message("Other", message_id="o1"), "inbox", received=T0 + timedelta(minutes=1))
    found = await box.services.mail.thread(box.tenant_id, box.mailbox_id, "w1@example.test")
    assert [(s.folder, s.envelope.subject) for s in found] == [
        ("INBOX", "Welcome"),
        ("Sent Items", "Re: Welcome"),
    ]
    assert await box.services.mail.thread(box.tenant_id, box.mailbox_id, "nobody@example.test") == []


async def test_folders_are_created_renamed_moved_and_deleted(box: Box) -> None:
    made = await box.services.mail.create_folder(box.tenant_id, box.mailbox_id, "Kunden")
    assert (made.path, made.role, made.delimiter) == ("Kunden", None, "/")
    child = await box.services.mail.create_folder(box.tenant_id, box.mailbox_id, "2024", parent="Kunden")
    assert child.path == "Kunden/2024"
    with pytest.raises(FolderExistsError) as exists:
        await box.services.mail.create_folder(box.tenant_id, box.mailbox_id, "Kunden")
    assert exists.value.http_status == 409
    renamed = await box.services.mail.rename_folder(box.tenant_id, box.mailbox_id, "Kunden", name="Clients")
    assert renamed.path == "Clients"
    moved = await box.services.mail.rename_folder(
        box.tenant_id, box.mailbox_id, "Clients/2024", name="2024", parent="INBOX"
    )
    assert moved.path == "INBOX/2024"
    paths = {f.path for f in await box.services.mail.folders(box.tenant_id, box.mailbox_id)}
    assert {"Clients", "INBOX/2024"} <= paths and "Kunden" not in paths
    await box.services.mail.delete_folder(box.tenant_id, box.mailbox_id, "Clients")
    assert "Clients" not in {f.path for f in await box.services.mail.folders(box.tenant_id, box.mailbox_id)}
    for bad in ("a/b", " "):
        with pytest.raises(InputError):
            await box.services.mail.create_folder(box.tenant_id, box.mailbox_id, bad)
    with pytest.raises(InputError) as special:
        await box.services.mail.rename_folder(box.tenant_id, box.mailbox_id, "Sent Items", name="Sent")
    assert special.value.http_status == 422
    with pytest.raises(FolderNotFoundError):
        await box.services.mail.delete_folder(box.tenant_id, box.mailbox_id, "Nowhere")


async def test_a_ref_names_the_message_wherever_it_was_moved(box: Box) -> None:
    message_id = box.account.add(make_message("roamer"), "inbox")
    [item] = (await box.services.mail.list_messages(box.tenant_id, box.mailbox_id, ListQuery())).items
    box.account.create_folder("Elsewhere")
    box.account.move(message_id, "Elsewhere")  # by another client (Outlook)
    view = await box.services.mail.message(box.tenant_id, box.mailbox_id, item.ref.encode())
    assert view.message.subject == "roamer"
    stale = MessageRef("INBOX", item.ref.epoch, "AAMkAGnothing").encode()
    with pytest.raises(MessageNotFoundError):
        await box.services.mail.raw(box.tenant_id, box.mailbox_id, stale)
