"""The outbox of webhook deliveries: one row per endpoint and event, worked by the dispatcher.

Why a module of its own: everything that moves a delivery along shares the dispatcher's state
row (the fan-out cursor) and the per-mailbox order, and runs unscoped by tenant —
turning events into deliveries (the fan-out, and the backfill of waiting events), what the
dispatcher reads (what is due, the pending batch with its bodies), and recording the attempts'
outcomes with the acceptance they settle. Statements that run inside a caller's transaction
take the connection (``conn``), so that, e.g., attempts and the events they accept commit
together.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Update, and_, bindparam, exists, func, insert, literal_column, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from mailport import events as event_log
from mailport.delivery.models import DeliveryStatus, WebhookEndpoint
from mailport.events import acceptance
from mailport.store import many_rows
from mailport.store.database import Database
from mailport.store.ids import new_id
from mailport.store.many_rows import RowInsert
from mailport.store.rows import from_row
from mailport.store.tables import (
    delivery_state,
    events,
    webhook_attempts,
    webhook_deliveries,
    webhook_endpoints,
)

STATE_ROW = acceptance.FANOUT_ROW  # the dispatcher's row: the fan-out cursor
ENDPOINT_ACTIVE = acceptance.ENDPOINT_ACTIVE
MAX_ERROR_CHARS = 1000


@dataclass(frozen=True)
class PendingDelivery:
    """A delivery waiting to be sent, with what is needed to build its request."""

    id: str
    event_seq: int
    event_id: str
    mailbox_id: str | None
    attempts: int
    window_started_at: datetime
    next_attempt_at: datetime | None
    event_created_at: datetime
    body: bytes


@dataclass(frozen=True)
class Fanout:
    """What one fan-out did: events read, and the new deliveries per endpoint id (event order)."""

    count: int
    queued: dict[str, list[PendingDelivery]]
    stale: bool = False  # the endpoints were out of date: nothing done, try again
    through: int | None = None  # the fan-out cursor as this transaction left it (None: stale)


# The fan-out's and the results' rows go to the driver as tuples (mailport.store.many_rows):
# on SQLite one statement instead of a step per row, each step waiting for the event loop to
# hand back the GIL while the dispatcher holds the process's write turn (issue 21).
_DELIVERY_COLUMNS = (
    "id",
    "endpoint_id",
    "tenant_id",
    "event_seq",
    "event_id",
    "event_type",
    "mailbox_id",
    "status",
    "attempts",
    "window_started_at",
    "next_attempt_at",
    "created_at",
)
_INSERT_DELIVERIES = RowInsert(
    webhook_deliveries, _DELIVERY_COLUMNS, stamped=("window_started_at", "next_attempt_at", "created_at")
)
_ATTEMPT_COLUMNS = ("id", "delivery_id", "attempted_at", "result", "status_code", "error", "duration_ms")
_INSERT_ATTEMPTS = RowInsert(webhook_attempts, _ATTEMPT_COLUMNS, stamped=("attempted_at",))
# SQLite: every result's delivery row in one statement (a VALUES list's columns are column1 ...)
_RESULTS_SQLITE = (
    "UPDATE webhook_deliveries SET status = v.column2, attempts = webhook_deliveries.attempts + 1, "
    "next_attempt_at = v.column3, last_attempt_at = v.column4, last_status_code = v.column5, "
    "last_error = v.column6, delivered_at = v.column7 "
    "FROM (VALUES {values}) AS v WHERE webhook_deliveries.id = v.column1"
)
_RESULT_GROUP = "(?, ?, ?, ?, ?, ?, ?)"
_RESULT_STAMPED = (2, 3, 6)  # the timestamps among a result's values (see _set_results)
_RESULT_KEYS = ("b_id", "b_status", "b_next", "b_at", "b_code", "b_error", "b_delivered")
# Elsewhere (PostgreSQL; SQLite when a delivery appears twice): one row per result, through the
# driver's executemany with tuples (asyncpg pipelines it). SQLAlchemy's own executemany
# processed a dict per row: about half of the CPU, as for the events' INSERT (issue 21).
_RESULTS_EACH = (
    update(webhook_deliveries)
    .where(webhook_deliveries.c.id == bindparam("b_id"))
    .values(
        status=bindparam("b_status"),
        attempts=webhook_deliveries.c.attempts + literal_column("1"),
        next_attempt_at=bindparam("b_next"),
        last_attempt_at=bindparam("b_at"),
        last_status_code=bindparam("b_code"),
        last_error=bindparam("b_error"),
        delivered_at=bindparam("b_delivered"),
    )
)
_results_each: dict[str, tuple[str, list[int]]] = {}  # dialect -> SQL, value positions in order
# built once, as the statements above: each runs once per batch of results (or per inline fan-out)
_ep = webhook_endpoints
_EP_ID = _ep.c.id == bindparam("b_endpoint", type_=_ep.c.id.type)
_LOCK_ENDPOINT = select(_ep.c.id).where(_EP_ID).with_for_update()
_LAST_SUCCESS = select(_ep.c.last_success_at).where(_EP_ID)
_SUCCEEDED = (
    update(_ep)
    .where(_EP_ID)
    .values(
        last_success_at=bindparam("b_success", type_=_ep.c.last_success_at.type),
        failing_since=bindparam("b_failing", type_=_ep.c.failing_since.type),
    )
)
_STATE_ROW_FREE = (
    select(delivery_state.c.name).where(delivery_state.c.name == STATE_ROW).with_for_update(skip_locked=True)
)


@dataclass(frozen=True)
class AttemptRecord:
    """The result of one attempt, as the dispatcher hands it to :meth:`Outbox.record`."""

    delivery_id: str
    event_seq: int
    attempted_at: datetime
    result: str
    status_code: int | None
    error: str | None
    duration_ms: int
    new_status: DeliveryStatus
    next_attempt_at: datetime | None
    window_started_at: datetime


def event_body(
    row: Any, *, seq: int | None = None, event_id: str | None = None, created_at: datetime | None = None
) -> bytes:
    """The webhook body: :meth:`mailport.events.Event.to_dict`'s shape, with the stored payload
    spliced in verbatim (no parse and re-dump of a large message on every attempt). ``row``
    holds ``event_id``, ``event_seq`` and ``event_created_at`` unless they are given."""
    head = event_log.compact_json(
        {
            "id": row.event_id if event_id is None else event_id,
            "seq": int(row.event_seq) if seq is None else seq,
            "type": row.type,
            "tenant_id": row.tenant_id,
            "mailbox_id": row.mailbox_id,
            "idempotency_key": row.idempotency_key,
            "created_at": (row.event_created_at if created_at is None else created_at).isoformat(),
        }
    )
    payload: str = row.payload
    return (head[:-1] + ',"data":' + payload + "}").encode("utf-8")


async def _set_results(conn: AsyncConnection, records: Sequence[AttemptRecord]) -> None:
    """Each record's delivery row: its new state and last attempt. On SQLite in one ``UPDATE
    … FROM (VALUES …)`` per page of records (one step, see ``_RESULTS_SQLITE``), unless a
    delivery appears twice (its attempts must both count); elsewhere the driver's executemany
    (:data:`_RESULTS_EACH`)."""
    values = [
        (
            r.delivery_id,
            r.new_status.value,
            r.next_attempt_at,
            r.attempted_at,
            r.status_code,
            r.error[:MAX_ERROR_CHARS] if r.error else None,
            r.attempted_at if r.new_status is DeliveryStatus.DELIVERED else None,
        )
        for r in records
    ]
    stamp = many_rows.Stamps(webhook_deliveries.c.last_attempt_at, conn.dialect)
    if conn.dialect.name == "sqlite" and len({v[0] for v in values}) == len(values):
        width = len(values[0])
        flat = [
            stamp(value) if position in _RESULT_STAMPED else value
            for row in values
            for position, value in enumerate(row)
        ]
        per_page = many_rows.MAX_PARAMETERS // width
        for start in range(0, len(values), per_page):
            count = min(per_page, len(values) - start)
            sql = _RESULTS_SQLITE.format(values=", ".join([_RESULT_GROUP] * count))
            await conn.exec_driver_sql(sql, tuple(flat[start * width : (start + count) * width]))
        return
    sql, order = _results_each_sql(conn)
    rows = [
        tuple(stamp(row[position]) if position in _RESULT_STAMPED else row[position] for position in order)
        for row in values
    ]
    await conn.exec_driver_sql(sql, rows)


def _results_each_sql(conn: AsyncConnection) -> tuple[str, list[int]]:
    """:data:`_RESULTS_EACH` compiled once per dialect, and where each of its parameters is
    among a result's values (``_RESULT_KEYS`` order)."""
    found = _results_each.get(conn.dialect.name)
    if found is None:
        compiled = _RESULTS_EACH.compile(dialect=conn.dialect)
        names = list(compiled.positiontup or ())
        if sorted(names) != sorted(_RESULT_KEYS):
            raise RuntimeError(f"webhook results: compiled parameters {names}")
        found = _results_each[conn.dialect.name] = (str(compiled), [_RESULT_KEYS.index(n) for n in names])
    return found


