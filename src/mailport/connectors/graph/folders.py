"""Graph mail folders as mailport sees them: which folder a watched spec (``INBOX``, ``Archive``,
``INBOX/Sub``, ``role:sent``) is, and each folder's neutral :class:`~mailport.connectors.folders.Folder`.

Graph has no folder paths, only ids, display names and parents; :meth:`GraphClient.folders`
gives each its path (the display-name chain joined with ``/``, the inbox being ``INBOX`` so that
the default settings and the payloads' ``folder`` are IMAP's). Roles come from Graph's
well-known folder names. Shared by the sync side (which folder a watcher opens) and mailbox
access (the folder listing).
"""

from __future__ import annotations

from collections.abc import Sequence

from mailport.connectors.folders import Folder, Role
from mailport.connectors.graph.models import GraphFolder
from mailport.errors import FolderNotFoundError
from mailport.mailboxes.models import ROLE_PREFIX

DELIMITER = "/"
INBOX = "INBOX"


def role(folder: GraphFolder) -> Role | None:
    return Role(folder.role) if folder.role else None


def to_folder(folder: GraphFolder) -> Folder:
    return Folder(
        path=folder.path,
        delimiter=DELIMITER,
        name=folder.path.rsplit(DELIMITER, 1)[-1],
        role=role(folder),
        messages=folder.total,
        unseen=folder.unread,
        subscribed=True,
    )


def neutral(folders: Sequence[GraphFolder]) -> list[Folder]:
    """Every folder, the inbox first, then by path (as the IMAP connector lists them)."""
    return sorted((to_folder(f) for f in folders), key=lambda f: (f.role is not Role.INBOX, f.path))


def canonical(spec: str) -> str:
    """``inbox`` / ``Inbox/Sub`` -> ``INBOX`` / ``INBOX/Sub`` (IMAP's INBOX is case-blind too)."""
    head, sep, rest = spec.partition(DELIMITER)
    return INBOX + sep + rest if head.upper() == INBOX else spec


def resolve(folders: Sequence[GraphFolder], spec: str) -> GraphFolder:
    """The folder a watched ``spec`` names: ``INBOX`` (any case), a path, or ``role:<role>``;
    :class:`~mailport.errors.FolderNotFoundError` when there is none."""
    if spec.startswith(ROLE_PREFIX):
        wanted = spec.removeprefix(ROLE_PREFIX)
        found = [f for f in folders if f.role == wanted]
    else:
        path = canonical(spec)
        found = [f for f in folders if f.path == path]
    if found:
        return found[0]
    raise FolderNotFoundError(
        f"no folder {spec!r} in this Microsoft 365 mailbox",
        field="settings.folders",
        hint="Name the folder by its path as GET /v1/mailboxes/{id}/folders lists it "
        "(INBOX, Archive, INBOX/Sub) or by its role (role:sent).",
    )
