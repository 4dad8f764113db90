"""Contract: acting on messages on every bed — flags (neutral names and keywords) that another
client sees, labels refused where the server has none, move with a working new ref, delete to
the trash or for good, import with flags and date; a stale ref changes nothing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from mailport.connectors.base import MessageRef
from mailport.connectors.imap import ImapConnector
from mailport.connectors.mail import FlagChange, ListQuery, MessageSummary
from mailport.errors import (
    FolderNotFoundError,
    InputError,
    MessageNotFoundError,
    TrashFolderMissingError,
    UnsupportedFeatureError,
)
from tests.connectors.mailbed import MailBed, make_mailbox
from tests.integration.sync.conftest import make_message
from tests.mailstack.dovecot import Dovecot


async def listed(bed: MailBed, folder: str = "INBOX") -> list[MessageSummary]:
    return (await bed.connector.list_messages(ListQuery(folder=folder))).items


async def test_flags_set_and_cleared_are_seen_by_another_client(bed: MailBed) -> None:
    for subject in ("one", "two", "three"):
        await bed.put("INBOX", make_message(subject))
    three, two, one = await listed(bed)
    await bed.connector.update_flags(
        [one.ref, two.ref], FlagChange(add=frozenset({"seen", "flagged", "$Forwarded"}))
    )
    assert await bed.flags_elsewhere(one.ref) == {"seen", "flagged", "$Forwarded"}
    assert await bed.flags_elsewhere(three.ref) == set()
    await bed.connector.update_flags([two.ref], FlagChange(remove=frozenset({"seen", "$Forwarded"})))
    assert await bed.flags_elsewhere(two.ref) == {"flagged"}
    await bed.connector.update_flags([three.ref], FlagChange(add=frozenset({"answered", "Draft"})))
    after = {s.envelope.subject: set(s.flags) for s in await listed(bed)}
    assert after == {
        "one": {"seen", "flagged", "$Forwarded"},
        "two": {"flagged"},
        "three": {"answered", "draft"},
    }


@pytest.mark.parametrize("bad", ["has space", "\\Deleted", "a(b", "", "ü"])
async def test_a_flag_that_is_not_a_keyword_is_refused_before_anything_changes(
    bed: MailBed, bad: str
) -> None:
    await bed.put("INBOX", make_message("one"))
    [one] = await listed(bed)
    with pytest.raises(InputError) as refused:
        await bed.connector.update_flags([one.ref], FlagChange(add=frozenset({"seen", bad})))
    assert refused.value.http_status == 422
    assert await bed.flags_elsewhere(one.ref) == set()


async def test_labels_are_refused_where_the_server_has_none(bed: MailBed) -> None:
    await bed.put("INBOX", make_message("one"))
    [one] = await listed(bed)
    with pytest.raises(UnsupportedFeatureError) as refused:
        await bed.connector.update_flags([one.ref], FlagChange(add_labels=frozenset({"Work"})))
    assert refused.value.code == "unsupported_feature"


async def test_a_stale_ref_changes_nothing_and_is_not_found(bed: MailBed) -> None:
    await bed.put("INBOX", make_message("one"))
    [one] = await listed(bed)
    stale = MessageRef(one.ref.scope, one.ref.epoch, "4242" if one.ref.item.isdigit() else "m4242")
    with pytest.raises(MessageNotFoundError) as gone:
        await bed.connector.update_flags([one.ref, stale], FlagChange(add=frozenset({"flagged"})))
    assert gone.value.details["refs"] == [stale.encode()]
    assert await bed.flags_elsewhere(one.ref) == set()
    with pytest.raises(MessageNotFoundError):
        await bed.connector.move_messages([stale], bed.path("Trash"))
    with pytest.raises(MessageNotFoundError):
        await bed.connector.delete_messages([stale])


async def test_move_returns_a_working_new_ref(bed: MailBed) -> None:
    target = bed.path("Ablage", "Größe")
    await bed.make_folder(bed.path("Ablage"))
    await bed.make_folder(target)
    await bed.put("INBOX", make_message("keep"))
    await bed.put("INBOX", make_message("move me"), flags=["\\Flagged"])
    moving, _ = await listed(bed)
    [moved] = await bed.connector.move_messages([moving.ref], target)
    assert moved.old == moving.ref and moved.new is not None and moved.new.scope == target
    fetched = await bed.connector.fetch_message(moved.new)
    assert fetched.raw is not None and b"move me" in fetched.raw
    assert await bed.flags_elsewhere(moved.new) == {"flagged"}
    assert [s.envelope.subject for s in await listed(bed)] == ["keep"]
    assert [s.ref for s in await listed(bed, target)] == [moved.new]
    with pytest.raises(MessageNotFoundError):
        await bed.connector.fetch_message(moving.ref)
    with pytest.raises(FolderNotFoundError):
        await bed.connector.move_messages([moved.new], bed.path("Nowhere"))


async def test_delete_moves_to_the_trash_and_deleting_there_expunges(bed: MailBed) -> None:
    for subject in ("keep", "delete me"):
        await bed.put("INBOX", make_message(subject))
    victim, _ = await listed(bed)
    await bed.connector.delete_messages([victim.ref])
    assert [s.envelope.subject for s in await listed(bed)] == ["keep"]
    [trashed] = await listed(bed, bed.path("Trash"))
    assert trashed.envelope.subject == "delete me"
    await bed.connector.delete_messages([trashed.ref])
    assert await listed(bed, bed.path("Trash")) == []
    assert await bed.uids_elsewhere(bed.path("Trash")) == 0


async def test_permanent_delete_expunges_only_the_given_messages(bed: MailBed) -> None:
    for subject in ("keep", "gone 1", "gone 2"):
        await bed.put("INBOX", make_message(subject))
    two, one, _ = await listed(bed)
    await bed.connector.delete_messages([one.ref, two.ref], permanent=True)
    assert [s.envelope.subject for s in await listed(bed)] == ["keep"]
    assert await listed(bed, bed.path("Trash")) == []
    assert await bed.flags_elsewhere(one.ref) is None


@pytest.mark.parametrize("bed", ["fake"], indirect=True)  # Dovecot's beds always have a Trash
async def test_delete_without_a_trash_folder_is_refused(bed: MailBed) -> None:
    await bed.put("INBOX", make_message("one"))
    [one] = await listed(bed)
    assert bed.remote is not None
    bed.remote.folders.discard("Trash")
    with pytest.raises(TrashFolderMissingError) as refused:
        await bed.connector.delete_messages([one.ref])
    assert refused.value.code == "trash_folder_missing" and refused.value.http_status == 422
    assert [s.ref for s in await listed(bed)] == [one.ref]


async def test_import_stores_the_message_with_its_flags_and_date(bed: MailBed) -> None:
    when = datetime(2023, 5, 17, 8, 15, 30, tzinfo=UTC)
    folder = bed.path("Sent")
    ref = await bed.connector.import_message(
        folder, make_message("imported"), flags=["seen", "$Archived"], received_at=when
    )
    assert ref is not None and ref.scope == folder
    [item] = await listed(bed, folder)
    assert item.ref == ref and item.envelope.subject == "imported"
    assert set(item.flags) == {"seen", "$Archived"} and item.received_at == when
    assert await bed.flags_elsewhere(ref) == {"seen", "$Archived"}
    with pytest.raises(FolderNotFoundError):
        await bed.connector.import_message(bed.path("Nowhere"), make_message("lost"))
    with pytest.raises(InputError):
        await bed.connector.import_message(folder, make_message("bad flag"), flags=["not a flag"])


async def test_without_uidplus_other_deleted_messages_are_never_expunged(dovecot: Dovecot) -> None:
    """A server without UIDPLUS (Dovecot told to hide it) can only EXPUNGE everything marked
    ``\\Deleted``: a permanent delete is refused while another client's marks exist."""
    user, password = dovecot.dyn_user(f"nouidplus{uuid.uuid4().hex[:8]}")
    other = await dovecot.client(user, password)
    connector = ImapConnector(
        make_mailbox("imap", user, password, dovecot.imap_port), ignore_capabilities=("UIDPLUS",)
    )
    await connector.connect()
    try:
        for subject in ("one", "two", "marked elsewhere"):
            await other.append("INBOX", make_message(subject))
        await other.select("INBOX")
        await other.store([3], ["\\Deleted"])
        listing = (await connector.list_messages(ListQuery())).items
        assert [s.envelope.subject for s in listing] == ["marked elsewhere", "two", "one"]
        one = listing[-1]
        with pytest.raises(UnsupportedFeatureError) as refused:
            await connector.delete_messages([one.ref], permanent=True)
        assert "1 other messages" in refused.value.message and "Expunge" in refused.value.hint
        assert (await other.status("INBOX", ["MESSAGES"]))["MESSAGES"] == 3
        await other.store([3], ["\\Deleted"], mode="-")
        await connector.delete_messages([one.ref], permanent=True)
        left = (await connector.list_messages(ListQuery())).items
        assert [s.envelope.subject for s in left] == ["marked elsewhere", "two"]
    finally:
        await connector.disconnect()
        await other.logout()
