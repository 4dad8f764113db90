"""Graph mail folders as mailport paths: which folder a watched spec (``INBOX``, ``Archive``,
``INBOX/Sub``, ``role:sent``) is, and each folder's neutral :class:`~mailport.connectors.folders.Folder`.

Graph has no folder paths, only ids, display names and parents. mailport's path is the
display-name chain joined with ``/``, except that the inbox is ``INBOX`` (so its children are
``INBOX/Sub``): the default settings (``folder = "INBOX"``) and the payloads' ``folder`` are the
same as IMAP's. Roles come from Graph's well-known folder names.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from mailport.connectors.folders import Folder, Role
from mailport.errors import FolderNotFoundError
from mailport.mailboxes.models import ROLE_PREFIX

DELIMITER = "/"
INBOX = "INBOX"

# Graph's well-known folder names -> neutral roles
WELL_KNOWN_ROLES = {
    "inbox": Role.INBOX,
    "sentitems": Role.SENT,
    "drafts": Role.DRAFTS,
    "deleteditems": Role.TRASH,
    "junkemail": Role.JUNK,
    "archive": Role.ARCHIVE,
}
ROLE_NAMES = {role: name for name, role in WELL_KNOWN_ROLES.items()}


class GraphFolderLike(Protocol):
    """What :meth:`GraphClient.folders` returns per folder (``GraphFolder``)."""

    @property
    def id(self) -> str: ...
    @property
    def display_name(self) -> str: ...
    @property
    def parent_id(self) -> str | None: ...
    @property
    def well_known(self) -> str | None: ...


def role(folder: GraphFolderLike) -> Role | None:
    return WELL_KNOWN_ROLES.get((folder.well_known or "").lower())


def paths(folders: Iterable[GraphFolderLike]) -> dict[str, Any]:
    """mailport path -> folder, for every folder of the tree (``INBOX`` for the inbox)."""
    by_id = {f.id: f for f in folders}
    cache: dict[str, str] = {}

    def path_of(folder: GraphFolderLike, depth: int = 0) -> str:
        known = cache.get(folder.id)
        if known is not None:
            return known
        if role(folder) is Role.INBOX:
            found = INBOX
        else:
            parent = by_id.get(folder.parent_id or "")
            name = folder.display_name.replace(DELIMITER, "_")  # a "/" in a name is not a level
            found = name if parent is None or depth > 64 else f"{path_of(parent, depth + 1)}{DELIMITER}{name}"
        cache[folder.id] = found
        return found

    return {path_of(f): f for f in by_id.values()}


def to_folder(path: str, folder: Any) -> Folder:
    """The neutral folder (counts where the listing had them)."""
    return Folder(
        path=path,
        delimiter=DELIMITER,
        name=path.rsplit(DELIMITER, 1)[-1],
        role=role(folder),
        messages=getattr(folder, "total", None),
        unseen=getattr(folder, "unread", None),
        subscribed=True,
    )


def neutral(folders: Sequence[GraphFolderLike]) -> list[Folder]:
    """Every folder, the inbox first, then by path (as the IMAP connector lists them)."""
    listed = [to_folder(path, f) for path, f in paths(folders).items()]
    return sorted(listed, key=lambda f: (f.role is not Role.INBOX, f.path))


def resolve(folders: Sequence[GraphFolderLike], spec: str) -> tuple[str, Any]:
    """The path and folder a watched ``spec`` names: ``INBOX`` (any case), a path, or
    ``role:<role>``; :class:`~mailport.errors.FolderNotFoundError` when there is none."""
    tree = paths(folders)
    if spec.startswith(ROLE_PREFIX):
        wanted = spec.removeprefix(ROLE_PREFIX)
        for path, folder in tree.items():
            found = role(folder)
            if found is not None and found.value == wanted:
                return path, folder
    else:
        key = INBOX + spec[len(INBOX) :] if spec.upper().startswith(INBOX) and (
            len(spec) == len(INBOX) or spec[len(INBOX)] == DELIMITER
        ) else spec
        if key in tree:
            return key, tree[key]
    raise FolderNotFoundError(
        f"no folder {spec!r} in this Microsoft 365 mailbox",
        field="settings.folders",
        hint="Name the folder by its path as GET /v1/mailboxes/{id}/folders lists it "
        "(INBOX, Archive, INBOX/Sub) or by its role (role:sent).",
    )
