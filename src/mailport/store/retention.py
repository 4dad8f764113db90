"""Retention: what the janitor deletes, in bounded batches, on SQLite and PostgreSQL.

Without it nothing is ever deleted and a busy mailbox fills the disk. :func:`purge` removes, in
this order:

1. **raw sources** older than the raw retention: ``messages.raw`` becomes NULL and
   ``raw_purged_at`` records when (the row stays: its sha256 and Message-ID recognise the message
   after a UIDVALIDITY change, see :mod:`mailport.sync.pipeline`). Only when the message's event
   was accepted before the cutoff, or it has none: the application gets every source it has not
   had the chance to fetch. Done before the events so that the acceptance time is still known.
2. **events** accepted before the cutoff, with their deliveries, attempts and finished
   (``done``/``failed``) after-processing actions. ``accepted_at`` is set only once every
   consumer owing the event has accepted it (:mod:`mailport.events.acceptance`), so this never
   takes an event a slower consumer still owes, nor an unclaimed one. Never an unaccepted event
   (the application has not got it), one with an action still pending or a delivery still
   pending (a replay), nor the newest event of all: SQLite hands out ``max(seq) + 1`` for a new
   row, so emptying the table would reuse sequence numbers and a pull cursor (``after=``) would
   skip new events. A cursor pointing past deleted rows is fine: readers ask for
   ``seq > cursor``, and a pull consumer's acknowledged cursor needs no event to exist.
3. **attempts** of finished (delivered or dead) deliveries older than the cutoff whose event
   stays (e.g. a dead letter of an event still unaccepted): the delivery row keeps its summary
   (attempts, last status, last error) and stays replayable.
4. **expired OAuth states and device flows** a day past their expiry, and **hourly statistics**
   older than 48 h (they feed 24-hour figures only, see :mod:`mailport.sync.health`).

Every batch (:data:`BATCH` rows) is its own short transaction, so SQLite's write lock is never
held for long; candidates are read first (keyset pagination, so rows that must stay are read
once per run) and the write repeats the conditions. ``dry_run`` reads the same batches and
counts what the writes would remove, changing nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    delete,
    exists,
    func,
    literal,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.sql.schema import Column, Table

from mailport.store.database import Database
from mailport.store.tables import (
    events,
    mailbox_stats,
    messages,
    oauth_device_flows,
    oauth_states,
    pending_actions,
    webhook_attempts,
    webhook_deliveries,
)

BATCH = 1000
STATS_KEPT = timedelta(hours=48)  # mailbox_stats feeds 24-hour figures only
OAUTH_GRACE = timedelta(days=1)  # expired OAuth states and device flows, a day past expiry
FINISHED_ACTIONS = ("done", "failed", "cancelled")
FINISHED_DELIVERIES = ("delivered", "dead")
MAX_DAYS = 36_500


@dataclass
class PurgeReport:
    """Rows removed per table (``raw_sources``: sources dropped from ``messages``)."""

    raw_sources: int = 0
    events: int = 0
    webhook_deliveries: int = 0
    webhook_attempts: int = 0
    pending_actions: int = 0
    oauth_states: int = 0
    oauth_device_flows: int = 0
    mailbox_stats: int = 0
    dry_run: bool = False

    def counts(self) -> dict[str, int]:
        return {name: value for name, value in asdict(self).items() if name != "dry_run"}

    @property
    def total(self) -> int:
        return sum(self.counts().values())

    def summary(self) -> str:
        """``raw_sources=3 events=12 …`` (for the log line)."""
        return " ".join(f"{name}={value}" for name, value in self.counts().items())


def cutoff(now: datetime, days: int) -> datetime | None:
    """The instant before which rows expire, or None when ``days`` is 0 (keep forever)."""
    return now - timedelta(days=days) if days > 0 else None


# ----------------------------------------------------------------------------- conditions


def _raw_expired(before: datetime) -> ColumnElement[bool]:
    m, e = messages, events
    still_needed = exists().where(
        e.c.id == m.c.event_id, or_(e.c.accepted_at.is_(None), e.c.accepted_at >= before)
    )
    return and_(m.c.raw.is_not(None), m.c.created_at < before, ~still_needed)


def _event_expired(before: datetime, newest: int) -> ColumnElement[bool]:
    # aliases: these conditions are also nested in queries on webhook_deliveries
    action, delivery = pending_actions.alias("busy_action"), webhook_deliveries.alias("busy_delivery")
    e = events
    action_pending = exists().where(action.c.event_id == e.c.id, action.c.state == "pending")
    delivery_pending = exists().where(delivery.c.event_seq == e.c.seq, delivery.c.status == "pending")
    return and_(e.c.accepted_at < before, e.c.seq < newest, ~action_pending, ~delivery_pending)


def _history_expired(before: datetime, newest: int) -> ColumnElement[bool]:
    """Finished deliveries older than ``before`` with attempts, whose event stays."""
    d, a, e = webhook_deliveries, webhook_attempts, events
    event_goes = exists().where(e.c.seq == d.c.event_seq, _event_expired(before, newest))
    return and_(
        d.c.status.in_(FINISHED_DELIVERIES),
        func.coalesce(d.c.last_attempt_at, d.c.created_at) < before,
        exists().where(a.c.delivery_id == d.c.id),
        ~event_goes,
    )


# ------------------------------------------------------------------------------- batching


async def _keyset(
    database: Database, query: Select[Any], keys: Sequence[Column[Any]], batch: int
) -> AsyncIterator[list[Any]]:
    """``query``'s rows in batches, ordered by ``keys`` (its first columns), each batch read in
    its own short read, resuming after the previous batch's last key."""
    last: tuple[Any, ...] | None = None
    while True:
        page = query
        if last is not None:
            after = [literal(value, type_=key.type) for key, value in zip(keys, last, strict=True)]
            page = page.where(keys[0] > after[0] if len(keys) == 1 else tuple_(*keys) > tuple_(*after))
        async with database.connect() as conn:
            rows = (await conn.execute(page.order_by(*keys).limit(batch))).all()
        if rows:
            yield rows
        if len(rows) < batch:
            return
        last = tuple(rows[-1][: len(keys)])


