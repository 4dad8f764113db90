"""The Gmail connector's ingestion without gaps: labels as scopes, the position codec, and the two
ways of finding new mail (``history.list`` from a historyId, and a bounded re-list by date).

The core's cursor for Gmail (docs/api-connectors.md): ``scope`` is the label as the mailbox's
settings name it (a system label's id, a user label's name), ``epoch`` the label's id (a label
deleted and made again is a new epoch), ``item`` the message id, and ``position`` where the next
fetch starts, encoded by :class:`Position`:

* ``<historyId>@<unix seconds>`` — follow ``history.list`` from ``historyId``; the time is when
  that id was the mailbox's newest (so that an expired id can be recovered from a known point);
* ``relist:<after>:<historyId>@<unix seconds>`` — first list every message of the label that
  arrived after ``after`` (unix seconds; 0: all), then follow history from ``historyId``.

Why the second form is a *position* rather than a step inside one call: the first cursor
(:meth:`baseline`), an epoch's restart and the recovery of an expired historyId (Gmail answers
404) are all "a fresh historyId, taken first, and everything of the label since a point in time,
listed". Saved as the cursor before any message is fetched, a crash in the middle simply lists
again after the restart; the core drops what it delivered already (idempotency keys on
``(mailbox, scope, epoch, item)``). Nothing is ever skipped: the historyId is taken before the
listing, so a message arriving meanwhile is in both, never in neither.

History is filtered by the scope's label and the record types that add mail to it
(``messageAdded``, ``labelAdded``); within a page the cursor advances to the last record whose
messages were all yielded (a record id is a valid historyId to continue from; repeating a record
is harmless), and to the page's own ``historyId`` at the end of the last page.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from mailport.connectors.base import Batch, Cursor, RemoteMessage
from mailport.connectors.folders import Role
from mailport.connectors.gmail.client import GmailClient, HistoryType
from mailport.connectors.gmail.models import GmailMessage, HistoryRecord, Label
from mailport.connectors.mail import imap_spelling
from mailport.errors import FolderNotFoundError, InvalidCursorError

log = logging.getLogger(__name__)

HISTORY_TYPES: tuple[HistoryType, ...] = ("messageAdded", "labelAdded")
CHANGE_TYPES: tuple[HistoryType, ...] = ("labelAdded", "labelRemoved", "messageDeleted")
RELIST_SLACK = timedelta(hours=1)  # before the last known point: internalDate vs history order
LIST_PAGE = 500  # messages.list maxResults (Gmail's maximum)
HISTORY_PAGE = 500  # history.list maxResults (Gmail's maximum)

# system labels and the role each stands for (the contract's mapping)
SYSTEM_ROLES = {
    "INBOX": Role.INBOX,
    "SENT": Role.SENT,
    "DRAFT": Role.DRAFTS,
    "TRASH": Role.TRASH,
    "SPAM": Role.JUNK,
    "STARRED": Role.FLAGGED,
}
_ROLE_LABEL = {role.value: label for label, role in SYSTEM_ROLES.items()}

# IMAP's spelling of the flags the labels stand for: ingested payloads carry what IMAP's do


# ------------------------------------------------------------------------------ positions


@dataclass(frozen=True, slots=True)
class Position:
    """Where a Gmail scope's next fetch starts (see the module docstring for the encoding)."""

    history_id: int
    seen_at: int = 0  # unix seconds when history_id was the newest (0: not known)
    relist_after: int | None = None  # list the label's messages after this time first

    _FORM = re.compile(r"(?:relist:(\d+):)?(\d+)(?:@(\d+))?\Z")

    def encode(self) -> str:
        text = f"{self.history_id}@{self.seen_at}" if self.seen_at else str(self.history_id)
        return text if self.relist_after is None else f"relist:{self.relist_after}:{text}"

    @classmethod
    def decode(cls, text: str) -> Position:
        match = cls._FORM.match(text)
        if match is None:
            raise InvalidCursorError(
                f"not a Gmail position: {text[:60]!r}",
                hint="The stored cursor was not written by the gmail_api connector; remove the "
                "mailbox's cursor (a new first sync starts) or report this.",
            )
        after, history, seen = match.groups()
        return cls(int(history), int(seen or 0), None if after is None else int(after))

    def relisting(self, after: datetime | None) -> Position:
        """This position with a re-list of everything after ``after`` (None: every message)."""
        return replace(self, relist_after=0 if after is None else max(0, int(after.timestamp())))

    def followed(self) -> Position:
        return replace(self, relist_after=None)

    def known_point(self) -> datetime | None:
        return datetime.fromtimestamp(self.seen_at, UTC) if self.seen_at else None


