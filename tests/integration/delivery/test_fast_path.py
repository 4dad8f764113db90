"""The dispatcher's in-memory fast path (the fan-out hands new deliveries to a worker whose
queue is otherwise empty) keeps every guarantee of the database path: order per mailbox when a
delivery fails, nothing recorded without the lease, and a send whose result was never written
goes out again with the same ``webhook-id``. (A kill -9 between send and record: see
``test_restart.py``, which runs ``mailport serve`` and so this same path.)"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import timedelta

from sqlalchemy import func, select

from mailport import leases
from mailport.bootstrap import Services
from mailport.clock import utc_now
from mailport.delivery.schemas import WebhookCreate
from mailport.events import NewEvent, append_many
from mailport.store.tables import webhook_attempts, webhook_deliveries
from tests.fixtures.webhook_receiver import MakeDispatcher, WebhookReceiver


async def _setup(services: Services, url: str) -> tuple[str, str]:
    tenant, _key = await services.tenants.create_tenant("fast")
    endpoint, _secret = await services.webhooks.create(tenant.id, WebhookCreate(url=url))
    return tenant.id, endpoint.id


def _event(tenant_id: str, mailbox_id: str, n: int, marker: str = "") -> NewEvent:
    payload = {"n": n, "marker": marker}
    return NewEvent(tenant_id, mailbox_id, "message.received", payload, f"fast:{mailbox_id}:{n}")


async def _append(services: Services, tenant_id: str, mailbox_id: str, n: int, marker: str = "") -> str:
    got = await services.events.append(_event(tenant_id, mailbox_id, n, marker))
    assert got is not None
    return got.id


async def _worker_ready(dispatcher: object, endpoint_id: str) -> None:
    for _ in range(250):
        if endpoint_id in dispatcher._workers:  # type: ignore[attr-defined]
            return
        await asyncio.sleep(0.02)
    raise AssertionError("no worker for the endpoint")


async def _all_delivered(services: Services) -> None:
    for _ in range(750):
        async with services.database.connect() as conn:
            query = select(func.count()).where(webhook_deliveries.c.status != "delivered")
            if (await conn.execute(query)).scalar_one() == 0:
                return
        await asyncio.sleep(0.02)
    raise AssertionError("not every delivery was delivered")


async def test_a_failing_delivery_on_the_fast_path_holds_back_its_mailbox_only(
    delivery_services: Services, webhook_receiver: WebhookReceiver, make_dispatcher: MakeDispatcher
) -> None:
    services = delivery_services
    tenant_id, _endpoint_id = await _setup(services, webhook_receiver.url)
    await make_dispatcher()
    await _append(services, tenant_id, "mbx_a", 0)
    await webhook_receiver.wait_for(1)  # delivered: the worker now takes new deliveries from memory
    webhook_receiver.fail_marker = b"poison"
    sent = {"mbx_a": [], "mbx_b": []}  # type: dict[str, list[str]]
    for n in range(1, 7):
        sent["mbx_a"].append(await _append(services, tenant_id, "mbx_a", n, "poison" if n == 2 else ""))
        sent["mbx_b"].append(await _append(services, tenant_id, "mbx_b", n))
    await webhook_receiver.wait_for(1 + 1 + 6)  # a0, a1, and all of b
    await asyncio.sleep(0.5)  # the poison is retried meanwhile; nothing after it in mbx_a goes out
    delivered_a = [
        r.headers["webhook-id"] for r in webhook_receiver.succeeded() if r.json()["mailbox_id"] == "mbx_a"
    ]
    assert delivered_a[1:] == sent["mbx_a"][:1]
    failed = [r for r in webhook_receiver.requests if r.status == 500]
    assert failed and {r.headers["webhook-id"] for r in failed} == {sent["mbx_a"][1]}

    webhook_receiver.fail_marker = None  # the receiver recovers: the rest follows, in order
    await webhook_receiver.wait_for(1 + 6 + 6, timeout=15)
    await asyncio.sleep(0.3)
    got: dict[str, list[str]] = defaultdict(list)
    for r in webhook_receiver.succeeded():
        got[r.json()["mailbox_id"]].append(r.headers["webhook-id"])
    assert got["mbx_a"][1:] == sent["mbx_a"] and got["mbx_b"] == sent["mbx_b"]


async def test_sends_after_the_lease_was_lost_are_sent_again_by_the_new_holder_with_the_same_ids(
    delivery_services: Services, webhook_receiver: WebhookReceiver, make_dispatcher: MakeDispatcher
) -> None:
    services = delivery_services
    tenant_id, endpoint_id = await _setup(services, webhook_receiver.url)
    first = await make_dispatcher(lease_ttl=600.0)  # renews every 200 s: not during this test
    await _worker_ready(first, endpoint_id)
    await _append(services, tenant_id, "mbx_1", 0)
    await webhook_receiver.wait_for(1)
    await _all_delivered(services)  # recorded under the lease; the fast path is on
    later = utc_now() + timedelta(hours=1)  # another process took the lease meanwhile
    async with services.database.transaction() as conn:
        taken = await leases.acquire(conn, leases.DISPATCHER, "host-b:2:bbbb", now=later, until=later)
    assert taken is not None
    ids = [await _append(services, tenant_id, f"mbx_{n % 3}", n) for n in range(1, 31)]
    await webhook_receiver.wait_for(2)  # at least one went out before the refused record
    await first.stop(timeout=2.0)
    async with services.database.connect() as conn:
        attempts = (await conn.execute(select(func.count()).select_from(webhook_attempts))).scalar_one()
    assert attempts == 1  # only the delivery made under the lease
    async with services.database.transaction() as conn:  # the other holder goes away
        await leases.release(conn, leases.DISPATCHER, "host-b:2:bbbb")
    seen_before = {r.headers["webhook-id"] for r in webhook_receiver.requests}
    await make_dispatcher()
    await _all_delivered(services)
    received = [r.headers["webhook-id"] for r in webhook_receiver.succeeded()]
    assert set(ids) <= set(received)
    # what the first dispatcher sent without recording went out again, with the same ids (the
    # first one may have sent some more than once: its replaced worker tries until the lease's
    # renewal tells it the lease is gone)
    resent = [i for i in ids if i in seen_before]
    assert resent and all(received.count(i) >= 2 for i in resent)
    async with services.database.connect() as conn:
        attempts = (await conn.execute(select(func.count()).select_from(webhook_attempts))).scalar_one()
    assert attempts == 1 + len(ids)  # recorded once each, by the lease's holder


async def test_a_queue_that_overflows_goes_out_first_and_the_rest_is_read_back_once_in_order(
    delivery_services: Services, webhook_receiver: WebhookReceiver, make_dispatcher: MakeDispatcher
) -> None:
    """Offers beyond the queue's bound (``queue_bytes`` of bodies) are left in the database:
    the worker sends what it holds, then reads the rest back; nothing is sent twice and each
    mailbox keeps its order."""
    services = delivery_services
    tenant_id, endpoint_id = await _setup(services, webhook_receiver.url)
    # bodies here are ~230 bytes: about 8 deliveries queued in memory
    dispatcher = await make_dispatcher(batch=2, queue_bytes=1800)
    outbox = dispatcher._repository.outbox  # type: ignore[attr-defined]
    reads: list[int] = []
    read = outbox.pending

    async def counted(endpoint: str, *, limit: int) -> list[object]:
        got = await read(endpoint, limit=limit)
        reads.append(len(got))
        return got

    outbox.pending = counted
    await _worker_ready(dispatcher, endpoint_id)
    await _append(services, tenant_id, "mbx_a", 0)
    await webhook_receiver.wait_for(1)  # the worker is clean: it now takes offers
    reads_before = len(reads)
    webhook_receiver.delay_seconds = 0.02
    # all 40 in one transaction: its fan-out offers them at once, ~9 KB of bodies against the
    # queue's 1.8 KB, however fast or slow the machine (appended one by one, a loaded CI run
    # once appended them no faster than the sends went out, and nothing overflowed)
    items = [_event(tenant_id, mailbox, n) for n in range(1, 21) for mailbox in ("mbx_a", "mbx_b")]
    async with services.events.transaction() as conn:
        appended = await append_many(conn, items)
    assert len(appended) == 40
    sent: dict[str, list[str]] = {"mbx_a": [], "mbx_b": []}
    for event in appended:
        sent[event.mailbox_id or ""].append(event.id)
    await webhook_receiver.wait_for(41, timeout=20)
    await _all_delivered(services)
    ids = [r.headers["webhook-id"] for r in webhook_receiver.requests]
    assert len(ids) == len(set(ids)) == 41  # every event once: the kept queue was not sent again
    got: dict[str, list[str]] = defaultdict(list)
    for r in webhook_receiver.requests:
        got[r.json()["mailbox_id"]].append(r.headers["webhook-id"])
    assert got["mbx_a"][1:] == sent["mbx_a"] and got["mbx_b"] == sent["mbx_b"]
    assert any(reads[reads_before:]), "the overflow was read back from the database"


async def test_the_result_of_a_lone_event_on_the_fast_path_is_written_without_a_further_event(
    delivery_services: Services, webhook_receiver: WebhookReceiver, make_dispatcher: MakeDispatcher
) -> None:
    """The last round before the queue runs empty writes its results in the background (the
    next offer need not wait for that write), and they are written all the same."""
    services = delivery_services
    tenant_id, endpoint_id = await _setup(services, webhook_receiver.url)
    dispatcher = await make_dispatcher()
    await _worker_ready(dispatcher, endpoint_id)
    await _append(services, tenant_id, "mbx_a", 0)
    await webhook_receiver.wait_for(1)  # the worker is clean: the next event goes from memory
    await _all_delivered(services)
    await _append(services, tenant_id, "mbx_a", 1)
    await webhook_receiver.wait_for(2)
    attempts = 0
    for _ in range(100):  # 2 s: well within the worker's idle poll (5 s)
        async with services.database.connect() as conn:
            attempts = (await conn.execute(select(func.count()).select_from(webhook_attempts))).scalar_one()
        if attempts == 2:
            break
        await asyncio.sleep(0.02)
    assert attempts == 2 and len(webhook_receiver.requests) == 2
    await _all_delivered(services)
