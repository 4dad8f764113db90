"""The Sent copy and stored drafts on real Dovecot, both namespace layouts: stored once and
marked, found again rather than stored twice (also when a worker stopped between APPEND and
its database update), the folder created when missing, found by its name on a server without
SPECIAL-USE."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from mailport.connectors.base import MessageRef
from mailport.connectors.folders import Role
from mailport.connectors.mail import ListQuery
from mailport.sending.sent_copy import folder_with_role, store_draft, store_sent_copy
from tests.connectors.mailbed import MailBed
from tests.integration.sending.copies_bed import bare_bed, bed, message

__all__ = ["bare_bed", "bed"]  # fixtures


async def folder_names(bed: MailBed) -> set[str]:
    assert bed.other is not None
    return {entry.name for entry in await bed.other.list_mailboxes()}


async def test_the_sent_copy_is_stored_once_and_seen(bed: MailBed) -> None:
    raw, mid = message()
    ref = await store_sent_copy(bed.connector, raw, mid)

    assert ref is not None
    location = MessageRef.decode(ref)
    assert location.scope == bed.path("Sent")
    assert await bed.flags_elsewhere(location) == {"seen"}
    assert await bed.uids_elsewhere(bed.path("Sent")) == 1

    again = await store_sent_copy(bed.connector, raw, f"<{mid}>")  # brackets or not: the same id
    assert again == ref
    assert await bed.uids_elsewhere(bed.path("Sent")) == 1


async def test_a_copy_appended_before_a_crash_is_found_not_stored_again(bed: MailBed) -> None:
    # A worker APPENDed, then died before recording the ref: the next attempt finds that copy.
    raw, mid = message("Stored before the crash")
    await bed.put(bed.path("Sent"), raw, flags=("\\Seen",))
    other_raw, _ = message("Another", message_id=f"x{mid}")  # its id contains the wanted one
    await bed.put(bed.path("Sent"), other_raw)

    ref = await store_sent_copy(bed.connector, raw, mid)

    assert ref is not None
    assert await bed.uids_elsewhere(bed.path("Sent")) == 2
    assert MessageRef.decode(ref).item == "1"  # the copy already there, not the other message


async def test_a_draft_is_stored_in_drafts_marked_draft_and_seen(bed: MailBed) -> None:
    raw, mid = message("A draft")
    ref = await store_draft(bed.connector, raw, mid)

    assert ref is not None
    location = MessageRef.decode(ref)
    assert location.scope == bed.path("Drafts")
    assert await bed.flags_elsewhere(location) == {"draft", "seen"}
    assert await store_draft(bed.connector, raw, mid) == ref
    assert await bed.uids_elsewhere(bed.path("Drafts")) == 1
    assert await bed.uids_elsewhere(bed.path("Sent")) == 0


async def test_the_sent_folder_is_created_when_missing(bare_bed: MailBed) -> None:
    assert bare_bed.path("Sent") not in await folder_names(bare_bed)
    raw, mid = message()

    ref = await store_sent_copy(bare_bed.connector, raw, mid)

    assert ref is not None
    # "Sent" at the top of the personal namespace: Sent, or INBOX.Sent on the dotted layout
    assert MessageRef.decode(ref).scope == bare_bed.path("Sent")
    assert bare_bed.path("Sent") in await folder_names(bare_bed)
    assert await folder_with_role(bare_bed.connector, Role.SENT) == bare_bed.path("Sent")
    assert await bare_bed.flags_elsewhere(MessageRef.decode(ref)) == {"seen"}
    assert await store_sent_copy(bare_bed.connector, raw, mid) == ref
    assert await bare_bed.uids_elsewhere(bare_bed.path("Sent")) == 1


async def test_without_special_use_the_well_known_name_is_used(bare_bed: MailBed) -> None:
    await bare_bed.make_folder(bare_bed.path("Sent Items"))
    await bare_bed.make_folder(bare_bed.path("Projects"))
    await bare_bed.make_folder(bare_bed.path("Projects", "Sent"))  # not the Sent folder
    raw, mid = message()

    ref = await store_sent_copy(bare_bed.connector, raw, mid)

    assert ref is not None
    assert MessageRef.decode(ref).scope == bare_bed.path("Sent Items")
    assert bare_bed.path("Sent") not in await folder_names(bare_bed)
    assert await bare_bed.uids_elsewhere(bare_bed.path("Sent Items")) == 1
    assert await bare_bed.uids_elsewhere(bare_bed.path("Projects", "Sent")) == 0


async def test_the_drafts_folder_is_created_when_missing(bare_bed: MailBed) -> None:
    raw, mid = message("A draft")
    ref = await store_draft(bare_bed.connector, raw, mid)

    assert ref is not None
    assert MessageRef.decode(ref).scope == bare_bed.path("Drafts")
    assert await bare_bed.flags_elsewhere(MessageRef.decode(ref)) == {"draft", "seen"}


async def test_two_workers_creating_the_sent_folder_at_once_both_store(bare_bed: MailBed) -> None:
    from mailport.connectors import registry
    from tests.connectors.mailbed import make_mailbox

    assert bare_bed.dovecot is not None
    second = registry.create(
        make_mailbox("imap", bare_bed.user, f"pw-{bare_bed.user.split('@')[0]}", bare_bed.dovecot.imap_port),
        registry.ConnectorContext(),
    )
    await second.connect()
    try:
        (one, one_id), (two, two_id) = message("one"), message("two")
        refs = await asyncio.gather(
            store_sent_copy(bare_bed.connector, one, one_id), store_sent_copy(second, two, two_id)
        )
    finally:
        await second.disconnect()

    assert all(ref is not None and MessageRef.decode(ref).scope == bare_bed.path("Sent") for ref in refs)
    assert await bare_bed.uids_elsewhere(bare_bed.path("Sent")) == 2


async def test_a_remembered_folder_deleted_meanwhile_is_looked_up_again(bare_bed: MailBed) -> None:
    first, first_id = message("first")
    assert await store_sent_copy(bare_bed.connector, first, first_id) is not None
    assert bare_bed.other is not None
    # Dovecot drops a session whose selected folder is deleted (then a fresh connection starts
    # with nothing remembered): this one has moved on to INBOX meanwhile.
    await bare_bed.connector.list_messages(ListQuery(folder="INBOX"))
    await bare_bed.other.delete(bare_bed.path("Sent"))  # another client removes it
    await bare_bed.make_folder(bare_bed.path("Sent Messages"))

    second, second_id = message("second")
    ref = await store_sent_copy(bare_bed.connector, second, second_id)

    assert ref is not None
    assert MessageRef.decode(ref).scope == bare_bed.path("Sent Messages")
    assert await bare_bed.uids_elsewhere(bare_bed.path("Sent Messages")) == 1


async def test_only_recent_mail_is_searched_for_an_earlier_copy(bed: MailBed) -> None:
    # The same Message-ID APPENDed a month before the message was written is another message
    # (a Sent folder's years are not searched for each copy): this one is stored.
    raw, mid = message("Written today", message_id=None)
    await bed.put(bed.path("Sent"), raw, at=datetime.now(UTC) - timedelta(days=30))

    ref = await store_sent_copy(bed.connector, raw.replace(b"Sat, 05 Dec 2026", _today()), mid)

    assert ref is not None and MessageRef.decode(ref).item == "2"
    assert await bed.uids_elsewhere(bed.path("Sent")) == 2


def _today() -> bytes:
    return datetime.now(UTC).strftime("%a, %d %b %Y").encode()
