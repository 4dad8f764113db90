"""Webhook endpoints, the per-endpoint outbox and its attempts in the database.

Tenant-facing reads and writes take ``tenant_id`` (another tenant's row is "not found"); the
dispatcher uses the unscoped methods. Statements that run inside a caller's transaction take
the connection (``conn``) so that, e.g., disabling an endpoint, dead-lettering its queue and
appending the ``webhook.disabled`` event commit together.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from mailport import events as event_log
from mailport.crypto import KeyRing, Secret
from mailport.delivery.models import (
    WEBHOOK_DISABLED,
    Attempt,
    Delivery,
    DeliveryStatus,
    EndpointStatus,
    WebhookEndpoint,
)
from mailport.errors import NotFoundError
from mailport.events import acceptance
from mailport.store.database import Database
from mailport.store.ids import new_id, plausible_id
from mailport.store.tables import (
    delivery_state,
    events,
    webhook_attempts,
    webhook_deliveries,
    webhook_endpoints,
)

STATE_ROW = "dispatcher"
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
class AttemptRecord:
    """The result of one attempt, as the dispatcher hands it to :meth:`WebhookRepository.record`."""

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


def event_body(row: Any) -> bytes:
    """The webhook body: :meth:`mailport.events.Event.to_dict`'s shape, with the stored payload
    spliced in verbatim (no parse and re-dump of a large message on every attempt)."""
    head = json.dumps(
        {
            "id": row.event_id,
            "seq": int(row.event_seq),
            "type": row.type,
            "tenant_id": row.tenant_id,
            "mailbox_id": row.mailbox_id,
            "idempotency_key": row.idempotency_key,
            "created_at": row.event_created_at.isoformat(),
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )
    payload: str = row.payload
    return (head[:-1] + ',"data":' + payload + "}").encode("utf-8")


def _events_text(types: Sequence[str] | None) -> str | None:
    return " ".join(types) if types is not None else None


class WebhookRepository:
    def __init__(self, database: Database, key_ring: KeyRing) -> None:
        self.database = database
        self._key_ring = key_ring

    # ------------------------------------------------------------------ endpoints

    def _endpoint(self, row: Any) -> WebhookEndpoint:
        return WebhookEndpoint(
            id=row.id,
            tenant_id=row.tenant_id,
            url=row.url,
            events=tuple(row.events.split()) if row.events is not None else None,
            description=row.description,
            secret=Secret(self._key_ring.decrypt(row.secret_enc)),
            status=EndpointStatus(row.status),
            disabled_reason=row.disabled_reason,
            failing_since=row.failing_since,
            last_success_at=row.last_success_at,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    async def create(
        self,
        tenant_id: str,
        *,
        url: str,
        types: Sequence[str] | None,
        description: str | None,
        secret: Secret,
        now: datetime,
        backfill: bool = False,
    ) -> WebhookEndpoint:
        """The new endpoint; with ``backfill`` it takes over the waiting events of its types that
        no webhook endpoint owes, in the same transaction."""
        endpoint_id = new_id("whk")
        async with self.database.transaction() as conn:
            start_seq = await event_log.last_seq(conn)
            await conn.execute(
                insert(webhook_endpoints).values(
                    id=endpoint_id,
                    tenant_id=tenant_id,
                    url=url,
                    events=_events_text(types),
                    description=description,
                    secret_enc=self._key_ring.encrypt(secret.reveal()),
                    status=EndpointStatus.ACTIVE.value,
                    start_seq=start_seq,
                    created_at=now,
                    updated_at=now,
                )
            )
            if backfill:
                endpoint = self._endpoint(
                    (
                        await conn.execute(
                            select(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id)
                        )
                    ).one()
                )
                await self._backfill(conn, endpoint, through=start_seq, now=now)
        return await self.get(tenant_id, endpoint_id)

    async def backfill(self, tenant_id: str, endpoint_id: str, *, now: datetime) -> int:
        """Queue for the endpoint the events waiting for nobody but the pull API (see
        :func:`mailport.events.acceptance.pull_owned_waiting`); returns how many."""
        endpoint = await self.get(tenant_id, endpoint_id)
        async with self.database.transaction() as conn:
            through = await event_log.last_seq(conn)
            return await self._backfill(conn, endpoint, through=through, now=now)

    async def _backfill(
        self, conn: AsyncConnection, endpoint: WebhookEndpoint, *, through: int, now: datetime
    ) -> int:
        query = acceptance.pull_owned_waiting(endpoint.tenant_id, through=through, types=endpoint.events)
        rows = (await conn.execute(query)).all()
        if rows:
            await conn.execute(
                insert(webhook_deliveries), [self._delivery_row(endpoint, row, now=now) for row in rows]
            )
        return len(rows)

    @staticmethod
    def _delivery_row(endpoint: WebhookEndpoint, row: Any, *, now: datetime) -> dict[str, Any]:
        """A new pending delivery of the event ``row`` (seq, id, type, mailbox_id) to ``endpoint``."""
        return {
            "id": new_id("dlv"),
            "endpoint_id": endpoint.id,
            "tenant_id": endpoint.tenant_id,
            "event_seq": int(row.seq),
            "event_id": row.id,
            "event_type": row.type,
            "mailbox_id": row.mailbox_id,
            "status": DeliveryStatus.PENDING.value,
            "attempts": 0,
            "window_started_at": now,
            "next_attempt_at": now,
            "created_at": now,
        }

    async def get(self, tenant_id: str, endpoint_id: str) -> WebhookEndpoint:
        if plausible_id(endpoint_id):
            async with self.database.connect() as conn:
                row = (
                    await conn.execute(
                        select(webhook_endpoints).where(
                            webhook_endpoints.c.id == endpoint_id, webhook_endpoints.c.tenant_id == tenant_id
                        )
                    )
                ).first()
            if row is not None:
                return self._endpoint(row)
        raise NotFoundError(f"no webhook endpoint {endpoint_id!r}", field="webhook_id")

    async def page(self, tenant_id: str, *, after_id: str | None, limit: int) -> list[WebhookEndpoint]:
        query = select(webhook_endpoints).where(webhook_endpoints.c.tenant_id == tenant_id)
        if after_id is not None:
            query = query.where(webhook_endpoints.c.id > after_id)
        async with self.database.connect() as conn:
            rows = (await conn.execute(query.order_by(webhook_endpoints.c.id).limit(limit))).all()
        return [self._endpoint(row) for row in rows]

    async def update(
        self,
        tenant_id: str,
        endpoint_id: str,
        *,
        values: dict[str, Any],
        secret: Secret | None,
        now: datetime,
    ) -> WebhookEndpoint:
        await self.get(tenant_id, endpoint_id)
        columns = dict(values)
        if "events" in columns:
            columns["events"] = _events_text(columns["events"])
        if secret is not None:
            columns["secret_enc"] = self._key_ring.encrypt(secret.reveal())
        columns["updated_at"] = now
        async with self.database.transaction() as conn:
            await conn.execute(
                update(webhook_endpoints)
                .where(webhook_endpoints.c.id == endpoint_id, webhook_endpoints.c.tenant_id == tenant_id)
                .values(**columns)
            )
        return await self.get(tenant_id, endpoint_id)

    async def delete(self, tenant_id: str, endpoint_id: str) -> list[int]:
        """Delete the endpoint and its queue; returns the seqs of events it had not delivered."""
        await self.get(tenant_id, endpoint_id)
        async with self.database.transaction() as conn:
            seqs = (
                await conn.execute(
                    select(webhook_deliveries.c.event_seq).where(
                        webhook_deliveries.c.endpoint_id == endpoint_id,
                        webhook_deliveries.c.status != DeliveryStatus.DELIVERED.value,
                    )
                )
            ).scalars()
            open_seqs = [int(s) for s in seqs]
            await conn.execute(delete(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id))
        return open_seqs

    async def active_endpoints(self) -> list[WebhookEndpoint]:
        async with self.database.connect() as conn:
            rows = (
                await conn.execute(
                    select(webhook_endpoints).where(webhook_endpoints.c.status == EndpointStatus.ACTIVE.value)
                )
            ).all()
        return [self._endpoint(row) for row in rows]

    async def active_for_tenant(self, tenant_id: str) -> list[WebhookEndpoint]:
        async with self.database.connect() as conn:
            rows = (
                await conn.execute(
                    select(webhook_endpoints).where(
                        webhook_endpoints.c.tenant_id == tenant_id,
                        webhook_endpoints.c.status == EndpointStatus.ACTIVE.value,
                    )
                )
            ).all()
        return [self._endpoint(row) for row in rows]

    async def get_by_id(self, endpoint_id: str) -> WebhookEndpoint | None:
        async with self.database.connect() as conn:
            row = (
                await conn.execute(select(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id))
            ).first()
        return self._endpoint(row) if row is not None else None

    async def disable(
        self, conn: AsyncConnection, endpoint: WebhookEndpoint, *, reason: str, now: datetime
    ) -> bool:
        """Disable ``endpoint``, dead-letter its queue and append ``webhook.disabled`` (in ``conn``'s
        transaction). False when it was not active (someone else got there first)."""
        result = await conn.execute(
            update(webhook_endpoints)
            .where(
                webhook_endpoints.c.id == endpoint.id,
                webhook_endpoints.c.status == EndpointStatus.ACTIVE.value,
            )
            .values(status=EndpointStatus.DISABLED.value, disabled_reason=reason, updated_at=now)
        )
        if result.rowcount != 1:
            return False
        await conn.execute(
            update(webhook_deliveries)
            .where(
                webhook_deliveries.c.endpoint_id == endpoint.id,
                webhook_deliveries.c.status == DeliveryStatus.PENDING.value,
            )
            .values(status=DeliveryStatus.DEAD.value, next_attempt_at=None, last_error="endpoint disabled")
        )
        await event_log.append(
            conn,
            tenant_id=endpoint.tenant_id,
            mailbox_id=None,
            type=WEBHOOK_DISABLED,
            payload={
                "webhook_id": endpoint.id,
                "url": endpoint.url,
                "reason": reason,
                "disabled_at": now.isoformat(),
            },
            idempotency_key=f"webhook.disabled:{endpoint.id}:{now.isoformat()}",
        )
        return True

    # ------------------------------------------------------------------ fan-out

    async def fanout(
        self, conn: AsyncConnection, endpoints: Sequence[WebhookEndpoint], *, batch: int, now: datetime
    ) -> tuple[int, set[str]]:
        """Turn events after the fan-out cursor into deliveries for the subscribed active endpoints.

        Returns the number of events read and the ids of endpoints that got new deliveries.
        Events commit in ``seq`` order (see :mod:`mailport.events`), so a cursor is exact.
        """
        # write first: takes SQLite's write lock now (waiting out other writers) instead of
        # failing to upgrade a read snapshot later; on PostgreSQL it locks the state row
        touched_state = await conn.execute(
            update(delivery_state).where(delivery_state.c.name == STATE_ROW).values(updated_at=now)
        )
        if touched_state.rowcount == 0:
            await conn.execute(insert(delivery_state).values(name=STATE_ROW, fanout_seq=0, updated_at=now))
        state = (
            await conn.execute(select(delivery_state.c.fanout_seq).where(delivery_state.c.name == STATE_ROW))
        ).first()
        cursor = int(state.fanout_seq) if state is not None else 0
        rows = (
            await conn.execute(
                select(events.c.seq, events.c.id, events.c.tenant_id, events.c.mailbox_id, events.c.type)
                .where(events.c.seq > cursor)
                .order_by(events.c.seq)
                .limit(batch)
            )
        ).all()
        if not rows:
            return 0, set()
        by_tenant: dict[str, list[WebhookEndpoint]] = {}
        for endpoint in endpoints:
            by_tenant.setdefault(endpoint.tenant_id, []).append(endpoint)
        new_rows: list[dict[str, Any]] = []
        touched: set[str] = set()
        starts = await self._start_seqs(conn, [e.id for e in endpoints])
        for row in rows:
            for endpoint in by_tenant.get(row.tenant_id, ()):
                if not endpoint.subscribes(row.type) or int(row.seq) <= starts.get(endpoint.id, 0):
                    continue
                touched.add(endpoint.id)
                new_rows.append(self._delivery_row(endpoint, row, now=now))
        if new_rows:
            await conn.execute(insert(webhook_deliveries), new_rows)
        await conn.execute(
            update(delivery_state)
            .where(delivery_state.c.name == STATE_ROW)
            .values(fanout_seq=int(rows[-1].seq), updated_at=now)
        )
        return len(rows), touched

    async def fanout_pending(self) -> bool:
        """Are there events the fan-out has not read yet? (A read, so idle cycles write nothing.)"""
        async with self.database.connect() as conn:
            query = select(delivery_state.c.fanout_seq).where(delivery_state.c.name == STATE_ROW)
            state = (await conn.execute(query)).first()
            cursor = int(state.fanout_seq) if state is not None else 0
            return bool(await event_log.last_seq(conn) > cursor)

    async def _start_seqs(self, conn: AsyncConnection, ids: list[str]) -> dict[str, int]:
        if not ids:
            return {}
        result = await conn.execute(
            select(webhook_endpoints.c.id, webhook_endpoints.c.start_seq).where(
                webhook_endpoints.c.id.in_(ids)
            )
        )
        return {row.id: int(row.start_seq) for row in result}

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

    # ------------------------------------------------------------------ lease

    async def acquire_lease(
        self,
        owner: str,
        *,
        now: datetime,
        until: datetime,
        is_stale: Callable[[str], bool] = lambda _owner: False,
    ) -> bool:
        """Take or renew the dispatcher lease (one dispatching process at a time); a lease whose
        holder ``is_stale`` (a dead process on this host) is taken over before it expires."""
        async with self.database.transaction() as conn:
            row = (
                await conn.execute(select(delivery_state).where(delivery_state.c.name == STATE_ROW))
            ).first()
            if row is None:
                await conn.execute(
                    insert(delivery_state).values(
                        name=STATE_ROW, fanout_seq=0, owner=owner, lease_until=until, updated_at=now
                    )
                )
                return True
            holder = row.owner
            if holder is not None and holder != owner and is_stale(holder):
                await conn.execute(
                    update(delivery_state)
                    .where(delivery_state.c.name == STATE_ROW, delivery_state.c.owner == holder)
                    .values(owner=owner, lease_until=until, updated_at=now)
                )
                return True
            result = await conn.execute(
                update(delivery_state)
                .where(
                    delivery_state.c.name == STATE_ROW,
                    (delivery_state.c.owner == owner)
                    | delivery_state.c.owner.is_(None)
                    | (delivery_state.c.lease_until < now),
                )
                .values(owner=owner, lease_until=until, updated_at=now)
            )
            return bool(result.rowcount == 1)

    async def release_lease(self, owner: str, *, now: datetime) -> None:
        async with self.database.transaction() as conn:
            await conn.execute(
                update(delivery_state)
                .where(delivery_state.c.name == STATE_ROW, delivery_state.c.owner == owner)
                .values(owner=None, lease_until=None, updated_at=now)
            )

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
            PendingDelivery(
                id=row.id,
                event_seq=int(row.event_seq),
                event_id=row.event_id,
                mailbox_id=row.mailbox_id,
                attempts=int(row.attempts),
                window_started_at=row.window_started_at,
                next_attempt_at=row.next_attempt_at,
                event_created_at=row.event_created_at,
                body=event_body(row),
            )
            for row in rows
        ]

    async def record(
        self, conn: AsyncConnection, endpoint_id: str, records: Sequence[AttemptRecord]
    ) -> datetime | None:
        """Store attempts and their deliveries' new state, and the endpoint's failing streak.

        Returns the endpoint's ``last_success_at`` afterwards."""
        if not records:
            return None
        await conn.execute(
            insert(webhook_attempts),
            [
                {
                    "id": new_id("att"),
                    "delivery_id": r.delivery_id,
                    "attempted_at": r.attempted_at,
                    "result": r.result,
                    "status_code": r.status_code,
                    "error": r.error[:MAX_ERROR_CHARS] if r.error else None,
                    "duration_ms": r.duration_ms,
                }
                for r in records
            ],
        )
        d = webhook_deliveries
        await conn.execute(
            update(d)
            .where(d.c.id == bindparam("b_id"))
            .values(
                status=bindparam("b_status"),
                attempts=d.c.attempts + 1,
                next_attempt_at=bindparam("b_next"),
                last_attempt_at=bindparam("b_at"),
                last_status_code=bindparam("b_code"),
                last_error=bindparam("b_error"),
                delivered_at=bindparam("b_delivered"),
            ),
            [
                {
                    "b_id": r.delivery_id,
                    "b_status": r.new_status.value,
                    "b_next": r.next_attempt_at,
                    "b_at": r.attempted_at,
                    "b_code": r.status_code,
                    "b_error": r.error[:MAX_ERROR_CHARS] if r.error else None,
                    "b_delivered": r.attempted_at if r.new_status is DeliveryStatus.DELIVERED else None,
                }
                for r in records
            ],
        )
        # the failing streak: cleared by the last success, started by the first failure after it
        last_success = max((r.attempted_at for r in records if r.result == "success"), default=None)
        failures_after = [
            r.attempted_at
            for r in records
            if r.result != "success" and (last_success is None or r.attempted_at > last_success)
        ]
        e = webhook_endpoints
        values: dict[str, Any] = {}
        if last_success is not None:
            values["last_success_at"] = last_success
            values["failing_since"] = min(failures_after) if failures_after else None
        elif failures_after:
            values["failing_since"] = func.coalesce(e.c.failing_since, min(failures_after))
        if values:
            await conn.execute(update(e).where(e.c.id == endpoint_id).values(**values))
        row = (await conn.execute(select(e.c.last_success_at).where(e.c.id == endpoint_id))).first()
        return row.last_success_at if row is not None else None

    async def accept_completed(self, conn: AsyncConnection, seqs: Iterable[int], *, now: datetime) -> int:
        """Mark accepted the events among ``seqs`` that every consumer owing them has accepted
        (after 2xx answers, or when an endpoint that owed them is gone)."""
        return len(await acceptance.settle(conn, seqs=seqs, now=now))

    # ------------------------------------------------------------------ history and replay

    async def page_deliveries(
        self,
        tenant_id: str,
        endpoint_id: str,
        *,
        before_seq: int | None,
        limit: int,
        status: DeliveryStatus | None,
    ) -> list[Delivery]:
        """Deliveries newest event first, each with every attempt (oldest first)."""
        await self.get(tenant_id, endpoint_id)
        d = webhook_deliveries
        query = select(d).where(d.c.endpoint_id == endpoint_id)
        if status is not None:
            query = query.where(d.c.status == status.value)
        if before_seq is not None:
            query = query.where(d.c.event_seq < before_seq)
        async with self.database.connect() as conn:
            rows = (await conn.execute(query.order_by(d.c.event_seq.desc()).limit(limit))).all()
            ids = [row.id for row in rows]
            attempts: dict[str, list[Attempt]] = {i: [] for i in ids}
            if ids:
                result = await conn.execute(
                    select(webhook_attempts)
                    .where(webhook_attempts.c.delivery_id.in_(ids))
                    .order_by(webhook_attempts.c.attempted_at, webhook_attempts.c.id)
                )
                for a in result:
                    attempts[a.delivery_id].append(
                        Attempt(
                            id=a.id,
                            delivery_id=a.delivery_id,
                            attempted_at=a.attempted_at,
                            result=a.result,
                            status_code=a.status_code,
                            error=a.error,
                            duration_ms=a.duration_ms,
                        )
                    )
        return [
            Delivery(
                id=row.id,
                endpoint_id=row.endpoint_id,
                event_id=row.event_id,
                event_seq=int(row.event_seq),
                event_type=row.event_type,
                mailbox_id=row.mailbox_id,
                status=DeliveryStatus(row.status),
                attempts=int(row.attempts),
                next_attempt_at=row.next_attempt_at,
                last_attempt_at=row.last_attempt_at,
                last_status_code=row.last_status_code,
                last_error=row.last_error,
                created_at=row.created_at,
                delivered_at=row.delivered_at,
                attempt_log=tuple(attempts[row.id]),
            )
            for row in rows
        ]

    async def replay(
        self, tenant_id: str, endpoint_id: str, *, delivery_id: str | None, now: datetime
    ) -> int:
        """Queue dead letters again (all of the endpoint's, or one) with a fresh retry window."""
        await self.get(tenant_id, endpoint_id)
        d = webhook_deliveries
        query = update(d).where(d.c.endpoint_id == endpoint_id, d.c.status == DeliveryStatus.DEAD.value)
        if delivery_id is not None:
            if not plausible_id(delivery_id):
                raise NotFoundError(
                    f"no dead delivery {delivery_id!r} for this endpoint", field="delivery_id"
                )
            query = query.where(d.c.id == delivery_id)
        async with self.database.transaction() as conn:
            result = await conn.execute(
                query.values(status=DeliveryStatus.PENDING.value, window_started_at=now, next_attempt_at=now)
            )
        count = int(result.rowcount or 0)
        if delivery_id is not None and count == 0:
            raise NotFoundError(f"no dead delivery {delivery_id!r} for this endpoint", field="delivery_id")
        return count
