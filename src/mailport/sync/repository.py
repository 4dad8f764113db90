"""SQL of ingestion: cursors, message rows, pending actions, hourly statistics, leases.

Functions take an open connection so that the watcher can put a whole fetch chunk (messages,
events, actions, statistics and the advanced cursor) into ONE transaction.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Update, and_, bindparam, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from mailport import leases
from mailport.connectors.base import Cursor, MessageRef
from mailport.events import acceptance
from mailport.leases import Lease, held_params, still_held_by_params
from mailport.store import many_rows
from mailport.store.database import dialect_insert as _insert
from mailport.store.tables import (
    change_tokens,
    events,
    mailbox_cursors,
    mailbox_stats,
    messages,
    pending_actions,
    watcher_leases,
)

# ------------------------------------------------------------------------------- cursors


async def get_cursor(conn: AsyncConnection, mailbox_id: str, scope: str) -> Cursor | None:
    row = (
        await conn.execute(
            select(mailbox_cursors).where(
                mailbox_cursors.c.mailbox_id == mailbox_id, mailbox_cursors.c.scope == scope
            )
        )
    ).first()
    return None if row is None else Cursor(scope=row.scope, epoch=row.epoch, position=row.position)


async def cursor_saved_before(conn: AsyncConnection, mailbox_id: str, scope: str, at: datetime) -> bool:
    """Was the scope's cursor last saved before ``at``? (A folder removed from a mailbox's
    watched folders and added again at ``at``: its old cursor would deliver everything between.)"""
    row = (
        await conn.execute(
            select(mailbox_cursors.c.updated_at).where(
                mailbox_cursors.c.mailbox_id == mailbox_id, mailbox_cursors.c.scope == scope
            )
        )
    ).first()
    return row is not None and row.updated_at < at


async def save_cursor(conn: AsyncConnection, mailbox_id: str, cursor: Cursor, *, now: datetime) -> None:
    values = {"epoch": cursor.epoch, "position": cursor.position, "updated_at": now}
    statement = _insert(conn, mailbox_cursors).values(mailbox_id=mailbox_id, scope=cursor.scope, **values)
    await conn.execute(statement.on_conflict_do_update(index_elements=["mailbox_id", "scope"], set_=values))


async def advance_cursor(
    conn: AsyncConnection, mailbox_id: str, cursor: Cursor, *, now: datetime, held: Lease
) -> bool:
    """Move the scope's existing cursor to ``cursor`` if ``held`` is still this tenure (the
    watcher's lease, :func:`mailport.leases.still_held`: its fence in this statement); False
    when nothing changed (no cursor yet, or the lease moved on): then :func:`save_cursor` and
    the fence."""
    values = {
        "c_mailbox_id": mailbox_id,
        "c_scope": cursor.scope,
        "c_epoch": cursor.epoch,
        "c_position": cursor.position,
        "c_now": now,
    }
    moved = await conn.execute(_advance_statement(), values | held_params(held))
    return bool(moved.rowcount)


@functools.cache
def _advance_statement() -> Update:
    """:func:`advance_cursor`'s ``UPDATE``, built once with bind parameters: built per chunk it
    cost more CPU than the statement's execution (issue 21)."""
    c = mailbox_cursors
    return (
        update(c)
        .where(
            c.c.mailbox_id == bindparam("c_mailbox_id", type_=c.c.mailbox_id.type),
            c.c.scope == bindparam("c_scope", type_=c.c.scope.type),
            still_held_by_params(),
        )
        .values(
            epoch=bindparam("c_epoch", type_=c.c.epoch.type),
            position=bindparam("c_position", type_=c.c.position.type),
            updated_at=bindparam("c_now", type_=c.c.updated_at.type),
        )
    )


# ------------------------------------------------------------------------------ messages


_MESSAGE_COLUMNS = (
    "id",
    "tenant_id",
    "mailbox_id",
    "scope",
    "epoch",
    "item",
    "message_id_header",
    "sha256",
    "size",
    "oversized",
    "raw",
    "event_id",
    "created_at",
)
_MESSAGE_COLUMN_SET = frozenset(_MESSAGE_COLUMNS)
_row_values = operator.itemgetter(*_MESSAGE_COLUMNS)
_message_inserts: dict[str, str] = {}  # dialect name -> the INSERT's SQL, compiled once


