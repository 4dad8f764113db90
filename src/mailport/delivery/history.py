"""The delivery history of a webhook endpoint: every delivery with every attempt, and the
replay of dead letters (``/v1/webhooks/{id}/deliveries`` and ``…/replay``).

Why a module of its own: these are the tenant's reads of what the outbox
(:mod:`mailport.delivery.outbox`) did, scoped by the endpoint's tenant; a replay puts dead
letters back into the outbox with a fresh retry window.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update

from mailport.delivery.endpoints import EndpointRepository
from mailport.delivery.models import Attempt, Delivery, DeliveryStatus
from mailport.errors import NotFoundError
from mailport.store.database import Database
from mailport.store.ids import plausible_id
from mailport.store.rows import from_row
from mailport.store.tables import webhook_attempts, webhook_deliveries


class DeliveryHistory:
    def __init__(self, database: Database, endpoints: EndpointRepository) -> None:
        self.database = database
        self._endpoints = endpoints

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
        await self._endpoints.get(tenant_id, endpoint_id)
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
                    attempts[a.delivery_id].append(from_row(Attempt, a))
        return [
            from_row(
                Delivery,
                row,
                event_seq=int(row.event_seq),
                status=DeliveryStatus(row.status),
                attempts=int(row.attempts),
                attempt_log=tuple(attempts[row.id]),
            )
            for row in rows
        ]

    async def replay(
        self, tenant_id: str, endpoint_id: str, *, delivery_id: str | None, now: datetime
    ) -> int:
        """Queue dead letters again (all of the endpoint's, or one) with a fresh retry window."""
        await self._endpoints.get(tenant_id, endpoint_id)
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
