"""Retention under acceptance per consumer, on SQLite and PostgreSQL: an event goes only once
every consumer owing it has accepted it; one owed to a slower consumer, to a webhook endpoint,
or to nobody (unclaimed) stays; and pull cursors keep working across purged events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mailport.bootstrap import Services
from mailport.delivery.schemas import WebhookCreate
from mailport.events import Event, NewEvent
from mailport.store.retention import purge

LATER = datetime.now(UTC) + timedelta(days=31)  # acceptances made now are then past 30 days


async def _append(services: Services, tenant_id: str, n: int, mailbox_id: str = "mbx_1") -> Event:
    got = await services.events.append(
        NewEvent(tenant_id, mailbox_id, "message.received", {"n": n}, f"ret:{tenant_id}:{n}")
    )
    assert got is not None
    return got


async def _remaining(services: Services, *events: Event) -> list[bool]:
    return [await services.events.get(e.id) is not None for e in events]


async def test_an_event_is_purged_only_when_every_consumer_owing_it_accepted_it(
    delivery_services: Services,
) -> None:
    services = delivery_services
    tenant, _ = await services.tenants.create_tenant("retained")
    lonely, _ = await services.tenants.create_tenant("no-consumer")
    pull = services.webhooks
    await pull.events_after(tenant.id, after=None, limit=10, consumer="fast")
    await pull.events_after(tenant.id, after=None, limit=10, consumer="slow")
    first = [await _append(services, tenant.id, n) for n in range(3)]
    unclaimed = await _append(services, lonely.id, 9)
    await services.webhooks.create(  # owes what comes next (a dead address: never 2xx)
        tenant.id, WebhookCreate(url="https://127.0.0.1:9/hook", events=["message.received"])
    )
    owed_to_webhook = await _append(services, tenant.id, 10)
    newest = await _append(services, tenant.id, 11, mailbox_id="mbx_2")
    await pull.acknowledge(tenant.id, through=str(newest.seq), consumer="fast")
    await pull.acknowledge(tenant.id, through=str(first[1].seq), consumer="slow")

    report = await purge(services.database, now=LATER, retention_days=30)
    assert report.events == 2
    assert await _remaining(services, *first) == [False, False, True]  # the slow consumer owes #3
    assert await _remaining(services, unclaimed, owed_to_webhook, newest) == [True, True, True]

    # the slow reader goes on from its cursor, which points at a purged event
    items, _ = await pull.events_after(tenant.id, after=str(first[1].seq), limit=10, consumer="slow")
    assert [e.id for e in items] == [first[2].id, owed_to_webhook.id, newest.id]
    await pull.acknowledge(tenant.id, through=str(newest.seq), consumer="slow")
    report = await purge(services.database, now=LATER, retention_days=30)
    assert report.events == 1  # #3; the webhook's event, the unclaimed one and the newest stay
    assert await _remaining(services, first[2], unclaimed, owed_to_webhook, newest) == [
        False,
        True,
        True,
        True,
    ]
