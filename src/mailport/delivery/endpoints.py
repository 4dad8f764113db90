"""Webhook endpoint rows: what a tenant creates, lists, reads, changes, deletes, and what the
dispatcher disables.

Why a module of its own: these are the tenant-facing records (another tenant's row is "not
found"); their deliveries live in :mod:`mailport.delivery.outbox` and their history in
:mod:`mailport.delivery.history`. The secret stays sealed on the
:class:`~mailport.delivery.models.WebhookEndpoint` (:class:`~mailport.crypto.Sealed`): a listing
decrypts nothing; the dispatcher decrypts it when it signs. Statements that run inside a caller's
transaction take the connection (``conn``) so that disabling an endpoint, dead-lettering its
queue and appending the ``webhook.disabled`` event commit together.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from mailport import events as event_log
from mailport.crypto import Cipher, Sealed, Secret
from mailport.delivery.models import WEBHOOK_DISABLED, DeliveryStatus, EndpointStatus, WebhookEndpoint
from mailport.delivery.outbox import queue_waiting
from mailport.errors import NotFoundError
from mailport.store.database import Database
from mailport.store.ids import new_id, plausible_id
from mailport.store.rows import from_row
from mailport.store.tables import webhook_deliveries, webhook_endpoints


def _events_text(types: Sequence[str] | None) -> str | None:
    return " ".join(types) if types is not None else None


class EndpointRepository:
    def __init__(self, database: Database, key_ring: Cipher) -> None:
        self.database = database
        self._key_ring = key_ring

    def _endpoint(self, row: Any) -> WebhookEndpoint:
        return from_row(
            WebhookEndpoint,
            row,
            events=tuple(row.events.split()) if row.events is not None else None,
            secret=Sealed(row.secret_enc, self._key_ring),
            status=EndpointStatus(row.status),
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
        batch_size: int = 1,
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
                    batch_size=batch_size,
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
                await queue_waiting(conn, endpoint, through=start_seq, now=now)
        return await self.get(tenant_id, endpoint_id)

    async def backfill(self, tenant_id: str, endpoint_id: str, *, now: datetime) -> int:
        """Queue for the endpoint the events waiting for nobody but the pull API (see
        :func:`mailport.events.acceptance.pull_owned_waiting`); returns how many."""
        endpoint = await self.get(tenant_id, endpoint_id)
        async with self.database.transaction() as conn:
            through = await event_log.last_seq(conn)
            return await queue_waiting(conn, endpoint, through=through, now=now)

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
