"""The Sent copy and stored drafts: one message APPENDed to the folder with the ``sent`` (or
``drafts``) role, created when the mailbox has none, and never stored twice.

"Never twice" is checked on the server, not in our database: the folder is searched for the
Message-ID before every APPEND (but the send worker's first try right after sending, under
``always``: nothing can have stored it yet). A worker that stopped between the APPEND and the outbox update
finds its own copy on the next attempt and returns that ref instead of storing a second one;
so does a provider that filed a copy itself after all. Only mail received since shortly before
the message was written is searched (:func:`appended_since`): a copy cannot be older, and a
Sent folder's years of mail would make every copy slower.

The folder is the one the server marks (SPECIAL-USE, RFC 6154) or, on servers without the marks,
the one with a well-known name (``Sent``, ``Sent Items`` …: :mod:`mailport.connectors.folders`).
When there is none, ``Sent`` (``Drafts``) is created at the top of the personal namespace
(``INBOX.Sent`` on Courier-style servers); another client creating it at the same moment is
no failure (``folder_exists``: the folder list is read again).
"""

from __future__ import annotations

import logging
import re
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from mailport.connectors.base import Connector, Feature, MessageRef
from mailport.connectors.folders import Folder, Role, role_of
from mailport.connectors.mail import Flag, ListQuery, MessageSummary, SearchQuery
from mailport.errors import FolderExistsError, FolderNotFoundError

log = logging.getLogger(__name__)

SCAN_LIMIT = 100  # newest messages compared by Message-ID where the source cannot search
SINCE_MARGIN = timedelta(days=2)  # see appended_since
_DATE = re.compile(rb"^date:[ \t]*(.*(?:\r?\n[ \t].*)*)", re.IGNORECASE | re.MULTILINE)

# connection -> role -> folder path (a pooled connection lives on; a dropped one takes its entry)
_known: weakref.WeakKeyDictionary[Connector, dict[Role, str]] = weakref.WeakKeyDictionary()


@dataclass(frozen=True, slots=True)
class CopyKind:
    """Where a kind of copy goes and how it is marked."""

    role: Role
    name: str  # the folder created when the mailbox has none with ``role``
    flags: tuple[str, ...]  # neutral names (``seen`` is IMAP's ``\\Seen``), as import_message takes them


SENT = CopyKind(Role.SENT, "Sent", (Flag.SEEN,))
DRAFTS = CopyKind(Role.DRAFTS, "Drafts", (Flag.DRAFT, Flag.SEEN))


async def store_sent_copy(
    connector: Connector, raw: bytes, message_id: str, *, search: bool = True
) -> str | None:
    """Store ``raw`` once in the Sent folder, ``\\Seen``: the ref of the copy already there
    (same Message-ID), else of the one APPENDed; None when the server does not tell it.
    ``search=False`` only where no earlier attempt (nor the provider) can have stored it: the
    send worker's first try right after the server accepted the message."""
    return await store_copy(connector, SENT, raw, message_id, search=search)


async def store_draft(connector: Connector, raw: bytes, message_id: str) -> str | None:
    """Store ``raw`` once in the Drafts folder, ``\\Draft \\Seen`` (as :func:`store_sent_copy`)."""
    return await store_copy(connector, DRAFTS, raw, message_id)


async def store_copy(
    connector: Connector, kind: CopyKind, raw: bytes, message_id: str, *, search: bool = True
) -> str | None:
    """Store ``raw`` once in the folder of ``kind`` (see the module docstring)."""
    try:
        return await _store(connector, kind, raw, message_id, search=search)
    except FolderNotFoundError:  # the remembered folder was deleted or renamed meanwhile
        _known.get(connector, {}).pop(kind.role, None)
        return await _store(connector, kind, raw, message_id, search=search)


async def _store(
    connector: Connector, kind: CopyKind, raw: bytes, message_id: str, *, search: bool
) -> str | None:
    folder = await ensure_folder(connector, kind)
    since = appended_since(raw)
    found = await find_copy(connector, folder, message_id, since=since) if search else None
    if found is not None:
        log.info("%s copy of <%s> already in %r: not stored again", kind.role, bare(message_id), folder)
        return found.encode()
    made = await connector.import_message(folder, raw, flags=kind.flags)
    if made is None:  # no APPENDUID (no UIDPLUS): look the copy up
        made = await find_copy(connector, folder, message_id, since=since)
    return made.encode() if made is not None else None


