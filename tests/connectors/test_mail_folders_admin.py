"""Contract: creating, renaming and deleting folders on every bed — at the personal namespace's
prefix with its separator (``INBOX.`` and "." on the dotted Dovecot), non-ASCII names round
trip (modified UTF-7 on the wire), a deleted folder's sub-folders stay (RFC 3501 6.3.4; Dovecot's
maildir keeps the deleted parent's name as an empty level), and every refusal is a clear error."""

from __future__ import annotations

import pytest

from mailport.connectors.mail import ListQuery
from mailport.errors import FolderExistsError, FolderNotFoundError, InputError
from tests.connectors.mailbed import MailBed
from tests.integration.sync.conftest import make_message

NAME = "Größe & Ärger €"


async def paths(bed: MailBed) -> set[str]:
    return {f.path for f in await bed.connector.list_folders()}


async def test_a_folder_is_created_at_the_namespace_prefix_with_its_separator(bed: MailBed) -> None:
    made = await bed.connector.create_folder(NAME)
    assert made.path == bed.path(NAME) and made.name == NAME
    assert made.delimiter == bed.delimiter and made.role is None and made.selectable
    assert (made.messages, made.unseen) == (0, 0) and made.subscribed
    child = await bed.connector.create_folder("2024", parent=made.path)
    assert child.path == bed.path(NAME, "2024") and child.name == "2024"
    assert {made.path, child.path} <= await paths(bed)
    await bed.put(child.path, make_message("filed"))
    [item] = (await bed.connector.list_messages(ListQuery(folder=child.path))).items
    assert item.envelope.subject == "filed"
    if bed.other is not None:  # another client reads the same name
        names = {e.name for e in await bed.other.list_mailboxes()}
        assert {made.path, child.path} <= names


async def test_creating_is_refused_clearly(bed: MailBed) -> None:
    await bed.connector.create_folder("Projects")
    with pytest.raises(FolderExistsError) as exists:
        await bed.connector.create_folder("Projects")
    assert exists.value.code == "folder_exists" and exists.value.http_status == 409
    for bad in (f"a{bed.delimiter}b", "", "  ", "star*", "per%cent"):
        with pytest.raises(InputError) as refused:
            await bed.connector.create_folder(bad)
        assert refused.value.http_status == 422
    with pytest.raises(FolderNotFoundError) as missing:
        await bed.connector.create_folder("Child", parent=bed.path("Nowhere"))
    assert missing.value.code == "folder_not_found"


async def test_a_folder_is_renamed_in_place_under_another_parent_and_with_its_children(bed: MailBed) -> None:
    work = await bed.connector.create_folder("Work")
    await bed.connector.create_folder("Old", parent=work.path)
    await bed.put(bed.path("Work", "Old"), make_message("kept"))
    renamed = await bed.connector.rename_folder(work.path, name=NAME)
    assert renamed.path == bed.path(NAME) and renamed.name == NAME
    assert renamed.subscribed
    now = await paths(bed)
    assert bed.path(NAME, "Old") in now and work.path not in now
    [kept] = (await bed.connector.list_messages(ListQuery(folder=bed.path(NAME, "Old")))).items
    assert kept.envelope.subject == "kept"
    archive = await bed.connector.create_folder("Archive 2")
    moved = await bed.connector.rename_folder(bed.path(NAME, "Old"), name="Older", parent=archive.path)
    assert moved.path == bed.path("Archive 2", "Older") and moved.messages == 1
    top = await bed.connector.rename_folder(moved.path, name="Top", parent="")
    assert top.path == bed.path("Top") and top.messages == 1


async def test_renaming_is_refused_clearly(bed: MailBed) -> None:
    await bed.connector.create_folder("A")
    await bed.connector.create_folder("B")
    with pytest.raises(InputError) as inbox:
        await bed.connector.rename_folder("INBOX", name="Eingang")
    assert inbox.value.http_status == 422 and "INBOX" in inbox.value.message
    with pytest.raises(FolderNotFoundError):
        await bed.connector.rename_folder(bed.path("Nowhere"), name="X")
    with pytest.raises(FolderExistsError):
        await bed.connector.rename_folder(bed.path("A"), name="B")
    with pytest.raises(InputError):
        await bed.connector.rename_folder(bed.path("A"), name=f"x{bed.delimiter}y")


async def test_a_folder_is_deleted_and_refusals_are_clear(bed: MailBed) -> None:
    made = await bed.connector.create_folder(NAME)
    await bed.put(made.path, make_message("inside"))
    await bed.connector.list_messages(ListQuery(folder=made.path))  # selected on the session
    await bed.connector.delete_folder(made.path)
    assert made.path not in await paths(bed)
    with pytest.raises(FolderNotFoundError) as missing:
        await bed.connector.delete_folder(made.path)
    assert missing.value.code == "folder_not_found"
    with pytest.raises(InputError) as inbox:
        await bed.connector.delete_folder("inbox")
    assert inbox.value.http_status == 422
    parent = await bed.connector.create_folder("Parent")
    child = await bed.connector.create_folder("Child", parent=parent.path)
    await bed.put(parent.path, make_message("in the parent"))
    await bed.connector.delete_folder(parent.path)  # RFC 3501: its children stay
    left = {f.path: f for f in await bed.connector.list_folders()}
    # the parent's name may stay as a level (Dovecot's maildir keeps it, emptied)
    assert child.path in left and not (left[parent.path].messages if parent.path in left else 0)
    assert (await bed.connector.list_messages(ListQuery())).items == []  # the session still works
