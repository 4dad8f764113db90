"""Folder names placed in the server's personal namespace (RFC 2342), pure."""

from __future__ import annotations

import pytest

from mailport.imap import Namespace, Namespaces

DOTTED = Namespaces(personal=(Namespace("INBOX.", "."),), shared=(Namespace("#shared.", "."),))
PLAIN = Namespaces(personal=(Namespace("", "/"),))


@pytest.mark.parametrize(
    "namespaces, given, expected",
    [
        (DOTTED, "Processed", "INBOX.Processed"),
        (DOTTED, "INBOX.Processed", "INBOX.Processed"),
        (DOTTED, "inbox.Processed", "INBOX.Processed"),  # INBOX is case-insensitive
        (DOTTED, "INBOX", "INBOX"),
        (DOTTED, "inbox", "inbox"),
        (DOTTED, "#shared.team", "#shared.team"),
        (DOTTED, "Archive.2024", "INBOX.Archive.2024"),
        (DOTTED, "Archive/2024", "INBOX.Archive.2024"),
        (DOTTED, "INBOX/Processed", "INBOX.Processed"),
        (PLAIN, "Processed", "Processed"),
        (PLAIN, "Archive/2024", "Archive/2024"),
        (Namespaces(), "Processed", "Processed"),
    ],
)
def test_a_folder_is_placed_in_the_personal_namespace(
    namespaces: Namespaces, given: str, expected: str
) -> None:
    assert namespaces.qualify(given) == expected