def appended_since(raw: bytes, *, now: datetime | None = None) -> datetime | None:
    """The earliest time an earlier copy of ``raw`` can have been APPENDed, so that the search
    reads the headers of recent mail only, not of a Sent folder's years: a copy is stored after
    the message was written (its Date), and its INTERNALDATE is when it was APPENDed. A Date in
    the future counts as now; two days of margin cover clocks and a worker that was down. None
    (the whole folder) without a usable Date."""
    head = re.split(rb"\r?\n\r?\n", raw, maxsplit=1)[0]
    match = _DATE.search(head)
    if match is None:
        return None
    try:
        written = parsedate_to_datetime(re.sub(r"\r?\n[ \t]", " ", match.group(1).decode("ascii", "replace")))
    except (TypeError, ValueError):
        return None
    if written.tzinfo is None:
        return None
    return min(written, now or datetime.now(UTC)) - SINCE_MARGIN


async def ensure_folder(connector: Connector, kind: CopyKind) -> str:
    """The path of the folder with ``kind.role``, created (as ``kind.name``) when missing.
    Remembered per connection: listing every folder (with counts) for each copy would cost more
    than the copy; a folder that went away meanwhile is looked up again (:func:`store_copy`)."""
    path = await known_folder(connector, kind.role)
    if path is not None:
        return path
    try:
        path = (await connector.create_folder(kind.name)).path
        log.info("created the %s folder %r", kind.role, path)
    except FolderExistsError:  # another client (or worker) created it meanwhile
        path = await folder_with_role(connector, kind.role)
        if path is None:
            raise
    _known.setdefault(connector, {})[kind.role] = path
    return path


async def known_folder(connector: Connector, role: Role, *, fresh: bool = False) -> str | None:
    """The path of the folder with ``role`` (None: there is none), remembered per connection;
    ``fresh``: looked up again (the folder may have been renamed or deleted meanwhile)."""
    known = _known.setdefault(connector, {})
    if fresh or role not in known:
        known.pop(role, None)
        path = await folder_with_role(connector, role)
        if path is None:
            return None
        known[role] = path
    return known[role]


async def folder_with_role(connector: Connector, role: Role) -> str | None:
    """The selectable folder with ``role``; where several have it, one the server marks wins
    over one that merely has the well-known name."""
    return pick_folder(await connector.list_folders(), role)


def pick_folder(folders: Sequence[Folder], role: Role) -> str | None:
    """The path :func:`folder_with_role` chooses among ``folders``."""
    found = [f for f in folders if f.role is role and f.selectable]
    if not found:
        return None
    marked = [f for f in found if not _named_for(f, role)]
    return (marked or found)[0].path


def _named_for(folder: Folder, role: Role) -> bool:
    """Does the folder's own name give it ``role`` (rather than a SPECIAL-USE mark)?"""
    return role_of(folder.name, delimiter=None) is role


async def find_copy(
    connector: Connector, folder: str, message_id: str, *, since: datetime | None = None
) -> MessageRef | None:
    """The message of ``folder`` whose Message-ID is ``message_id`` (with or without angle
    brackets), received at or after ``since``, if any: searched on the server where the source
    can search, else among the newest :data:`SCAN_LIMIT`. The server's HEADER search matches
    substrings, so every hit is compared exactly."""
    wanted = bare(message_id)
    if not wanted:
        return None
    if connector.supports(Feature.SEARCH):
        page = await connector.search_messages(
            SearchQuery(folder=folder, message_id=f"<{wanted}>", since=since, limit=SCAN_LIMIT)
        )
    else:
        page = await connector.list_messages(ListQuery(folder=folder, limit=SCAN_LIMIT))
    return _matching(page.items, wanted)


def _matching(items: Sequence[MessageSummary], wanted: str) -> MessageRef | None:
    for item in items:
        if bare(item.envelope.message_id or "") == wanted:
            return item.ref
    return None


def bare(message_id: str) -> str:
    """A Message-ID without white space and angle brackets (as payloads carry it)."""
    return message_id.strip().removeprefix("<").removesuffix(">").strip()
