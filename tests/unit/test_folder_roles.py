"""Folder roles and display names (:mod:`mailport.connectors.folders`), and the modified UTF-7
codec the IMAP names go through (RFC 3501 5.1.3), on bytes."""

from __future__ import annotations

import pytest

from mailport.connectors.folders import Role, display_name, role_of
from mailport.imap.utf7 import decode, encode


@pytest.mark.parametrize(
    ("path", "delimiter", "flags", "prefix", "role"),
    [
        ("INBOX", "/", (), "", Role.INBOX),
        ("inbox", "/", (), "", Role.INBOX),
        ("Gesendet", "/", ("\\HasNoChildren", "\\Sent"), "", Role.SENT),  # the server's mark wins
        ("Sent Items", "/", (), "", Role.SENT),
        ("Sent Messages", "/", (), "", Role.SENT),
        ("INBOX.Sent", ".", (), "INBOX.", Role.SENT),  # under the personal namespace
        ("inbox.Drafts", ".", (), "INBOX.", Role.DRAFTS),
        ("Deleted Items", "/", (), "", Role.TRASH),
        ("Trash", "/", (), "", Role.TRASH),
        ("Spam", "/", (), "", Role.JUNK),
        ("Junk", "/", (), "", Role.JUNK),
        ("Archive", "/", (), "", Role.ARCHIVE),
        ("[Gmail]/All Mail", "/", (), "", Role.ALL),
        ("[Gmail]/Starred", "/", (), "", Role.FLAGGED),
        ("Projects/Sent", "/", (), "", None),  # a project's sub-folder is not the Sent folder
        ("INBOX.Projects.Trash", ".", (), "INBOX.", None),
        ("Kunden", "/", ("\\HasChildren",), "", None),
    ],
)
def test_roles_from_marks_and_well_known_names(
    path: str, delimiter: str, flags: tuple[str, ...], prefix: str, role: Role | None
) -> None:
    assert role_of(path, delimiter=delimiter, flags=flags, prefix=prefix) is role


def test_display_name_is_the_last_level() -> None:
    assert display_name("INBOX.Projekte.Größe", ".") == "Größe"
    assert display_name("Archive/2024", "/") == "2024"
    assert display_name("Flat", None) == "Flat"


@pytest.mark.parametrize(
    ("text", "wire"),
    [
        ("INBOX", b"INBOX"),
        ("Entwürfe", b"Entw&APw-rfe"),
        ("A & B", b"A &- B"),  # "&" itself is escaped as "&-"
        ("~peter/mail/日本語/台北", b"~peter/mail/&ZeVnLIqe-/&U,BTFw-"),  # RFC 3501's example
        ("Größe", b"Gr&APYA3w-e"),
        ("📬", b"&2D3c7A-"),  # outside the BMP: a UTF-16 surrogate pair
    ],
)
def test_modified_utf7_on_bytes(text: str, wire: bytes) -> None:
    assert encode(text) == wire
    assert decode(wire) == text


def test_undecodable_names_are_kept_as_latin1_text() -> None:
    assert decode(b"Caf\xe9") == "Caf\xe9"
