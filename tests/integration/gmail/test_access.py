"""Mailbox access over the Gmail API, against the fake, through the connector the command pool
lends: labels as folders (roles, nesting, counts), listings newest first with pages and filters,
search by ``q``, reading through mailport's parser without marking read, threads, flags and
labels, move, delete (trash; drafts for good), import, label admin; and clear 4xx errors for
what Gmail cannot do."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mailport.connectors.base import MessageRef
from mailport.connectors.folders import Role
from mailport.connectors.mail import FlagChange, ListQuery, SearchQuery
from mailport.errors import (
    CursorExpiredError,
    FolderExistsError,
    FolderNotFoundError,
    InputError,
    InvalidCursorError,
    MessageNotFoundError,
    UnsupportedFeatureError,
)
from mailport.mailboxes.message_view import message_view
from tests.connectors.test_mail_reading import rich_message
from tests.fakes.gmail import make_message
from tests.integration.gmail.access_bed import GmailAccessBed, gbed, gmail_services

__all__ = ["gbed", "gmail_services"]


def subjects(items: list) -> list[str | None]:  # type: ignore[type-arg]
    return [s.envelope.subject for s in items]


async def test_labels_are_folders_with_roles_nesting_and_counts(gbed: GmailAccessBed) -> None:
    work = gbed.account.create_label("Work")
    clients = gbed.account.create_label("Work/Clients")
    gbed.put(make_message(subject="one"), ("INBOX", "UNREAD", work))
    gbed.put(make_message(subject="two"), ("INBOX", clients))
    folders = {f.path: f for f in await gbed.connector.list_folders()}
    assert folders["INBOX"].role is Role.INBOX and (folders["INBOX"].messages, folders["INBOX"].unseen) == (
        2,
        1,
    )
    assert {folders[p].role for p in ("SENT", "DRAFT", "TRASH", "SPAM")} == {
        Role.SENT,
        Role.DRAFTS,
        Role.TRASH,
        Role.JUNK,
    }
    assert "UNREAD" not in folders and "CHAT" not in folders
    nested = folders["Work/Clients"]
    assert (nested.name, nested.delimiter, nested.role, nested.messages) == ("Clients", "/", None, 1)
    snapshot = {f.path for f in await gbed.connector.folder_snapshot()}
    assert snapshot == set(folders)


async def test_a_listing_is_newest_first_with_envelopes_flags_labels_and_pages(gbed: GmailAccessBed) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    work = gbed.account.create_label("Work")
    gbed.put(make_message(subject="plain"), ("INBOX", work), at=now - timedelta(hours=2))
    gbed.put(rich_message(), ("INBOX", "UNREAD", "STARRED"), at=now - timedelta(hours=1))
    for n in range(3):
        gbed.put(make_message(subject=f"old {n}"), ("INBOX",), at=now - timedelta(days=3, minutes=-n))
    first = await gbed.connector.list_messages(ListQuery(limit=2))
    rich, plain = first.items
    assert rich.envelope.subject == "Grüße aus Köln" and rich.envelope.from_[0].name == "Jörg Müller"
    assert (rich.envelope.message_id, rich.envelope.in_reply_to) == (
        "reply.1@example.test",
        "root.1@example.test",
    )
    assert rich.thread_root == "root.1@example.test" and rich.has_attachments is True
    assert set(rich.flags) == {"flagged"} and set(plain.flags) == {"seen"}
    assert "Work" in plain.labels and "UNREAD" not in rich.labels
    assert rich.ref == MessageRef("INBOX", "INBOX", rich.ref.item) and rich.received_at == now - timedelta(
        hours=1
    )
    assert rich.preview and plain.has_attachments is False
    second = await gbed.connector.list_messages(ListQuery(limit=2, cursor=first.next_cursor))
    third = await gbed.connector.list_messages(ListQuery(limit=2, cursor=second.next_cursor))
    assert subjects(second.items) + subjects(third.items) == ["old 2", "old 1", "old 0"]
    assert third.next_cursor is None
    unseen = await gbed.connector.list_messages(ListQuery(unseen=True))
    assert subjects(unseen.items) == ["Grüße aus Köln"]
    recent = await gbed.connector.list_messages(ListQuery(since=now - timedelta(hours=3), unseen=False))
    assert subjects(recent.items) == ["plain"]
    in_work = await gbed.connector.list_messages(ListQuery(folder="Work"))
    assert subjects(in_work.items) == ["plain"] and in_work.items[0].ref.epoch == work


async def test_cursor_and_folder_errors(gbed: GmailAccessBed) -> None:
    for n in range(3):
        gbed.put(make_message(subject=f"m{n}"))
    work = gbed.account.create_label("Work")
    page = await gbed.connector.list_messages(ListQuery(limit=1))
    with pytest.raises(InvalidCursorError):
        await gbed.connector.list_messages(ListQuery(folder="Work", cursor=page.next_cursor))
    with pytest.raises(InvalidCursorError):
        await gbed.connector.list_messages(ListQuery(cursor="garbage!"))
    with pytest.raises(InputError):
        await gbed.connector.list_messages(ListQuery(limit=0))
    with pytest.raises(FolderNotFoundError) as missing:
        await gbed.connector.list_messages(ListQuery(folder="Nowhere"))
    assert missing.value.http_status == 404
    gbed.put(make_message(subject="w1"), (work,))
    gbed.put(make_message(subject="w2"), (work,))
    work_page = await gbed.connector.list_messages(ListQuery(folder="Work", limit=1))
    gbed.account.delete_label(work)
    gbed.account.create_label("Work")  # made again: a new label id, a new epoch
    await gbed.connector.folder_snapshot()  # the label cache is refreshed by any fresh look
    with pytest.raises(CursorExpiredError):
        await gbed.connector.list_messages(ListQuery(folder="Work", cursor=work_page.next_cursor))
    with pytest.raises(MessageNotFoundError):
        await gbed.connector.fetch_message(work_page.items[0].ref)


async def test_search_maps_criteria_to_q_and_pages(gbed: GmailAccessBed) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    gbed.put(make_message(sender="ann@example.test", subject="invoice 1"), at=now - timedelta(days=2))
    gbed.put(make_message(sender="ann@example.test", subject="invoice 2"), ("INBOX", "STARRED"))
    gbed.put(make_message(sender="bob@example.test", subject="invoice 3", message_id="<three@x.test>"))
    by_sender = await gbed.connector.search_messages(SearchQuery(from_="ann@example.test", limit=1))
    assert subjects(by_sender.items) == ["invoice 2"]
    rest = await gbed.connector.search_messages(
        SearchQuery(from_="ann@example.test", limit=1, cursor=by_sender.next_cursor)
    )
    assert subjects(rest.items) == ["invoice 1"] and rest.next_cursor is None
    assert subjects((await gbed.connector.search_messages(SearchQuery(flagged=True))).items) == ["invoice 2"]
    recent = await gbed.connector.search_messages(
        SearchQuery(subject="invoice", since=now - timedelta(days=1))
    )
    assert subjects(recent.items) == ["invoice 3", "invoice 2"]
    found = await gbed.connector.search_messages(SearchQuery(message_id="<three@x.test>"))
    assert subjects(found.items) == ["invoice 3"]
    native = await gbed.connector.search_messages(SearchQuery(native="from:bob@example.test"))
    assert subjects(native.items) == ["invoice 3"]
    with pytest.raises(UnsupportedFeatureError) as refused:
        await gbed.connector.search_messages(SearchQuery(answered=True))
    assert refused.value.http_status == 422
    sent = [r for r in gbed.fake.requests if r.path.endswith("/messages") and r.method == "GET"]
    assert any("rfc822msgid:three@x.test" in str(r.query) for r in sent)


async def test_reading_goes_through_the_parser_and_never_marks_read(gbed: GmailAccessBed) -> None:
    gid = gbed.put(rich_message(), ("INBOX", "UNREAD"))
    [item] = (await gbed.connector.list_messages(ListQuery())).items
    message = await gbed.connector.fetch_message(item.ref)
    assert message.raw is not None and b"rechnung.pdf" in message.raw and message.flags == ()
    assert message.size == item.size and message.received_at == item.received_at
    assert message.source["gmail"]["id"] == gid
    assert gbed.labels_of(item.ref) == {"INBOX", "UNREAD"}
    view = message_view(message, ref=item.ref.encode(), mailbox_id=gbed.mailbox.id, folder="INBOX")
    assert view.message.subject == "Grüße aus Köln" and view.message.attachments[0].filename == "rechnung.pdf"
    with pytest.raises(MessageNotFoundError):
        await gbed.connector.fetch_message(MessageRef("INBOX", "INBOX", "ffffffffffffffff"))
    with pytest.raises(FolderNotFoundError):
        await gbed.connector.fetch_message(MessageRef("Nowhere", "Label_99", gid))


async def test_threads_are_gmail_threads_across_inbox_and_sent(gbed: GmailAccessBed) -> None:
    gbed.put(make_message(subject="plan", message_id="<root@x.test>"), ("INBOX",))
    gbed.put(
        make_message(subject="Re: plan", message_id="<r1@x.test>", in_reply_to="<root@x.test>"), ("SENT",)
    )
    gbed.put(make_message(subject="Re: plan", message_id="<r2@x.test>", in_reply_to="<r1@x.test>"), ())
    gbed.put(make_message(subject="other"), ("INBOX",))
    thread = await gbed.connector.thread_messages("root@x.test")
    assert [s.envelope.message_id for s in thread] == ["root@x.test", "r1@x.test", "r2@x.test"]
    assert [s.folder for s in thread] == ["INBOX", "SENT", ""]  # the last one is archived
    archived = await gbed.connector.fetch_message(thread[2].ref)  # "" : anywhere in the mailbox
    assert archived.raw is not None
    assert await gbed.connector.thread_messages("nobody@x.test") == []


async def test_flags_and_labels_are_label_changes_another_client_sees(gbed: GmailAccessBed) -> None:
    work = gbed.account.create_label("Work")
    one, two = gbed.put(make_message(subject="one")), gbed.put(make_message(subject="two"))
    listed = {s.envelope.subject: s.ref for s in (await gbed.connector.list_messages(ListQuery())).items}
    await gbed.connector.update_flags(
        [listed["one"], listed["two"]],
        FlagChange(add=frozenset({"seen", "flagged"}), add_labels=frozenset({"Work"})),
    )
    assert gbed.labels_of(listed["one"]) == {"INBOX", "STARRED", work}
    await gbed.connector.update_flags(
        [listed["two"]], FlagChange(remove=frozenset({"seen"}), remove_labels=frozenset({"Work"}))
    )
    assert gbed.labels_of(listed["two"]) == {"INBOX", "STARRED", "UNREAD"}
    for bad, error in (("answered", UnsupportedFeatureError), ("$Forwarded", UnsupportedFeatureError)):
        with pytest.raises(error) as refused:
            await gbed.connector.update_flags([listed["one"]], FlagChange(add=frozenset({bad})))
        assert refused.value.http_status == 422
    with pytest.raises(FolderNotFoundError):
        await gbed.connector.update_flags([listed["one"]], FlagChange(add_labels=frozenset({"Nope"})))
    stale = MessageRef("INBOX", "INBOX", "ffffffffffffffff")
    with pytest.raises(MessageNotFoundError) as gone:
        await gbed.connector.update_flags([listed["one"], stale], FlagChange(remove=frozenset({"flagged"})))
    assert gone.value.details["refs"] == [stale.encode()]
    assert "STARRED" in (gbed.labels_of(listed["one"]) or set())  # nothing changed
    assert {one, two} == {listed["one"].item, listed["two"].item}


async def test_move_swaps_labels_and_the_new_ref_works(gbed: GmailAccessBed) -> None:
    archive = gbed.account.create_label("Ablage/Größe")
    gbed.put(make_message(subject="keep"))
    gbed.put(make_message(subject="move me"), ("INBOX", "STARRED"))
    moving, _ = (await gbed.connector.list_messages(ListQuery())).items
    [moved] = await gbed.connector.move_messages([moving.ref], "Ablage/Größe")
    assert moved.new == MessageRef("Ablage/Größe", archive, moving.ref.item)
    assert gbed.labels_of(moved.new) == {archive, "STARRED"}
    fetched = await gbed.connector.fetch_message(moved.new)
    assert fetched.raw is not None and b"move me" in fetched.raw
    with pytest.raises(MessageNotFoundError):
        await gbed.connector.fetch_message(moving.ref)  # no longer in INBOX
    with pytest.raises(FolderNotFoundError):
        await gbed.connector.move_messages([moved.new], "Nowhere")
    with pytest.raises(InputError):
        await gbed.connector.move_messages([moved.new], "DRAFT")


async def test_delete_trashes_and_permanent_or_from_the_trash_deletes(gbed: GmailAccessBed) -> None:
    for subject in ("keep", "trash me", "gone"):
        gbed.put(make_message(subject=subject))
    gone, victim, _ = (await gbed.connector.list_messages(ListQuery())).items
    await gbed.connector.delete_messages([victim.ref])
    assert gbed.labels_of(victim.ref) == {"TRASH", "UNREAD"}
    [trashed] = (await gbed.connector.list_messages(ListQuery(folder="TRASH"))).items
    assert trashed.envelope.subject == "trash me"
    await gbed.connector.delete_messages([trashed.ref])  # already in the trash: for good
    assert gbed.labels_of(trashed.ref) is None
    await gbed.connector.delete_messages([gone.ref], permanent=True)
    assert gbed.labels_of(gone.ref) is None
    assert subjects((await gbed.connector.list_messages(ListQuery())).items) == ["keep"]


async def test_import_inserts_with_labels_and_into_drafts_makes_a_real_draft(gbed: GmailAccessBed) -> None:
    ref = await gbed.connector.import_message(
        "SENT", make_message(subject="imported"), flags=["seen", "flagged"]
    )
    assert ref is not None and ref.scope == "SENT"
    assert gbed.labels_of(ref) == {"SENT", "STARRED"}
    unread = await gbed.connector.import_message("INBOX", make_message(subject="unread"))
    assert unread is not None and gbed.labels_of(unread) == {"INBOX", "UNREAD"}
    draft = await gbed.connector.import_message(
        "DRAFT", make_message(subject="draft"), flags=["draft", "seen"]
    )
    assert draft is not None and draft.scope == "DRAFT"
    assert list(gbed.account.drafts.values()) == [draft.item]
    await gbed.connector.delete_messages([draft], permanent=True)  # drafts.delete
    assert gbed.account.drafts == {} and gbed.labels_of(draft) is None
    with pytest.raises(FolderNotFoundError):
        await gbed.connector.import_message("Nowhere", make_message())
    with pytest.raises(UnsupportedFeatureError):
        await gbed.connector.import_message("INBOX", make_message(), flags=["$Archived"])
    with pytest.raises(InputError):
        await gbed.connector.import_message("INBOX", b"  ")


async def test_labels_are_created_renamed_with_children_and_deleted(gbed: GmailAccessBed) -> None:
    made = await gbed.connector.create_folder("Projects")
    child = await gbed.connector.create_folder("2024", parent="Projects")
    assert (made.path, child.path, child.name) == ("Projects", "Projects/2024", "2024")
    with pytest.raises(FolderExistsError):
        await gbed.connector.create_folder("Projects")
    with pytest.raises(InputError):
        await gbed.connector.create_folder("a/b")
    renamed = await gbed.connector.rename_folder("Projects", name="Archive")
    assert renamed.path == "Archive"
    paths = {f.path for f in await gbed.connector.folder_snapshot()}
    assert {"Archive", "Archive/2024"} <= paths and "Projects/2024" not in paths
    await gbed.connector.delete_folder("Archive/2024")
    assert "Archive/2024" not in {f.path for f in await gbed.connector.folder_snapshot()}
    for action in (
        gbed.connector.delete_folder("INBOX"),
        gbed.connector.rename_folder("SENT", name="Sent Mail"),
        gbed.connector.create_folder("x", parent="INBOX"),
    ):
        with pytest.raises(InputError) as refused:
            await action
        assert "system label" in refused.value.message
    with pytest.raises(FolderNotFoundError):
        await gbed.connector.delete_folder("Nowhere")