async def insert_messages(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    """The rows, skipping those already stored.

    The driver's own executemany with tuples (on SQLite one multi-row statement,
    :mod:`mailport.store.many_rows`): a chunk's rows are the largest insert of
    ingestion, and SQLAlchemy's per-row parameter work (a dict per row, a memoryview around
    every raw source, the timestamp formatted again for every row) was ~10 % of the event
    loop's time in the backlog bench. The SQL and the timestamp's stored form still come from
    SQLAlchemy (the statement compiled for the dialect, the column type's bind processor);
    bytes and booleans are passed as they are, which both drivers store as SQLAlchemy does
    (SQLite: BLOB and 0/1; PostgreSQL: bytea and boolean). Rows with other columns than
    :data:`_MESSAGE_COLUMNS` (a test's, a migration's) go through SQLAlchemy as before."""
    if not rows:
        return
    if any(row.keys() != _MESSAGE_COLUMN_SET for row in rows):  # other columns: SQLAlchemy's way
        await conn.execute(_message_insert(conn), list(rows))
        return
    dialect = conn.dialect
    sql = _message_inserts.get(dialect.name)
    if sql is None:  # (the statement is built only for this: building it cost ~0.1 ms a chunk)
        sql = _message_inserts[dialect.name] = many_rows.positional_sql(
            _message_insert(conn), dialect, _MESSAGE_COLUMNS
        )
    stamp = many_rows.Stamps(messages.c.created_at, dialect)  # the rows of a chunk share theirs
    values = [(*_row_values(row)[:-1], stamp(row["created_at"])) for row in rows]
    if dialect.name == "sqlite":  # one statement, not one step per row (mailport.store.many_rows)
        await many_rows.insert_rows(conn, sql, values)
    else:  # asyncpg pipelines an executemany in one round trip
        await conn.exec_driver_sql(sql, values)


def _message_insert(conn: AsyncConnection) -> Any:
    unique = ["mailbox_id", "scope", "epoch", "item"]
    return _insert(conn, messages).on_conflict_do_nothing(index_elements=unique)


async def clear_message_events(conn: AsyncConnection, message_ids: Sequence[str]) -> None:
    """The rows no longer name an event (theirs was not appended: it existed already)."""
    if message_ids:
        await conn.execute(update(messages).where(messages.c.id.in_(list(message_ids))).values(event_id=None))


async def has_other_epochs(conn: AsyncConnection, mailbox_id: str, scope: str, epoch: str) -> bool:
    """Were messages of this scope ingested under another epoch (a reset happened)?"""
    row = (
        await conn.execute(
            select(messages.c.id)
            .where(
                messages.c.mailbox_id == mailbox_id,
                messages.c.scope == scope,
                messages.c.epoch != epoch,
            )
            .limit(1)
        )
    ).first()
    return row is not None


@dataclass(frozen=True)
class Known:
    sha256: frozenset[str]
    message_ids: frozenset[str]

    def matches(self, sha256: str, message_id: str | None) -> bool:
        return sha256 in self.sha256 or (message_id is not None and message_id in self.message_ids)


async def known_from_other_epochs(
    conn: AsyncConnection,
    mailbox_id: str,
    scope: str,
    epoch: str,
    *,
    sha256: Iterable[str],
    message_ids: Iterable[str],
) -> Known:
    """Which of these contents / Message-IDs were delivered before under another epoch."""
    hashes, mids = list(set(sha256)), list(set(message_ids))
    base = and_(
        messages.c.mailbox_id == mailbox_id,
        messages.c.scope == scope,
        messages.c.epoch != epoch,
    )
    found_hashes: set[str] = set()
    found_mids: set[str] = set()
    if hashes:
        result = await conn.execute(select(messages.c.sha256).where(base, messages.c.sha256.in_(hashes)))
        found_hashes = {row.sha256 for row in result}
    if mids:
        result = await conn.execute(
            select(messages.c.message_id_header).where(base, messages.c.message_id_header.in_(mids))
        )
        found_mids = {row.message_id_header for row in result}
    return Known(frozenset(found_hashes), frozenset(found_mids))


async def get_message(conn: AsyncConnection, tenant_id: str, mailbox_id: str, message_id: str) -> Any:
    return (
        await conn.execute(
            select(messages).where(
                messages.c.id == message_id,
                messages.c.mailbox_id == mailbox_id,
                messages.c.tenant_id == tenant_id,
            )
        )
    ).first()


# ----------------------------------------------------------------------- pending actions


async def insert_actions(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await conn.execute(pending_actions.insert(), list(rows))


async def delete_actions(conn: AsyncConnection, event_ids: Sequence[str]) -> None:
    """The actions inserted for events that turned out not to be appended (they existed)."""
    if event_ids:
        await conn.execute(delete(pending_actions).where(pending_actions.c.event_id.in_(list(event_ids))))


@dataclass(frozen=True)
class PendingAction:
    id: int
    event_id: str
    scope: str
    epoch: str
    item: str
    action: str
    attempts: int = 0
    message_id: str | None = None

    @property
    def ref(self) -> MessageRef:
        return MessageRef(self.scope, self.epoch, self.item)


def _due(now: datetime) -> Any:
    """A pending action that may run now (never tried, or its retry time has come)."""
    return (pending_actions.c.next_attempt_at.is_(None)) | (pending_actions.c.next_attempt_at <= now)


async def accepted_actions(
    conn: AsyncConnection, mailbox_id: str, *, now: datetime, limit: int = 500
) -> list[PendingAction]:
    """Due pending actions of ``mailbox_id`` whose event has been accepted, oldest first."""
    result = await conn.execute(
        select(pending_actions, messages.c.id.label("message_id"))
        .join(events, events.c.id == pending_actions.c.event_id)
        .outerjoin(messages, messages.c.event_id == pending_actions.c.event_id)
        .where(
            pending_actions.c.mailbox_id == mailbox_id,
            pending_actions.c.state == "pending",
            events.c.accepted_at.is_not(None),
            _due(now),
        )
        .order_by(pending_actions.c.id)
        .limit(limit)
    )
    return [
        PendingAction(
            int(r.id),
            r.event_id,
            r.scope,
            r.epoch,
            r.item,
            r.action,
            int(r.attempts),
            r.message_id,
        )
        for r in result
    ]


async def mailboxes_with_accepted_actions(conn: AsyncConnection, *, now: datetime) -> set[str]:
    result = await conn.execute(
        select(pending_actions.c.mailbox_id)
        .join(events, events.c.id == pending_actions.c.event_id)
        .where(pending_actions.c.state == "pending", events.c.accepted_at.is_not(None), _due(now))
        .distinct()
    )
    return {row.mailbox_id for row in result}


async def finish_actions(
    conn: AsyncConnection,
    ids: Sequence[int],
    *,
    state: str,
    now: datetime,
    error: str | None = None,
    action: str | None = None,
) -> None:
    """Close actions (``done``, ``failed``, ``cancelled``); ``action`` records what really ran."""
    if ids:
        values: dict[str, Any] = {
            "state": state,
            "updated_at": now,
            "last_error": error,
            "next_attempt_at": None,
            "attempts": pending_actions.c.attempts + 1,
        }
        if action is not None:
            values["action"] = action
        await conn.execute(
            update(pending_actions).where(pending_actions.c.id.in_(list(ids))).values(**values)
        )


async def cancel_pending_actions(conn: AsyncConnection, mailbox_id: str, *, now: datetime, why: str) -> int:
    """Close every pending action of ``mailbox_id`` as ``cancelled`` (its setting became ``none``)."""
    result = await conn.execute(
        update(pending_actions)
        .where(pending_actions.c.mailbox_id == mailbox_id, pending_actions.c.state == "pending")
        .values(state="cancelled", updated_at=now, last_error=why, next_attempt_at=None)
    )
    return int(result.rowcount or 0)


async def retry_actions_later(
    conn: AsyncConnection, ids: Sequence[int], *, at: datetime, now: datetime, error: str
) -> None:
    """Count a failed attempt and keep the actions pending until ``at``."""
    if ids:
        await conn.execute(
            update(pending_actions)
            .where(pending_actions.c.id.in_(list(ids)))
            .values(
                updated_at=now,
                last_error=error,
                next_attempt_at=at,
                attempts=pending_actions.c.attempts + 1,
            )
        )


async def count_pending_actions(conn: AsyncConnection, mailbox_id: str) -> int:
    result = await conn.execute(
        select(func.count())
        .select_from(pending_actions)
        .where(pending_actions.c.mailbox_id == mailbox_id, pending_actions.c.state == "pending")
    )
    return int(result.scalar_one())


# ---------------------------------------------------------------------------- statistics


def hour_of(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


async def add_stats(
    conn: AsyncConnection,
    mailbox_id: str,
    *,
    at: datetime,
    processed: int = 0,
    failed: int = 0,
    errors: int = 0,
    processing_ms: int = 0,
) -> None:
    values = {
        "s_mailbox": mailbox_id,
        "s_hour": hour_of(at),
        "s_processed": processed,
        "s_failed": failed,
        "s_errors": errors,
        "s_ms": processing_ms,
    }
    await conn.execute(_stats_upsert(conn), values)


_stats_upserts: dict[str, Any] = {}  # dialect name -> add_stats's statement


def _stats_upsert(conn: AsyncConnection) -> Any:
    """:func:`add_stats`'s upsert, built once per dialect: it runs in every chunk's transaction,
    and building it (with its cache key) took ~0.3 ms each time, on the way to the webhook."""
    dialect = conn.dialect.name
    statement = _stats_upserts.get(dialect)
    if statement is not None:
        return statement
    insert = _insert(conn, mailbox_stats).values(
        mailbox_id=bindparam("s_mailbox"),
        hour=bindparam("s_hour"),
        processed=bindparam("s_processed"),
        failed=bindparam("s_failed"),
        errors=bindparam("s_errors"),
        processing_ms=bindparam("s_ms"),
    )
    excluded = insert.excluded
    statement = _stats_upserts[dialect] = insert.on_conflict_do_update(
        index_elements=["mailbox_id", "hour"],
        set_={
            "processed": mailbox_stats.c.processed + excluded.processed,
            "failed": mailbox_stats.c.failed + excluded.failed,
            "errors": mailbox_stats.c.errors + excluded.errors,
            "processing_ms": mailbox_stats.c.processing_ms + excluded.processing_ms,
        },
    )
    return statement


@dataclass(frozen=True)
class Totals:
    processed: int
    failed: int
    errors: int
    processing_ms: int

    @property
    def avg_processing_ms(self) -> float | None:
        return round(self.processing_ms / self.processed, 2) if self.processed else None


async def totals_since(
    conn: AsyncConnection, mailbox_ids: Sequence[str], since: datetime
) -> dict[str, Totals]:
    if not mailbox_ids:
        return {}
    result = await conn.execute(
        select(
            mailbox_stats.c.mailbox_id,
            func.coalesce(func.sum(mailbox_stats.c.processed), 0).label("processed"),
            func.coalesce(func.sum(mailbox_stats.c.failed), 0).label("failed"),
            func.coalesce(func.sum(mailbox_stats.c.errors), 0).label("errors"),
            func.coalesce(func.sum(mailbox_stats.c.processing_ms), 0).label("processing_ms"),
        )
        .where(mailbox_stats.c.mailbox_id.in_(list(mailbox_ids)), mailbox_stats.c.hour >= hour_of(since))
        .group_by(mailbox_stats.c.mailbox_id)
    )
    return {
        r.mailbox_id: Totals(int(r.processed), int(r.failed), int(r.errors), int(r.processing_ms))
        for r in result
    }


async def unaccepted_counts(conn: AsyncConnection, mailbox_ids: Sequence[str]) -> dict[str, int]:
    """Events a consumer still owes, per mailbox: the delivery queue's size (events no consumer
    owes are not waiting for anyone; see :mod:`mailport.events.acceptance`)."""
    counts = await acceptance.waiting_counts(conn, mailbox_ids)
    return {mailbox_id: waiting.owed for mailbox_id, waiting in counts.items() if waiting.owed}


# -------------------------------------------------------------------------------- leases
# The right to watch a mailbox is the lease ``watcher:<mailbox id>`` (mailport.leases); the
# watcher's live state, written only by the lease's holder, is the mailbox's watcher_leases row.

WATCHER_LEASES = f"{leases.WATCHER}:"


async def acquire_lease(
    conn: AsyncConnection, mailbox_id: str, owner: str, *, now: datetime, ttl: timedelta
) -> leases.Lease | None:
    """Take (or keep) the right to watch ``mailbox_id``; None when a live lease is another's."""
    lease = await leases.acquire(conn, WATCHER_LEASES + mailbox_id, owner, now=now, until=now + ttl)
    if lease is not None:
        await conn.execute(
            _insert(conn, watcher_leases)
            .values(mailbox_id=mailbox_id, state="starting", updated_at=now)
            .on_conflict_do_nothing(index_elements=["mailbox_id"])
        )
    return lease


async def renew_leases(conn: AsyncConnection, owner: str, *, now: datetime, ttl: timedelta) -> set[str]:
    """Extend every lease of ``owner``; returns the mailboxes it still holds."""
    held = await leases.renew_all(conn, owner, prefix=WATCHER_LEASES, until=now + ttl)
    return {name.removeprefix(WATCHER_LEASES) for name in held}


async def release_leases(
    conn: AsyncConnection, owner: str, mailbox_ids: Sequence[str] | None = None
) -> set[str]:
    """Give up the leases of ``owner`` (of ``mailbox_ids`` only, when given) and forget the
    watchers' state; returns the mailboxes whose leases it still held."""
    if mailbox_ids is None:
        names = await leases.release_all(conn, owner, prefix=WATCHER_LEASES)
    else:
        names = set()
        for name in (WATCHER_LEASES + m for m in mailbox_ids):
            if await leases.release(conn, name, owner):
                names.add(name)
    if names:
        released = [name.removeprefix(WATCHER_LEASES) for name in names]
        await conn.execute(delete(watcher_leases).where(watcher_leases.c.mailbox_id.in_(released)))
    return {name.removeprefix(WATCHER_LEASES) for name in names}


async def set_watcher_state(
    conn: AsyncConnection, mailbox_id: str, owner: str, *, state: str, now: datetime, connected: bool = False
) -> None:
    """Record the watcher's state, when ``owner`` still holds the mailbox's lease."""
    values: dict[str, Any] = {"state": state, "updated_at": now}
    if connected:
        values["last_connected_at"] = now
    await conn.execute(
        update(watcher_leases)
        .where(
            watcher_leases.c.mailbox_id == mailbox_id,
            leases.is_held_by(WATCHER_LEASES + mailbox_id, owner),
        )
        .values(**values)
    )


async def leases_of(conn: AsyncConnection, mailbox_ids: Sequence[str], *, now: datetime) -> dict[str, Any]:
    """The watchers' state rows (state, last connection) of the mailboxes whose lease is live."""
    live = await leases.current(conn, [WATCHER_LEASES + m for m in mailbox_ids], now=now)
    if not live:
        return {}
    watched = [name.removeprefix(WATCHER_LEASES) for name in live]
    result = await conn.execute(select(watcher_leases).where(watcher_leases.c.mailbox_id.in_(watched)))
    return {row.mailbox_id: row for row in result}


# ------------------------------------------------------------------------- change tokens
# How far changes made on the server were reported, per stream (``scope:<scope>``, ``folders``).


@dataclass(frozen=True)
class ChangeToken:
    token: str
    epoch: str | None


async def get_change_token(conn: AsyncConnection, mailbox_id: str, stream: str) -> ChangeToken | None:
    row = (
        await conn.execute(
            select(change_tokens.c.token, change_tokens.c.epoch).where(
                change_tokens.c.mailbox_id == mailbox_id, change_tokens.c.stream == stream
            )
        )
    ).first()
    return None if row is None else ChangeToken(row.token, row.epoch)


async def save_change_token(
    conn: AsyncConnection, mailbox_id: str, stream: str, token: str, *, epoch: str | None, now: datetime
) -> None:
    values = {"token": token, "epoch": epoch, "updated_at": now}
    statement = _insert(conn, change_tokens).values(mailbox_id=mailbox_id, stream=stream, **values)
    await conn.execute(statement.on_conflict_do_update(index_elements=["mailbox_id", "stream"], set_=values))


async def message_ids(
    conn: AsyncConnection, mailbox_id: str, scope: str, epoch: str, items: Sequence[str]
) -> dict[str, str]:
    """The ``msg_…`` ids of the ingested messages among ``items`` (item -> id)."""
    found: dict[str, str] = {}
    wanted = sorted(set(items))
    for start in range(0, len(wanted), 1000):
        result = await conn.execute(
            select(messages.c.item, messages.c.id).where(
                messages.c.mailbox_id == mailbox_id,
                messages.c.scope == scope,
                messages.c.epoch == epoch,
                messages.c.item.in_(wanted[start : start + 1000]),
            )
        )
        found.update({row.item: row.id for row in result})
    return found