async def _count(database: Database, table: Table, condition: ColumnElement[bool]) -> int:
    async with database.connect() as conn:
        return int(
            (await conn.execute(select(func.count()).select_from(table).where(condition))).scalar_one()
        )


# ---------------------------------------------------------------------------------- steps


async def _purge_raw(
    database: Database, report: PurgeReport, *, before: datetime, now: datetime, batch: int
) -> None:
    m = messages
    expired = _raw_expired(before)
    query = select(m.c.created_at, m.c.id).where(expired)
    async for rows in _keyset(database, query, [m.c.created_at, m.c.id], batch):
        ids = [row.id for row in rows]
        if report.dry_run:
            report.raw_sources += len(ids)
            continue
        async with database.transaction() as conn:
            result = await conn.execute(
                update(m).where(m.c.id.in_(ids), expired).values(raw=None, raw_purged_at=now)
            )
        report.raw_sources += int(result.rowcount or 0)


async def _purge_events(
    database: Database, report: PurgeReport, *, before: datetime, newest: int, batch: int
) -> None:
    e, d, a, p = events, webhook_deliveries, webhook_attempts, pending_actions
    expired = _event_expired(before, newest)
    query = select(e.c.accepted_at, e.c.seq, e.c.id).where(expired)
    async for rows in _keyset(database, query, [e.c.accepted_at, e.c.seq], batch):
        seqs, ids = [int(row.seq) for row in rows], [row.id for row in rows]
        if report.dry_run:
            report.events += len(seqs)
            report.webhook_deliveries += await _count(database, d, d.c.event_seq.in_(seqs))
            of_events = select(d.c.id).where(d.c.event_seq.in_(seqs))
            report.webhook_attempts += await _count(database, a, a.c.delivery_id.in_(of_events))
            report.pending_actions += await _count(
                database, p, and_(p.c.event_id.in_(ids), p.c.state.in_(FINISHED_ACTIONS))
            )
            continue
        async with database.transaction() as conn:
            # the events first: the write lock is taken before anything is read
            gone = (
                await conn.execute(delete(e).where(e.c.seq.in_(seqs), expired).returning(e.c.seq, e.c.id))
            ).all()
            if not gone:
                continue
            gone_seqs, gone_ids = [int(row.seq) for row in gone], [row.id for row in gone]
            of_events = select(d.c.id).where(d.c.event_seq.in_(gone_seqs))
            attempts = await conn.execute(delete(a).where(a.c.delivery_id.in_(of_events)))
            deliveries = await conn.execute(delete(d).where(d.c.event_seq.in_(gone_seqs)))
            actions = await conn.execute(
                delete(p).where(p.c.event_id.in_(gone_ids), p.c.state.in_(FINISHED_ACTIONS))
            )
        report.events += len(gone)
        report.webhook_attempts += int(attempts.rowcount or 0)
        report.webhook_deliveries += int(deliveries.rowcount or 0)
        report.pending_actions += int(actions.rowcount or 0)