def _delivery_row(endpoint: WebhookEndpoint, row: Any, *, now: datetime) -> dict[str, Any]:
    """A new pending delivery of the event ``row`` (seq, id, type, mailbox_id) to ``endpoint``."""
    return dict(zip(_DELIVERY_COLUMNS, _delivery_values(endpoint, row, new_id("dlv"), now), strict=True))


def _delivery_values(endpoint: WebhookEndpoint, row: Any, delivery_id: str, now: datetime) -> tuple[Any, ...]:
    """:func:`_delivery_row`'s values in :data:`_DELIVERY_COLUMNS` order."""
    return (
        delivery_id,
        endpoint.id,
        endpoint.tenant_id,
        int(row.seq),
        row.id,
        row.type,
        row.mailbox_id,
        DeliveryStatus.PENDING.value,
        0,
        now,
        now,
        now,
    )


async def queue_waiting(
    conn: AsyncConnection, endpoint: WebhookEndpoint, *, through: int, now: datetime
) -> int:
    """Queue for ``endpoint`` the events up to ``through`` waiting for nobody but the pull API
    (see :func:`mailport.events.acceptance.pull_owned_waiting`), in ``conn``'s transaction;
    returns how many."""
    query = acceptance.pull_owned_waiting(endpoint.tenant_id, through=through, types=endpoint.events)
    rows = (await conn.execute(query)).all()
    if rows:
        await conn.execute(
            insert(webhook_deliveries), [_delivery_row(endpoint, row, now=now) for row in rows]
        )
    return len(rows)


