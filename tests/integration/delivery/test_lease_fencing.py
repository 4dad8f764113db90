"""The dispatcher records attempts only while it holds its lease: a dispatcher that lost the lease
to another process (after a pause longer than its expiry) sends what it had begun, records
nothing, and its worker ends; the deliveries stay pending for the new holder."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import func, select

from mailport import leases
from mailport.bootstrap import Services
from mailport.clock import utc_now
from mailport.delivery.schemas import WebhookCreate
from mailport.events import NewEvent
from mailport.store.tables import webhook_attempts, webhook_deliveries
from tests.fixtures.webhook_receiver import MakeDispatcher, WebhookReceiver


async def test_a_dispatcher_that_lost_its_lease_records_no_attempt(
    delivery_services: Services, webhook_receiver: WebhookReceiver, make_dispatcher: MakeDispatcher
) -> None:
    services = delivery_services
    tenant, _key = await services.tenants.create_tenant("fenced")
    endpoint, _secret = await services.webhooks.create(tenant.id, WebhookCreate(url=webhook_receiver.url))
    dispatcher = await make_dispatcher(lease_ttl=600.0)  # renews every 200 s: not during this test
    for _ in range(200):
        if endpoint.id in dispatcher._workers:
            break
        await asyncio.sleep(0.02)
    worker = dispatcher._workers[endpoint.id]
    later = utc_now() + timedelta(hours=1)  # another process, once this one's lease ran out
    async with services.database.transaction() as conn:
        taken = await leases.acquire(conn, leases.DISPATCHER, "host-b:2:bbbb", now=later, until=later)
    assert taken is not None and taken.token == 2

    await services.events.append(NewEvent(tenant.id, "mbx_1", "message.received", {"n": 1}, "fenced:1"))
    await webhook_receiver.wait_for(1, timeout=5.0)  # it still believed it held the lease
    assert worker.task is not None
    await asyncio.wait_for(asyncio.shield(worker.task), timeout=5.0)  # refused, it ended
    async with services.database.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(webhook_attempts))).scalar_one() == 0
        statuses = (
            await conn.execute(select(webhook_deliveries.c.status, webhook_deliveries.c.attempts))
        ).all()
    assert [tuple(row) for row in statuses] == [("pending", 0)]