async def _purge_history(
    database: Database, report: PurgeReport, *, before: datetime, newest: int, batch: int
) -> None:
    d, a = webhook_deliveries, webhook_attempts
    query = select(d.c.id).where(_history_expired(before, newest))
    async for rows in _keyset(database, query, [d.c.id], batch):
        old = and_(a.c.delivery_id.in_([row.id for row in rows]), a.c.attempted_at < before)
        if report.dry_run:
            report.webhook_attempts += await _count(database, a, old)
            continue
        async with database.transaction() as conn:
            result = await conn.execute(delete(a).where(old))
        report.webhook_attempts += int(result.rowcount or 0)


async def _delete_where(
    database: Database,
    table: Table,
    keys: Sequence[Column[Any]],
    condition: ColumnElement[bool],
    *,
    dry_run: bool,
    batch: int,
) -> int:
    """Delete ``table``'s rows matching ``condition``, ``batch`` per statement (small tables whose
    rows all go: no keyset needed)."""
    if dry_run:
        return await _count(database, table, condition)
    key = keys[0] if len(keys) == 1 else tuple_(*keys)
    total = 0
    while True:
        chosen = select(*keys).where(condition).limit(batch)
        async with database.transaction() as conn:
            result = await conn.execute(delete(table).where(key.in_(chosen)))
        count = int(result.rowcount or 0)
        total += count
        if count < batch:
            return total


async def purge(
    database: Database,
    *,
    now: datetime,
    retention_days: int,
    raw_retention_days: int | None = None,
    batch_size: int = BATCH,
    dry_run: bool = False,
) -> PurgeReport:
    """Apply the retention (see the module docstring); returns what went (or would go).

    ``retention_days``: accepted events and delivery history; ``raw_retention_days``: raw sources
    (None = the same). 0 keeps them forever. Idempotent: a second run finds nothing."""
    for value in (retention_days, raw_retention_days):
        if value is not None and not 0 <= value <= MAX_DAYS:
            raise ValueError(f"retention days must be 0..{MAX_DAYS}, not {value}")
    report = PurgeReport(dry_run=dry_run)
    raw_before = cutoff(now, retention_days if raw_retention_days is None else raw_retention_days)
    if raw_before is not None:
        await _purge_raw(database, report, before=raw_before, now=now, batch=batch_size)
    before = cutoff(now, retention_days)
    if before is not None:
        async with database.connect() as conn:
            newest = (await conn.execute(select(func.max(events.c.seq)))).scalar_one()
        if newest is not None:
            await _purge_events(database, report, before=before, newest=int(newest), batch=batch_size)
            await _purge_history(database, report, before=before, newest=int(newest), batch=batch_size)
    s, f, st = oauth_states, oauth_device_flows, mailbox_stats
    report.oauth_states = await _delete_where(
        database, s, [s.c.nonce], s.c.expires_at < now - OAUTH_GRACE, dry_run=dry_run, batch=batch_size
    )
    report.oauth_device_flows = await _delete_where(
        database, f, [f.c.id], f.c.expires_at < now - OAUTH_GRACE, dry_run=dry_run, batch=batch_size
    )
    report.mailbox_stats = await _delete_where(
        database,
        st,
        [st.c.mailbox_id, st.c.hour],
        st.c.hour < now - STATS_KEPT,
        dry_run=dry_run,
        batch=batch_size,
    )
    return report