def unix(when: datetime) -> int:
    return int(when.timestamp())


# ------------------------------------------------------------------------------ labels


def label_scope(label: Label) -> str:
    """The scope (folder path) of a label: a system label's id, a user label's name."""
    return label.id if label.type == "system" else label.name


def resolve_label(labels: Sequence[Label], scope: str) -> Label:
    """The label ``scope`` names: a system label by id (any case), a user label by name or by id,
    a ``role:<role>`` by its system label; :class:`FolderNotFoundError` otherwise."""
    wanted = scope
    if scope.lower().startswith("role:"):
        label_id = _ROLE_LABEL.get(scope.split(":", 1)[1].strip().lower())
        if label_id is not None:
            wanted = label_id
    for label in labels:
        if label.type == "system" and label.id.upper() == wanted.upper():
            return label
    for label in labels:
        if label.name == wanted or label.id == wanted:
            return label
    raise FolderNotFoundError(
        f"no Gmail label {scope[:100]!r}",
        field="settings.folders",
        hint="Name a system label by its id (INBOX, SENT, …) or a user label by its name, as "
        "GET /v1/mailboxes/{id}/folders lists them.",
    )


def neutral_flags(label_ids: Iterable[str]) -> tuple[str, ...]:
    """The neutral flags (``seen``, ``flagged``, ``draft``) of a message's labels."""
    labels = set(label_ids)
    flags = [] if "UNREAD" in labels else ["seen"]
    if "STARRED" in labels:
        flags.append("flagged")
    if "DRAFT" in labels:
        flags.append("draft")
    return tuple(flags)


# ------------------------------------------------------------------------------ history records


def added(records: Iterable[HistoryRecord], label_id: str) -> list[tuple[int, str]]:
    """(record id, message id) of every message the records put into ``label_id``, in order."""
    out: list[tuple[int, str]] = []
    for record in records:
        record_id = int(record.id or 0)
        for message in record.messages_added:
            if label_id in message.label_ids:
                out.append((record_id, message.id))
        for change in record.labels_added:
            if label_id in change.label_ids:
                out.append((record_id, change.message.id))
    return out


# ------------------------------------------------------------------------------ fetching


def remote_message(message: GmailMessage, *, max_bytes: int) -> RemoteMessage:
    """A fetched Gmail message (format=raw) as the core ingests it; above ``max_bytes`` only its
    header block is kept (``oversized``), as IMAP keeps it."""
    raw = message.raw or b""
    big = len(raw) > max_bytes
    header_end = raw.find(b"\r\n\r\n")
    headers = raw[: header_end + 4] if header_end >= 0 else raw[:65536]
    return RemoteMessage(
        item=message.id,
        size=len(raw) or int(message.size_estimate or 0),
        flags=imap_spelling(neutral_flags(message.label_ids)),
        received_at=message.internal_date,
        raw=None if big else raw,
        headers=headers if big else None,
        oversized=big,
        source={"gmail": gmail_source(message)},
        labels=tuple(message.label_ids),
    )


