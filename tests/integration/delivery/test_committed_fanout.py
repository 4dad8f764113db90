"""The fan-out of events this process just committed (:meth:`Outbox.fanout_committed`, issue 21's
latency work) does what the reading fan-out does, or nothing: the same deliveries and request
bodies, byte for byte; and when anything it cannot see may have changed (the cursor moved, an
endpoint was added or changed, an event is missing from what it holds), it changes nothing and
leaves the work to the reading fan-out in the same transaction."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from mailport.bootstrap import Services
from mailport.clock import utc_now
from mailport.delivery.models import WebhookEndpoint
from mailport.delivery.outbox import STATE_ROW, Outbox
from mailport.delivery.schemas import WebhookCreate
from mailport.events import CommittedEvent, NewEvent
from mailport.store.tables import delivery_state, webhook_deliveries, webhook_endpoints


async def _setup(services: Services) -> tuple[str, Outbox, list[WebhookEndpoint]]:
    """A tenant with one endpoint; the cursor moved past nothing yet by one reading fan-out
    (which also learns the endpoints' start)."""
    tenant, _key = await services.tenants.create_tenant("committed")
    await services.webhooks.create(tenant.id, WebhookCreate(url="http://127.0.0.1:9/hook"))
    outbox = services.webhooks.repository.outbox
    endpoints = await services.webhooks.repository.endpoints.active_endpoints()
    await _append(services, tenant.id, "warm-up")
    async with services.events.transaction() as conn:
        first = await outbox.fanout(conn, endpoints, batch=100, now=utc_now())
    assert first.count == 1 and not first.stale
    return tenant.id, outbox, endpoints


async def _append(services: Services, tenant_id: str, key: str, mailbox_id: str = "mbx_c") -> None:
    payload = {"subject": "Grüße \u2603", "n": key, "nested": {"a": [1, 2.5, None]}}
    got = await services.events.append(
        NewEvent(tenant_id, mailbox_id, "message.received", payload, f"committed:{key}")
    )
    assert got is not None


async def _three_committed(
    services: Services, prefix: str
) -> tuple[str, Outbox, list[WebhookEndpoint], list[CommittedEvent], int]:
    """:func:`_setup`, then three events committed (two mailboxes) and taken from the log, and
    the fan-out cursor right before them."""
    services.events.keep_committed(100)
    tenant_id, outbox, endpoints = await _setup(services)
    services.events.take_committed()
    for n in range(3):
        await _append(services, tenant_id, f"{prefix}{n}", mailbox_id=f"mbx_{n % 2}")
    committed = services.events.take_committed()
    return tenant_id, outbox, endpoints, committed, await _cursor(services)


async def _cursor(services: Services) -> int:
    async with services.database.connect() as conn:
        query = select(delivery_state.c.fanout_seq).where(delivery_state.c.name == STATE_ROW)
        return int((await conn.execute(query)).scalar_one())


async def _deliveries(services: Services) -> int:
    async with services.database.connect() as conn:
        return len((await conn.execute(select(webhook_deliveries.c.id))).all())


async def test_the_deliveries_and_their_bodies_are_those_the_reading_fan_out_makes(
    delivery_services: Services,
) -> None:
    services = delivery_services
    _tenant_id, outbox, endpoints, committed, after = await _three_committed(services, "e")
    assert [e.seq for e in committed] == list(range(after + 1, after + 4))
    async with services.events.transaction() as conn:
        done = await outbox.fanout_committed(conn, endpoints, committed, after=after, now=utc_now())
    assert done is not None and done.count == 3 and done.through == committed[-1].seq
    assert await _cursor(services) == committed[-1].seq
    [(endpoint_id, queued)] = done.queued.items()
    read_back = await outbox.pending(endpoint_id, limit=100)
    read_back = [p for p in read_back if p.event_seq > after]
    assert [(p.id, p.event_seq, p.event_id, p.mailbox_id) for p in queued] == sorted(
        [(p.id, p.event_seq, p.event_id, p.mailbox_id) for p in read_back], key=lambda t: t[1]
    )
    by_id = {p.id: p for p in read_back}
    for item in queued:
        assert item.body == by_id[item.id].body  # the same bytes: the same signature on a retry
        assert item.event_created_at == by_id[item.id].event_created_at


async def test_nothing_changes_when_the_cursor_moved_an_endpoint_changed_or_an_event_is_missing(
    delivery_services: Services,
) -> None:
    services = delivery_services
    tenant_id, outbox, endpoints, committed, after = await _three_committed(services, "m")
    before = await _deliveries(services)

    async def attempt(events: list[CommittedEvent], at: int, held: list[WebhookEndpoint]) -> None:
        async with services.events.transaction() as conn:
            done = await outbox.fanout_committed(conn, held, events, after=at, now=utc_now())
        assert done is None
        assert await _cursor(services) == after
        assert await _deliveries(services) == before

    await attempt(committed, after - 1, endpoints)  # the cursor is not where this process left it
    await attempt([committed[0], committed[2]], after, endpoints)  # a gap: an event not held
    await attempt(committed[1:], after, endpoints)  # does not start right after the cursor
    async with services.database.transaction() as conn:  # an endpoint changed (another process)
        await conn.execute(update(webhook_endpoints).values(updated_at=utc_now() + timedelta(seconds=1)))
    await attempt(committed, after, endpoints)
    held = await services.webhooks.repository.endpoints.active_endpoints()
    await services.webhooks.create(tenant_id, WebhookCreate(url="http://127.0.0.1:9/other"))
    await attempt(committed, after, held)  # an endpoint was added
    fresh = await services.webhooks.repository.endpoints.active_endpoints()
    await attempt(committed, after, fresh)  # not yet seen by a reading fan-out: no start known

    # the reading fan-out (what the dispatcher falls back to) then does it all
    fresh = await services.webhooks.repository.endpoints.active_endpoints()
    async with services.events.transaction() as conn:
        done = await outbox.fanout(conn, fresh, batch=100, now=utc_now())
    assert done.count == 3 and done.through == committed[-1].seq


async def test_a_rolled_back_transaction_leaves_no_committed_events(delivery_services: Services) -> None:
    services = delivery_services
    services.events.keep_committed(100)
    tenant, _key = await services.tenants.create_tenant("rolled-back")
    services.events.take_committed()

    class Abort(Exception):
        pass

    try:
        async with services.events.transaction() as conn:
            from mailport.events import append_many

            got = await append_many(
                conn, [NewEvent(tenant.id, "mbx_r", "message.received", {}, "rolled-back:1")]
            )
            assert got
            raise Abort
    except Abort:
        pass
    assert services.events.take_committed() == []
    await _append(services, tenant.id, "after")  # the next transaction on the pooled connection
    assert [e.idempotency_key for e in services.events.take_committed()] == ["committed:after"]
