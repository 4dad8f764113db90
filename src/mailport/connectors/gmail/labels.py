"""Gmail labels as mailport folders: which labels are folders, their paths and roles, and a
short-lived per-client cache of the label list (every listing, read and action names labels;
asking Gmail for the list each time would double the requests).

* A **system label** is a folder under its id as Gmail spells it (``INBOX``, ``SENT``,
  ``DRAFT``, ``TRASH``, ``SPAM``, ``STARRED``, ``IMPORTANT``, ``CATEGORY_…``); ``UNREAD`` and
  ``CHAT`` are not folders (``UNREAD`` is the ``seen`` flag). Roles: INBOX inbox, SENT sent,
  DRAFT drafts, TRASH trash, SPAM junk, STARRED flagged (as Gmail's IMAP marks ``[Gmail]/Starred``).
* A **user label** is a folder under its name (``Work/Clients``: ``/`` nests, as in Gmail's UI).
* A message is **in** a label when it carries it, except that a message in the trash or spam is
  only in ``TRASH``/``SPAM`` (Gmail hides it from every other label's listing).

The cache lives as long as its client (weakly keyed) and :data:`CACHE_SECONDS`; a path it does
not know is looked up once more before it is called missing, and every label change made through
mailport clears it.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Iterable
from dataclasses import dataclass

from mailport.connectors.folders import Folder, display_name
from mailport.connectors.gmail.client import GmailClient
from mailport.connectors.gmail.models import Label
from mailport.connectors.gmail.sync import SYSTEM_ROLES, neutral_flags
from mailport.errors import FolderNotFoundError

DELIMITER = "/"
CACHE_SECONDS = 30.0
NOT_FOLDERS = frozenset({"UNREAD", "CHAT"})
HIDING = ("TRASH", "SPAM")  # a message with one of these is in no other label
ROLES = SYSTEM_ROLES  # INBOX inbox, SENT sent, DRAFT drafts, TRASH trash, SPAM junk, STARRED flagged
_ORDER = ("INBOX", "STARRED", "IMPORTANT", "SENT", "DRAFT", "SPAM", "TRASH")


def path_of(label: Label) -> str:
    """A label's folder path: a system label's id, a user label's name."""
    return label.id if label.type == "system" else label.name


@dataclass(frozen=True, slots=True)
class Labels:
    """The mailbox's labels by id and by folder path."""

    by_id: dict[str, Label]
    by_path: dict[str, Label]

    @classmethod
    def of(cls, labels: Iterable[Label]) -> Labels:
        listed = list(labels)
        return cls({label.id: label for label in listed}, {path_of(label): label for label in listed})

    def find(self, path: str) -> Label | None:
        """The label at ``path`` (a system label's id in any case: ``inbox`` is INBOX)."""
        found = self.by_path.get(path)
        if found is None and path.upper() in self.by_id and self.by_id[path.upper()].type == "system":
            found = self.by_id[path.upper()]
        return found

    def name(self, label_id: str) -> str:
        label = self.by_id.get(label_id)
        return path_of(label) if label is not None else label_id

    def folders(self) -> list[Label]:
        """The labels that are folders: system ones in Gmail's order, then user labels by name."""
        system = [
            label for label in self.by_id.values() if label.type == "system" and label.id not in NOT_FOLDERS
        ]
        user = [label for label in self.by_id.values() if label.type != "system"]
        rank = {label_id: n for n, label_id in enumerate(_ORDER)}
        system.sort(key=lambda label: (rank.get(label.id, len(rank)), label.id))
        user.sort(key=lambda label: label.name.casefold())
        return system + user


_cache: weakref.WeakKeyDictionary[GmailClient, tuple[float, Labels]] = weakref.WeakKeyDictionary()


async def labels(client: GmailClient, *, fresh: bool = False) -> Labels:
    """The mailbox's labels, from the cache when it is recent."""
    cached = _cache.get(client)
    now = time.monotonic()
    if not fresh and cached is not None and now - cached[0] < CACHE_SECONDS:
        return cached[1]
    found = Labels.of(await client.labels())
    _cache[client] = (now, found)
    return found


def forget(client: GmailClient) -> None:
    """Drop the cached labels (a label was created, renamed or deleted)."""
    _cache.pop(client, None)


async def resolve(client: GmailClient, path: str) -> Label:
    """The label at folder ``path``; :class:`FolderNotFoundError` when there is none (after one
    fresh look, in case it was made since the cache was filled)."""
    found = (await labels(client)).find(path)
    if found is None:
        found = (await labels(client, fresh=True)).find(path)
    if found is None or found.id in NOT_FOLDERS:
        raise FolderNotFoundError(f"no label {path!r} in this mailbox", folder=path)
    return found


def folder(label: Label, counts: Label | None = None) -> Folder:
    """A label as the folder list shows it (counts from ``labels.get`` when given)."""
    path = path_of(label)
    system = label.type == "system"
    source = counts or label
    return Folder(
        path=path,
        delimiter=DELIMITER,
        name=path if system else display_name(path, DELIMITER),
        role=ROLES.get(label.id) if system else None,
        messages=source.messages_total,
        unseen=source.messages_unread,
        subscribed=True,
        selectable=True,
    )


def contains(label_ids: Iterable[str], label_id: str) -> bool:
    """Is a message with ``label_ids`` in label ``label_id`` (see the module docstring)?"""
    ids = set(label_ids)
    if label_id not in ids:
        return False
    return label_id in HIDING or not ids.intersection(HIDING)


def home(label_ids: Iterable[str], known: Labels) -> Label | None:
    """The folder a message found outside any listing (a thread) is shown in: the first of the
    system folders in Gmail's order it is in, else its first user label; None when archived."""
    ids = [label_id for label_id in label_ids if label_id in known.by_id]
    for label_id in _ORDER:
        if label_id in ids and contains(ids, label_id):
            return known.by_id[label_id]
    users = sorted(
        (known.by_id[i] for i in ids if known.by_id[i].type != "system"), key=lambda label: label.name
    )
    return users[0] if users and not set(ids).intersection(HIDING) else None


__all__ = [
    "DELIMITER",
    "Labels",
    "contains",
    "folder",
    "forget",
    "home",
    "labels",
    "neutral_flags",
    "path_of",
    "resolve",
]
