"""Folders of a mailbox, in neutral terms: what ``GET /v1/mailboxes/{id}/folders`` lists for any
connector (IMAP mailboxes now; Gmail labels and Graph folders later).

A folder's ``role`` is normalized so that an application can find "the Sent folder" without
knowing the server: from the server's own marks (IMAP SPECIAL-USE, RFC 6154) first, else from
the well-known names providers and clients use (``Sent Items``, ``Deleted Items`` …).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Role(enum.StrEnum):
    INBOX = "inbox"
    SENT = "sent"
    DRAFTS = "drafts"
    TRASH = "trash"
    JUNK = "junk"
    ARCHIVE = "archive"
    ALL = "all"
    FLAGGED = "flagged"


@dataclass(frozen=True, slots=True)
class Folder:
    """One folder. ``path`` is the server's full name (what later calls take), ``name`` the
    last level for display; counts are None when the server could not give them cheaply."""

    path: str
    delimiter: str | None
    name: str
    role: Role | None
    messages: int | None
    unseen: int | None
    subscribed: bool
    selectable: bool = True


_SPECIAL_USE = {
    "\\sent": Role.SENT,
    "\\drafts": Role.DRAFTS,
    "\\trash": Role.TRASH,
    "\\junk": Role.JUNK,
    "\\archive": Role.ARCHIVE,
    "\\all": Role.ALL,
    "\\flagged": Role.FLAGGED,
}

# Lower-cased names (the last level, namespace prefix removed) that mean a role by convention.
_WELL_KNOWN = {
    "sent": Role.SENT,
    "sent items": Role.SENT,
    "sent messages": Role.SENT,
    "sent mail": Role.SENT,
    "drafts": Role.DRAFTS,
    "draft": Role.DRAFTS,
    "trash": Role.TRASH,
    "deleted items": Role.TRASH,
    "deleted messages": Role.TRASH,
    "bin": Role.TRASH,
    "junk": Role.JUNK,
    "junk e-mail": Role.JUNK,
    "junk email": Role.JUNK,
    "spam": Role.JUNK,
    "archive": Role.ARCHIVE,
    "archives": Role.ARCHIVE,
    "all mail": Role.ALL,
    "starred": Role.FLAGGED,
    "flagged": Role.FLAGGED,
}


def role_of(
    path: str, *, delimiter: str | None, flags: tuple[str, ...] = (), prefix: str = ""
) -> Role | None:
    """The role of folder ``path``: ``INBOX`` (any case), a SPECIAL-USE flag among ``flags``, or a
    well-known name directly under the personal namespace ``prefix`` (``INBOX.Sent`` on a server
    whose prefix is ``INBOX.``; ``[Gmail]/Sent Mail`` on Gmail, whose marks win anyway)."""
    if path.upper() == "INBOX":
        return Role.INBOX
    for flag in flags:
        role = _SPECIAL_USE.get(flag.lower())
        if role is not None:
            return role
    relative = path[len(prefix) :] if prefix and path.upper().startswith(prefix.upper()) else path
    if delimiter and delimiter in relative:
        parent, _, leaf = relative.rpartition(delimiter)
        if parent.lower() not in ("[gmail]", "[google mail]"):
            return None  # a sub-folder named "Sent" of a project is not the Sent folder
        relative = leaf
    return _WELL_KNOWN.get(relative.lower())


def display_name(path: str, delimiter: str | None) -> str:
    """The last level of ``path`` (``INBOX.Projekte.Größe`` -> ``Größe``)."""
    if delimiter and delimiter in path:
        return path.rsplit(delimiter, 1)[1]
    return path