def gmail_source(message: GmailMessage) -> dict[str, Any]:
    """``source.gmail`` of a payload (the contract's keys)."""
    history = message.history_id
    return {
        "id": message.id,
        "thread_id": message.thread_id,
        "label_ids": list(message.label_ids),
        "history_id": str(history) if history is not None else None,
    }


async def list_since(client: GmailClient, label_id: str, after: int) -> list[str]:
    """The ids of the label's messages that arrived after ``after`` (unix seconds; 0: all),
    oldest first (messages.list answers newest first)."""
    query = f"after:{after}" if after > 0 else None
    ids: list[str] = []
    token: str | None = None
    include = label_id in ("SPAM", "TRASH")
    while True:
        page = await client.list_messages(
            label_ids=[label_id], q=query, page_token=token, max_results=LIST_PAGE, include_spam_trash=include
        )
        ids.extend(m.id for m in page.ids)
        token = page.next_page_token
        if not token:
            break
    return list(reversed(list(dict.fromkeys(ids))))


async def fetch_raw(
    client: GmailClient, ids: Sequence[str], *, label_id: str | None, max_bytes: int
) -> list[RemoteMessage]:
    """The messages (format=raw, batched by the client); those gone meanwhile are left out."""
    fetched = await client.get_messages(list(ids), format="raw")
    return [remote_message(m, max_bytes=max_bytes) for m in fetched if m is not None]


async def relist(
    client: GmailClient, cursor: Cursor, position: Position, label_id: str, *, chunk: int, max_bytes: int
) -> AsyncIterator[Batch]:
    """Every message of the label after ``position.relist_after``, oldest first; the cursor
    stays on the re-list until the last chunk, which moves it to following history."""
    assert position.relist_after is not None
    ids = await list_since(client, label_id, position.relist_after)
    followed = replace(cursor, position=position.followed().encode())
    if not ids:
        yield Batch([], followed)
        return
    for start in range(0, len(ids), chunk):
        part = ids[start : start + chunk]
        last = start + chunk >= len(ids)
        messages = await fetch_raw(client, part, label_id=label_id, max_bytes=max_bytes)
        yield Batch(messages, followed if last else cursor)


async def follow(
    client: GmailClient,
    cursor: Cursor,
    position: Position,
    label_id: str,
    *,
    chunk: int,
    max_bytes: int,
    now: datetime,
) -> AsyncIterator[Batch]:
    """History after ``position.history_id`` for the label, page by page (raises the client's
    ``HistoryExpiredError`` when Gmail no longer has it: the caller recovers)."""
    start = str(position.history_id)
    token: str | None = None
    done: set[str] = set()  # a message added twice (two records) is fetched once per catch-up
    while True:
        page = await client.history(
            start,
            label_id=label_id,
            history_types=HISTORY_TYPES,
            page_token=token,
            max_results=HISTORY_PAGE,
        )
        token = page.next_page_token
        pairs = [(r, m) for r, m in added(page.records, label_id) if m not in done]
        records = [int(r.id or 0) for r in page.records]
        end = Position(int(page.history_id), unix(now)) if not token else None
        if not pairs:
            newest = end or Position(max(records, default=position.history_id), position.seen_at)
            yield Batch([], replace(cursor, position=newest.encode()))
        for begin in range(0, len(pairs), chunk):
            part = pairs[begin : begin + chunk]
            rest = pairs[begin + chunk :]
            messages = await fetch_raw(client, [m for _, m in part], label_id=label_id, max_bytes=max_bytes)
            done.update(m for _, m in part)
            if not rest and end is not None:
                reached = end
            else:
                # the last record all of whose messages are yielded (every record before the
                # first one still waiting); a record repeated after a crash is harmless
                waiting = rest[0][0] if rest else None
                covered = [r for r in records if waiting is None or r < waiting]
                reached = Position(max(covered, default=position.history_id), position.seen_at)
            yield Batch(messages, replace(cursor, position=reached.encode()))
        if not token:
            return
