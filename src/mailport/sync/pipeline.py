"""The ingestion pipeline for one fetch chunk: size check, parse, then ONE transaction with the
message rows (raw source), the ``message.received`` events, the after-processing actions, the
statistics and the advanced cursor.

Size first: a connector applies the size limit while fetching (IMAP skips literals over
``MAILPORT_MAX_MESSAGE_BYTES`` on the wire and fetches their header block instead); such a
message is delivered from its headers only
(``truncated: true``, ``oversized: true``). Parsing uses :func:`mailport.messages.parse_message`
(our own byte-level MIME walker, ~6x faster than ``email`` with ``policy.default``; see
docs/messages.md), which never raises: a broken message is delivered with ``parse_error``.
Messages over 1 MiB are parsed in a worker thread so one big message never stalls the event
loop (and so the other mailboxes' watchers).

Bounces and complaints: each message is also looked at by
:func:`mailport.messages.bounces.worth_classifying` over the header fields the parser has
already split (~3 % of the parse for ordinary mail, ``bench/bounce_check.py``); only a
``multipart/report`` or mail from a mail system is parsed again, in a worker thread
(:func:`parse_chunk`). A report whose ``message.received`` is appended gets its
``message.bounced`` / ``message.complaint`` right after it, in the same transaction, linked to
the send it reports (:mod:`mailport.sending.bounce_links`); see
:mod:`mailport.sending.bounce_events`. Oversized messages (headers only) are not classified.

The raw source is kept in the ``messages`` table rather than re-fetched on demand:
after-processing may move or delete the message on the server, an epoch change (IMAP:
UIDVALIDITY) renumbers it, and the server may be unreachable exactly when the application asks.

Where the cursor goes is the connector's business: the chunk's :class:`Batch` carries the
cursor after it, and it is saved as it is.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from mailport.connectors.base import Batch, Cursor, MessageRef, RemoteMessage
from mailport.events import (
    Event,
    EventType,
    NewEvent,
    PreparedEvents,
    append_many,
    append_prepared,
    message_key,
    prepare,
)
from mailport.leases import Lease
from mailport.mailboxes.models import Mailbox
from mailport.messages import Message, parse_headers_only, parse_message
from mailport.messages.bounces import Bounce, Classification, Complaint, classify, worth_classifying
from mailport.messages.threading import thread_root
from mailport.metrics import MESSAGES_FAILED, MESSAGES_OVERSIZED, MESSAGES_PROCESSED
from mailport.sending import bounce_links
from mailport.sending.bounce_events import report_event
from mailport.store import threads
from mailport.store.ids import new_id
from mailport.sync import repository as repo

THREAD_PARSE_BYTES = 1024 * 1024
PARSE_SLICE = 16  # messages parsed between two yields to the event loop (~1 ms of CPU)


@dataclass(frozen=True)
class Parsed:
    remote: RemoteMessage
    message: Message
    sha256: str
    report: Classification = None  # a bounce, complaint or delivery notice (never when oversized)


def _parse(mailbox_id: str, scope: str, remote: RemoteMessage) -> Parsed:
    if remote.oversized or remote.raw is None:
        message = parse_headers_only(
            remote.headers or b"", remote.size, mailbox_id=mailbox_id, folder=scope, flags=remote.flags
        )
    else:
        message = parse_message(
            remote.raw, mailbox_id=mailbox_id, folder=scope, flags=remote.flags, size=remote.size
        )
    return Parsed(remote, message, message.sha256)


def _report_source(parsed: Parsed) -> bytes | None:
    """The raw bytes to classify when the message may be a report (else None: ordinary mail,
    or an oversized message, known from its headers only)."""
    raw = parsed.remote.raw
    if raw is None or parsed.remote.oversized or not worth_classifying(parsed.message.headers):
        return None
    return raw


def _parse_and_classify(mailbox_id: str, scope: str, remote: RemoteMessage) -> Parsed:
    parsed = _parse(mailbox_id, scope, remote)
    raw = _report_source(parsed)
    return parsed if raw is None else replace(parsed, report=classify(raw))


async def parse_chunk(mailbox_id: str, scope: str, chunk: Sequence[RemoteMessage]) -> list[Parsed]:
    """Parse a chunk: small messages on the event loop, big ones in a worker thread. A possible
    report is always classified in a thread: the stdlib parse it needs takes ~0.5 ms for a small
    bounce and ~0.1 s for one carrying a 650 KB original, too long to hold the loop (every
    mailbox's watcher) for; ordinary mail never gets there. The loop is yielded to every
    :data:`PARSE_SLICE` messages."""
    out: list[Parsed] = []
    for index, remote in enumerate(chunk):
        if index and not index % PARSE_SLICE:
            # Let the other watchers' statements, commits and reads through: a 200-message
            # chunk is ~15 ms of CPU, and a watcher holding a write lock (SQLite's, or
            # PostgreSQL's event lock) would otherwise wait that long for its next statement.
            await asyncio.sleep(0)
        if len(remote.raw or b"") < THREAD_PARSE_BYTES:
            parsed = _parse(mailbox_id, scope, remote)
            raw = _report_source(parsed)
            if raw is not None:
                parsed = replace(parsed, report=await asyncio.to_thread(classify, raw))
            out.append(parsed)
        else:
            out.append(await asyncio.to_thread(_parse_and_classify, mailbox_id, scope, remote))
    return out


def content_hash(remote: RemoteMessage) -> str:
    """SHA-256 as the parser computes it (of the raw source; of the header block when oversized)."""
    data = remote.raw if remote.raw is not None and not remote.oversized else (remote.headers or b"")
    return hashlib.sha256(data).hexdigest()


def _root(message: Message) -> str:
    """The root Message-ID its ``thread_key`` stands for (recorded so the key can be looked up)."""
    return thread_root(
        message_id=message.message_id,
        in_reply_to=(message.in_reply_to,) if message.in_reply_to else (),
        references=message.references,
        content_sha256=message.sha256,
    )


@dataclass
class ChunkResult:
    events: list[Event]
    delivered: int
    matched: int  # already delivered under an old epoch: recorded, not re-delivered
    failed: int
    cursor: Cursor
    reports: list[Event] = field(default_factory=list)  # message.bounced / message.complaint
    fenced: bool = False  # the cursor's UPDATE was the fence (``fence_in_cursor``)


@dataclass
class ChunkRows:
    """A chunk's message rows, events (ids given, payloads serialized) and thread roots: CPU
    work only, built by :func:`chunk_rows` before the chunk's transaction where possible. On
    SQLite the transactions of a process take turns (:mod:`mailport.store.database`), and
    building these rows inside the turn (~0.1 ms a message) held every other writer -- the
    other watchers, the webhook fan-out and its results -- waiting for it (issue 21)."""

    rows: list[dict[str, Any]]  # every message of the chunk
    message_rows: list[dict[str, Any]]  # the row of each new event's message
    new_events: list[NewEvent]
    reports: list[Parsed]  # the parsed message of each new event, for its report
    prepared: PreparedEvents
    roots: list[str]
    failed: int
    matched: int  # already delivered under an old epoch: recorded, not re-delivered


def chunk_rows(
    mailbox: Mailbox,
    batch: Batch,
    parsed: Sequence[Parsed],
    *,
    now: datetime,
    known: repo.Known | None = None,
) -> ChunkRows:
    """Build a chunk's rows (no I/O). ``known``: what earlier epochs already delivered (a
    message matching it is recorded without an event); None: nothing to check."""
    scope, epoch = batch.cursor.scope, batch.cursor.epoch
    rows: list[dict[str, Any]] = []
    new_events: list[NewEvent] = []
    message_rows: list[dict[str, Any]] = []
    failed = matched = 0
    reports: list[Parsed] = []
    connector = mailbox.connector
    for p in parsed:
        msg_id = new_id("msg")
        oversized = p.remote.oversized or p.remote.raw is None
        row: dict[str, Any] = {
            "id": msg_id,
            "tenant_id": mailbox.tenant_id,
            "mailbox_id": mailbox.id,
            "scope": scope,
            "epoch": epoch,
            "item": p.remote.item,
            "message_id_header": (p.message.message_id or None) and p.message.message_id[:998],
            "sha256": p.sha256,
            "size": p.remote.size,
            "oversized": oversized,
            "raw": None if oversized else p.remote.raw,
            "event_id": None,
            "created_at": now,
        }
        rows.append(row)
        if known is not None and known.matches(p.sha256, p.message.message_id):
            matched += 1
            continue
        payload = p.message.to_dict()
        payload["id"] = msg_id
        payload["connector"] = connector
        payload["ref"] = MessageRef(scope, epoch, p.remote.item).encode()
        payload["source"] = p.remote.source
        payload["oversized"] = oversized
        if p.message.parse_error:
            failed += 1
        new_events.append(
            NewEvent(
                mailbox.tenant_id,
                mailbox.id,
                EventType.MESSAGE_RECEIVED,
                payload,
                message_key(mailbox.id, epoch, p.remote.item, scope),
            )
        )
        message_rows.append(row)
        reports.append(p)
    prepared = prepare(new_events, now=now)
    for row, event_id in zip(message_rows, prepared.ids, strict=True):
        row["event_id"] = event_id
    roots = [_root(p.message) for p in parsed]
    return ChunkRows(rows, message_rows, new_events, reports, prepared, roots, failed, matched)


async def store_chunk(
    conn: AsyncConnection,
    mailbox: Mailbox,
    batch: Batch,
    parsed: Sequence[Parsed],
    *,
    now: datetime,
    check_known: bool,
    started: float,
    actions: bool = True,
    fence_in_cursor: Lease | None = None,
    built: ChunkRows | None = None,
) -> ChunkResult:
    """Everything of one batch in the caller's transaction; the cursor becomes ``batch.cursor``.
    ``actions``: whether the mailbox's after-processing applies to this scope (only to its first
    watched folder: mail in Sent is never marked, moved or deleted because INBOX's is).
    ``fence_in_cursor`` (SQLite): the watcher's lease, whose condition
    (:func:`mailport.leases.still_held`) is put in the cursor's ``UPDATE``;
    :attr:`ChunkResult.fenced` says whether that statement was the fence (one round trip
    fewer per chunk), else the caller fences as usual. ``built``: the chunk's rows, built
    beforehand by :func:`chunk_rows` at ``now`` (only without ``check_known``, whose lookup
    needs the transaction); None: built here.

    Order: rows and payloads are built (CPU only) before the first statement; then the
    message rows, thread roots, cursor, the mailbox's statistics and after-processing actions;
    the events last. PostgreSQL's event lock, which every event-writing transaction of the
    fleet waits for, is then held for their INSERT, the caller's fence and the commit
    (:func:`mailport.events.append_prepared`): each statement after it waited for this
    process's busy event loop to send it, and ten watchers spent ~3.5 s waiting for the lock
    per second of a backlog (issue 21). The statistics count the chunk's events as appended;
    those that existed already (a message re-ingested after a crash, rare) are taken back after
    the INSERT, and their actions deleted. A message row names its event's id before the event
    is written; one whose event turns out to exist already is set back to no event."""
    scope, epoch = batch.cursor.scope, batch.cursor.epoch
    if built is None:
        known: repo.Known | None = None
        if check_known and parsed:
            known = await repo.known_from_other_epochs(
                conn,
                mailbox.id,
                scope,
                epoch,
                sha256=[p.sha256 for p in parsed],
                message_ids=[p.message.message_id for p in parsed if p.message.message_id],
            )
        built = chunk_rows(mailbox, batch, parsed, now=now, known=known)
    elif check_known:
        raise ValueError("rows built before the transaction cannot be checked against earlier epochs")
    rows, message_rows, new_events, reports = built.rows, built.message_rows, built.new_events, built.reports
    prepared, failed, matched = built.prepared, built.failed, built.matched
    await repo.insert_messages(conn, rows)
    await threads.remember(conn, mailbox.id, built.roots, now=now)
    fenced = fence_in_cursor is not None and await repo.advance_cursor(
        conn, mailbox.id, batch.cursor, now=now, held=fence_in_cursor
    )
    if not fenced:
        await repo.save_cursor(conn, mailbox.id, batch.cursor, now=now)
    expected = len(prepared.rows)
    if parsed:
        elapsed_ms = int((time.perf_counter() - started) * 1000)
        await repo.add_stats(
            conn, mailbox.id, at=now, processed=expected, failed=failed, processing_ms=elapsed_ms
        )
    action = mailbox.settings.after_processing
    acting = bool(actions and action and action != "none")
    if acting and message_rows:  # the events' ids are known before they are written
        await repo.insert_actions(
            conn,
            [
                {
                    "event_id": row["event_id"],
                    "mailbox_id": mailbox.id,
                    "scope": scope,
                    "epoch": epoch,
                    "item": row["item"],
                    "action": action,
                    "state": "pending",
                    "attempts": 0,
                    "created_at": now,
                    "updated_at": now,
                }
                for row in message_rows
            ],
        )
    # ---- the events, and what needs to know which were appended
    appended = await append_prepared(conn, prepared)
    appended_ids = {e.id for e in appended}
    fresh_reports: list[tuple[NewEvent, Parsed, Bounce | Complaint]] = []
    orphaned: list[str] = []  # message rows naming an event that was not appended
    orphaned_events: list[str] = []  # and those events' ids
    for new, row, p in zip(new_events, message_rows, reports, strict=True):
        if row["event_id"] in appended_ids:
            if isinstance(p.report, Bounce | Complaint):
                fresh_reports.append((new, p, p.report))
        else:
            orphaned_events.append(row["event_id"])
            row["event_id"] = None
            orphaned.append(row["id"])
    if orphaned:  # rare: messages stored again after a crash; their first events stand
        await repo.clear_message_events(conn, orphaned)
        if acting:
            await repo.delete_actions(conn, orphaned_events)
    if parsed and len(appended) != expected:
        await repo.add_stats(conn, mailbox.id, at=now, processed=len(appended) - expected)
    report_events = await _append_reports(conn, mailbox, scope, epoch, fresh_reports, now=now)
    MESSAGES_PROCESSED.inc(len(appended))
    if failed:
        MESSAGES_FAILED.inc(failed)
    oversized_count = sum(1 for p in parsed if p.remote.oversized)
    if oversized_count:
        MESSAGES_OVERSIZED.inc(oversized_count)
    return ChunkResult(appended, len(appended), matched, failed, batch.cursor, report_events, fenced)


async def _append_reports(
    conn: AsyncConnection,
    mailbox: Mailbox,
    scope: str,
    epoch: str,
    fresh: Sequence[tuple[NewEvent, Parsed, Bounce | Complaint]],
    *,
    now: datetime,
) -> list[Event]:
    """``message.bounced`` / ``message.complaint`` for the reports whose ``message.received`` was
    just appended (so after it in the log), linked to their sends in one lookup."""
    if not fresh:
        return []
    sends = await bounce_links.find_sends(
        conn,
        tenant_id=mailbox.tenant_id,
        mailbox_id=mailbox.id,
        message_ids=[report.original_message_id for _, _, report in fresh],
    )
    items: list[NewEvent] = []
    for received, p, report in fresh:
        original = report.original_message_id
        event = report_event(
            report,
            tenant_id=mailbox.tenant_id,
            mailbox_id=mailbox.id,
            scope=scope,
            epoch=epoch,
            item=p.remote.item,
            ref=received.payload["ref"],
            report_message_id=p.message.message_id,
            send_id=sends.get(bounce_links.message_id_key(original)) if original else None,
            received_at=now,
        )
        if event is not None:
            items.append(event)
    return await append_many(conn, items, now=now)
