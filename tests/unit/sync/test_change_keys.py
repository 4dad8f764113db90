"""The pure parts of the change streams: idempotency keys (stable, short enough for the column
whatever the folder's name) and the folder token's round trip."""

from __future__ import annotations

from mailport.connectors.base import MessageChange, ScopeState
from mailport.connectors.folders import Folder, Role
from mailport.sync.changes import _decode_folders, _encode_folders, _folder, _message_key


def test_message_keys_name_mailbox_folder_epoch_item_and_version() -> None:
    scope = ScopeState("INBOX", "1700000000")
    updated = MessageChange("42", ("seen",), "918")
    deleted = MessageChange("42", None, "")
    assert _message_key("mbx_1", scope, updated) == "upd:mbx_1:INBOX:1700000000:42:918"
    assert _message_key("mbx_1", scope, deleted) == "del:mbx_1:INBOX:1700000000:42"


def test_a_long_folder_name_is_hashed_so_the_key_fits() -> None:
    long = "Ä" * 500
    key = _message_key("mbx_01m7zh4d94fxj51fc0rsy5n5mm", ScopeState(long, "7"), MessageChange("9", (), "s3"))
    assert len(key) < 600 and "sha256=" in key
    assert key == _message_key(
        "mbx_01m7zh4d94fxj51fc0rsy5n5mm", ScopeState(long, "7"), MessageChange("9", (), "s3")
    )


def test_the_folder_token_round_trips_and_remembers_roles() -> None:
    folders = [
        Folder("INBOX", "/", "INBOX", Role.INBOX, None, None, False),
        Folder("Größe/Sub", "/", "Sub", None, None, None, False),
    ]
    diffs, tree = _decode_folders(_encode_folders(4, folders)) or (0, {})
    assert diffs == 4 and set(tree) == {"INBOX", "Größe/Sub"}
    gone = _folder("INBOX", tree["INBOX"])
    assert (gone.name, gone.role, gone.delimiter) == ("INBOX", Role.INBOX, "/")
    assert _decode_folders("garbage") is None