class Outbox:
    def __init__(self, database: Database) -> None:
        self.database = database
        # endpoint id -> start_seq, as the last full fan-out read them (set once, at creation)
        self._start_seqs: dict[str, int] = {}
        self._moves: tuple[tuple[tuple[str, datetime], ...], Update] | None = None  # _cursor_move's

    # ------------------------------------------------------------------ fan-out

    async def fanout(
        self, conn: AsyncConnection, endpoints: Sequence[WebhookEndpoint], *, batch: int, now: datetime
    ) -> Fanout:
        """Turn events after the fan-out cursor into deliveries for the subscribed active endpoints.

        ``endpoints`` is the caller's (cached) list of active endpoints; it is checked against the
        table in this transaction (ids and ``updated_at``), and when it is out of date nothing is
        fanned out and :attr:`Fanout.stale` says to read the endpoints again. The new deliveries
        come back with their request bodies (:attr:`Fanout.queued`), so that a worker need not
        read them back. Events commit in ``seq`` order (see :mod:`mailport.events`), so a cursor
        is exact.
        """
        # write first: takes SQLite's write lock now (waiting out other writers) instead of
        # failing at once to upgrade a read snapshot later ("database is locked", measured under
        # the backlog bench); on PostgreSQL it locks the state row
        state = (
            await conn.execute(
                update(delivery_state)
                .where(delivery_state.c.name == STATE_ROW)
                .values(updated_at=now)
                .returning(delivery_state.c.fanout_seq)
            )
        ).first()
        if state is None:
            await conn.execute(insert(delivery_state).values(name=STATE_ROW, fanout_seq=0, updated_at=now))
        cursor = int(state.fanout_seq) if state is not None else 0
        # The events first, the endpoints second: an endpoint created after this read starts
        # after every event read here (its start_seq is the last seq when it was created).
        rows = (
            await conn.execute(
                select(
                    events.c.seq,
                    events.c.id,
                    events.c.tenant_id,
                    events.c.mailbox_id,
                    events.c.type,
                    events.c.idempotency_key,
                    events.c.payload,
                    events.c.created_at,
                )
                .where(events.c.seq > cursor)
                .order_by(events.c.seq)
                .limit(batch)
            )
        ).all()
        if not rows:
            return Fanout(0, {}, through=cursor)
        starts = await self._active_start_seqs(conn, endpoints)
        if starts is None:
            return Fanout(0, {}, stale=True)
        await conn.execute(
            update(delivery_state)
            .where(delivery_state.c.name == STATE_ROW)
            .values(fanout_seq=int(rows[-1].seq), updated_at=now)
        )
        return await self._queue(conn, rows, endpoints, starts, now=now)

    async def fanout_committed(
        self,
        conn: AsyncConnection,
        endpoints: Sequence[WebhookEndpoint],
        committed: Sequence[event_log.CommittedEvent],
        *,
        after: int,
        now: datetime,
        skip_locked: bool = False,
    ) -> Fanout | None:
        """:meth:`fanout` of events this process just committed, without reading them back:
        one ``UPDATE`` of the fan-out cursor, then the deliveries' ``INSERT``.

        ``committed`` must be the events ``after + 1`` … ``after + n`` without a gap (so no
        other event lies between: ``seq`` is unique) and ``after`` the cursor as this process
        last left it. The ``UPDATE`` moves the cursor only if it still stands at ``after`` and
        the active endpoints are still exactly ``endpoints`` (ids and ``updated_at``), which is
        what :meth:`fanout` checks with two reads; otherwise it changes nothing and None says
        to call :meth:`fanout` in the same transaction (it comes first, so it takes SQLite's
        write lock, or locks the state row, as :meth:`fanout`'s first statement does).
        ``skip_locked`` (PostgreSQL): None at once while another transaction holds the state
        row, instead of waiting for it."""
        seqs = [event.seq for event in committed]
        if not seqs or seqs != list(range(after + 1, after + 1 + len(seqs))):
            return None
        starts = {endpoint.id: self._start_seqs.get(endpoint.id) for endpoint in endpoints}
        if any(start is None for start in starts.values()):
            return None  # an endpoint not seen by a full fan-out yet
        if skip_locked and conn.dialect.name == "postgresql":
            # (the fan-out inside an appending transaction) never wait for the state row: its
            # holder may be waiting for a lock this transaction holds (the event lock, through
            # a transaction that appends while holding an endpoint's row), a deadlock
            if (await conn.execute(_STATE_ROW_FREE)).first() is None:
                return None
        moved = await conn.execute(
            self._cursor_move(endpoints), {"b_after": after, "b_through": seqs[-1], "b_now": now}
        )
        if not moved.rowcount:
            return None
        return await self._queue(
            conn, committed, endpoints, {k: v for k, v in starts.items() if v is not None}, now=now
        )

    def _cursor_move(self, endpoints: Sequence[WebhookEndpoint]) -> Update:
        """:meth:`fanout_committed`'s ``UPDATE``, built once per set of endpoints (building it
        took ~0.25 ms a fan-out): the cursor moves from ``b_after`` to ``b_through`` only while
        the active endpoints are exactly ``endpoints`` (as many, and none other by id and
        ``updated_at``)."""
        key = tuple((x.id, x.updated_at) for x in endpoints)
        if self._moves is not None and self._moves[0] == key:
            return self._moves[1]
        e = webhook_endpoints
        active = e.c.status == ENDPOINT_ACTIVE
        same_endpoints = and_(
            select(func.count()).select_from(e).where(active).scalar_subquery() == len(key),
            ~exists().where(active, tuple_(e.c.id, e.c.updated_at).not_in(list(key))),
        )
        statement = (
            update(delivery_state)
            .where(
                delivery_state.c.name == STATE_ROW,
                delivery_state.c.fanout_seq == bindparam("b_after"),
                same_endpoints,
            )
            .values(fanout_seq=bindparam("b_through"), updated_at=bindparam("b_now"))
        )
        self._moves = (key, statement)
        return statement

    async def _queue(
        self,
        conn: AsyncConnection,
        rows: Sequence[Any],
        endpoints: Sequence[WebhookEndpoint],
        starts: dict[str, int],
        *,
        now: datetime,
    ) -> Fanout:
        """Insert the deliveries of ``rows`` (events, ``seq`` order) for the subscribed
        ``endpoints`` created before them; the fan-out cursor is already at the last row."""
        by_tenant: dict[str, list[WebhookEndpoint]] = {}
        for endpoint in endpoints:
            by_tenant.setdefault(endpoint.tenant_id, []).append(endpoint)
        new_rows: list[tuple[Any, ...]] = []
        queued: dict[str, list[PendingDelivery]] = {}
        for row in rows:
            seq = int(row.seq)
            body: bytes | None = None
            for endpoint in by_tenant.get(row.tenant_id, ()):
                if not endpoint.subscribes(row.type) or seq <= starts[endpoint.id]:
                    continue
                delivery_id = new_id("dlv")
                new_rows.append(_delivery_values(endpoint, row, delivery_id, now))
                if body is None:
                    body = event_body(row, seq=seq, event_id=row.id, created_at=row.created_at)
                queued.setdefault(endpoint.id, []).append(
                    PendingDelivery(
                        id=delivery_id,
                        event_seq=seq,
                        event_id=row.id,
                        mailbox_id=row.mailbox_id,
                        attempts=0,
                        window_started_at=now,
                        next_attempt_at=now,
                        event_created_at=row.created_at,
                        body=body,
                    )
                )
        await _INSERT_DELIVERIES.insert(conn, new_rows)
        return Fanout(len(rows), queued, through=int(rows[-1].seq))

    async def fanout_pending(self) -> bool:
        """Are there events the fan-out has not read yet? (A read, so idle cycles write nothing.)"""
        async with self.database.connect() as conn:
            query = select(delivery_state.c.fanout_seq).where(delivery_state.c.name == STATE_ROW)
            state = (await conn.execute(query)).first()
            cursor = int(state.fanout_seq) if state is not None else 0
            return bool(await event_log.last_seq(conn) > cursor)

    async def _active_start_seqs(
        self, conn: AsyncConnection, endpoints: Sequence[WebhookEndpoint]
    ) -> dict[str, int] | None:
        """The ``start_seq`` of each of ``endpoints``; None when they are not exactly the active
        endpoints as they are now (one was added, changed, disabled or deleted)."""
        e = webhook_endpoints
        result = await conn.execute(
            select(e.c.id, e.c.start_seq, e.c.updated_at).where(e.c.status == ENDPOINT_ACTIVE)
        )
        rows = result.all()
        known = {endpoint.id: endpoint.updated_at for endpoint in endpoints}
        if len(rows) != len(known) or any(known.get(row.id) != row.updated_at for row in rows):
            return None
        starts = {row.id: int(row.start_seq) for row in rows}
        self._start_seqs = starts
        return starts

    async def postpone(
        self, endpoint_id: str, mailbox_id: str | None, *, after_seq: int, until: datetime
    ) -> None:
        """Give the deliveries waiting behind a retry in their mailbox the retry's time (so that
        the supervisor's due-check does not wake their worker for nothing)."""
        d = webhook_deliveries
        same_mailbox = d.c.mailbox_id.is_(None) if mailbox_id is None else d.c.mailbox_id == mailbox_id
        async with self.database.transaction() as conn:
            await conn.execute(
                update(d)
                .where(
                    d.c.endpoint_id == endpoint_id,
                    same_mailbox,
                    d.c.status == DeliveryStatus.PENDING.value,
                    d.c.event_seq > after_seq,
                    d.c.next_attempt_at < until,
                )
                .values(next_attempt_at=until)
            )

    async def pending_count(self) -> int:
        d = webhook_deliveries
        async with self.database.connect() as conn:
            query = select(func.count()).select_from(d).where(d.c.status == DeliveryStatus.PENDING.value)
            return int((await conn.execute(query)).scalar_one())

    async def endpoints_with_due_deliveries(self, *, now: datetime) -> set[str]:
        """Endpoints with a pending delivery due now (after a replay, or a missed wake-up)."""
        d = webhook_deliveries
        async with self.database.connect() as conn:
            result = await conn.execute(
                select(d.c.endpoint_id)
                .where(d.c.status == DeliveryStatus.PENDING.value, d.c.next_attempt_at <= now)
                .distinct()
            )
            return {row.endpoint_id for row in result}

    # ------------------------------------------------------------------ sending

    async def pending(self, endpoint_id: str, *, limit: int) -> list[PendingDelivery]:
        """The endpoint's first pending deliveries, with their request bodies, taken round-robin
        across mailboxes (every mailbox's first, then every mailbox's second, …): a mailbox with
        a long backlog never crowds out the others, and a lone mailbox fills the whole batch.
        Within a mailbox they come in event order."""
        d = webhook_deliveries
        ranked = (
            select(
                d.c.id,
                func.row_number().over(partition_by=d.c.mailbox_id, order_by=d.c.event_seq).label("rank"),
            )
            .where(d.c.endpoint_id == endpoint_id, d.c.status == DeliveryStatus.PENDING.value)
            .subquery()
        )
        query = (
            select(
                d.c.id,
                d.c.event_seq,
                d.c.event_id,
                d.c.mailbox_id,
                d.c.attempts,
                d.c.window_started_at,
                d.c.next_attempt_at,
                events.c.type,
                events.c.tenant_id,
                events.c.idempotency_key,
                events.c.payload,
                events.c.created_at.label("event_created_at"),
            )
            .join(ranked, ranked.c.id == d.c.id)
            .join(events, events.c.seq == d.c.event_seq)
            .order_by(ranked.c.rank, d.c.event_seq)
            .limit(limit)
        )
        async with self.database.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            from_row(
                PendingDelivery,
                row,
                event_seq=int(row.event_seq),
                attempts=int(row.attempts),
                body=event_body(row),
            )
            for row in rows
        ]

    async def lock_endpoint(self, conn: AsyncConnection, endpoint_id: str) -> bool:
        """Lock the endpoint's row for this transaction; False when it was deleted meanwhile.

        Recording takes the endpoint first, as deleting it does before its cascade reaches the
        deliveries: taking the deliveries first and the endpoint last deadlocked against a
        concurrent delete on PostgreSQL (SQLite serializes writers anyway)."""
        return (await conn.execute(_LOCK_ENDPOINT, {"b_endpoint": endpoint_id})).first() is not None

    async def record(
        self, conn: AsyncConnection, endpoint_id: str, records: Sequence[AttemptRecord]
    ) -> datetime | None:
        """Store attempts and their deliveries' new state, and the endpoint's failing streak.

        Returns the endpoint's ``last_success_at`` afterwards (call :meth:`lock_endpoint` first)."""
        if not records:
            return None
        await _INSERT_ATTEMPTS.insert(
            conn,
            [
                (
                    new_id("att"),
                    r.delivery_id,
                    r.attempted_at,
                    r.result,
                    r.status_code,
                    r.error[:MAX_ERROR_CHARS] if r.error else None,
                    r.duration_ms,
                )
                for r in records
            ],
        )
        await _set_results(conn, records)
        # the failing streak: cleared by the last success, started by the first failure after it
        last_success = max((r.attempted_at for r in records if r.result == "success"), default=None)
        failures_after = [
            r.attempted_at
            for r in records
            if r.result != "success" and (last_success is None or r.attempted_at > last_success)
        ]
        e = webhook_endpoints
        if last_success is not None:
            failing_since = min(failures_after) if failures_after else None
            await conn.execute(
                _SUCCEEDED, {"b_endpoint": endpoint_id, "b_success": last_success, "b_failing": failing_since}
            )
        elif failures_after:
            failing = func.coalesce(e.c.failing_since, min(failures_after))
            await conn.execute(update(e).where(e.c.id == endpoint_id).values(failing_since=failing))
        row = (await conn.execute(_LAST_SUCCESS, {"b_endpoint": endpoint_id})).first()
        return row.last_success_at if row is not None else None

    async def accept_completed(self, conn: AsyncConnection, seqs: Iterable[int], *, now: datetime) -> int:
        """Mark accepted the events among ``seqs`` that every consumer owing them has accepted
        (after 2xx answers, or when an endpoint that owed them is gone)."""
        return await acceptance.settle_delivered(conn, seqs, now=now)
