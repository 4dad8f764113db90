"""The webhook fan-out inside the transaction that appends the events (``InlineFanout``), the
order in which inline fan-outs are offered, and the rules of a worker's in-memory queue (its
byte bound, a due-check that does not drop it)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from mailport.bootstrap import Services
from mailport.clock import utc_now
from mailport.delivery import dispatcher as dispatching
from mailport.delivery.outbox import Fanout, PendingDelivery
from mailport.delivery.schemas import WebhookCreate
from mailport.delivery.sender import WebhookSender
from mailport.events import NewEvent, append_many
from mailport.net.guard import HostGuard
from mailport.store.tables import delivery_state, events, webhook_deliveries
from tests.fixtures.webhook_receiver import MakeDispatcher, WebhookReceiver


async def _setup(services: Services, url: str) -> tuple[str, str]:
    tenant, _key = await services.tenants.create_tenant("inline")
    endpoint, _secret = await services.webhooks.create(tenant.id, WebhookCreate(url=url))
    return tenant.id, endpoint.id


def _event(tenant_id: str, mailbox_id: str, n: int) -> NewEvent:
    return NewEvent(tenant_id, mailbox_id, "message.received", {"n": n}, f"inline:{mailbox_id}:{n}")


async def _ready(dispatcher: dispatching.Dispatcher, endpoint_id: str) -> None:
    """The worker exists and the dispatcher knows the fan-out cursor (it fanned out once)."""
    for _ in range(250):
        if endpoint_id in dispatcher._workers and dispatcher._fanout_seq is not None:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the dispatcher did not start fanning out")


async def _started(
    services: Services, receiver: WebhookReceiver, make_dispatcher: MakeDispatcher
) -> tuple[dispatching.Dispatcher, str, str]:
    """A dispatcher that has delivered a first event (so it fans out inline from now on)."""
    tenant_id, endpoint_id = await _setup(services, receiver.url)
    dispatcher = await make_dispatcher()
    await services.events.append(_event(tenant_id, "mbx_a", 0))
    await receiver.wait_for(1)
    await _ready(dispatcher, endpoint_id)
    return dispatcher, tenant_id, endpoint_id


async def _fanned_out(services: Services, seqs: list[int]) -> tuple[list[tuple[int, str]], int | None]:
    async with services.database.connect() as conn:
        rows = (
            await conn.execute(
                select(webhook_deliveries.c.event_seq, webhook_deliveries.c.endpoint_id).where(
                    webhook_deliveries.c.event_seq.in_(seqs)
                )
            )
        ).all()
        cursor = (await conn.execute(select(delivery_state.c.fanout_seq))).scalar_one()
    return sorted((r.event_seq, r.endpoint_id) for r in rows), cursor


async def test_the_deliveries_are_committed_with_the_events_that_made_them(
    delivery_services: Services, webhook_receiver: WebhookReceiver, make_dispatcher: MakeDispatcher
) -> None:
    """When the appending transaction commits, its deliveries and the moved cursor commit with
    it: no fan-out transaction of the dispatcher's comes in between.

    On PostgreSQL the inline fan-out skips (``SKIP LOCKED``) while the dispatcher's own cycle
    holds the state row, and that cycle fans the events out a moment later; the test then
    appends again, and needs one of a few appends to have been fanned out inline."""
    services = delivery_services
    dispatcher, tenant_id, endpoint_id = await _started(services, webhook_receiver, make_dispatcher)
    sent: list[str] = []
    for attempt in range(10):
        batch = [_event(tenant_id, "mbx_a", 3 * attempt + n) for n in (1, 2, 3)]
        async with services.events.transaction() as conn:
            appended = await append_many(conn, batch)
        sent += [e.id for e in appended]
        seqs = [e.seq for e in appended]
        # no await since the commit: only the appending transaction can have written these
        rows, cursor = await _fanned_out(services, seqs)
        if rows or services.database.dialect == "sqlite":
            break
        for _ in range(250):  # the cycle that held the state row fans them out
            if (await _fanned_out(services, seqs))[0]:
                break
            await asyncio.sleep(0.02)
        await webhook_receiver.wait_for(1 + len(sent))
    assert rows == [(seq, endpoint_id) for seq in seqs]
    assert cursor == seqs[-1]
    await webhook_receiver.wait_for(1 + len(sent))
    ids = [r.headers["webhook-id"] for r in webhook_receiver.requests]
    assert ids[1:] == sent  # in order, once each


async def test_a_transaction_that_rolls_back_fans_out_nothing(
    delivery_services: Services, webhook_receiver: WebhookReceiver, make_dispatcher: MakeDispatcher
) -> None:
    services = delivery_services
    dispatcher, tenant_id, endpoint_id = await _started(services, webhook_receiver, make_dispatcher)
    cursor_before = dispatcher._fanout_seq
    with pytest.raises(RuntimeError):
        async with services.events.transaction() as conn:
            await append_many(conn, [_event(tenant_id, "mbx_a", 1)])
            raise RuntimeError("the caller's work failed after the append")
    async with services.database.connect() as conn:
        deliveries = (await conn.execute(select(func.count()).select_from(webhook_deliveries))).scalar_one()
        appended = (await conn.execute(select(func.count()).select_from(events))).scalar_one()
        cursor = (await conn.execute(select(delivery_state.c.fanout_seq))).scalar_one()
    assert (deliveries, appended, cursor) == (1, 1, cursor_before)
    assert dispatcher._fanout_seq == cursor_before
    later = await services.events.append(_event(tenant_id, "mbx_a", 2))
    assert later is not None
    await webhook_receiver.wait_for(2)
    await asyncio.sleep(0.3)
    assert [r.json()["data"]["n"] for r in webhook_receiver.requests] == [0, 2]


@dataclass
class _Recorder:
    """An endpoint worker's two entry points, recorded (the sequencing is the dispatcher's)."""

    offered: list[list[int]] = field(default_factory=list)
    rechecks: int = 0

    def offer(self, items: list[PendingDelivery]) -> None:
        self.offered.append([item.event_seq for item in items])

    def wake(self, *, recheck: bool = False, due: bool = False) -> None:
        self.rechecks += recheck


def _fanout(endpoint_id: str, seqs: list[int]) -> Fanout:
    now = utc_now()
    items = [PendingDelivery(f"dlv_{s}", s, f"evt_{s}", "mbx_a", 0, now, now, now, b"{}") for s in seqs]
    return Fanout(len(seqs), {endpoint_id: items}, through=seqs[-1])


async def test_inline_fanouts_reported_out_of_order_are_offered_in_order(delivery_services: Services) -> None:
    """On PostgreSQL two appending transactions may resume in either order after their commits:
    the later one's deliveries wait until the earlier one's are offered."""
    dispatcher = dispatching.Dispatcher(
        repository=delivery_services.webhooks.repository,
        event_log=delivery_services.events,
        guard=HostGuard(allow_private=True),
    )
    worker = _Recorder()
    dispatcher._workers = {"ep": worker}  # type: ignore[dict-item]
    dispatcher._fanout_seq = 10
    dispatcher.committed(_fanout("ep", [13, 14]))
    assert worker.offered == []  # 11-12 are not reported yet
    dispatcher.committed(_fanout("ep", [11, 12]))
    assert worker.offered == [[11, 12], [13, 14]]
    assert dispatcher._fanout_seq == 14
    # one the cursor already went past (the dispatcher's own fan-out read on): read back
    dispatcher.committed(_fanout("ep", [5, 6]))
    assert worker.offered == [[11, 12], [13, 14]] and worker.rechecks == 1
    # a gap that never fills: give up, read everything back, learn the cursor again
    for start in range(100, 100 + 2 * (dispatching.EARLY_LIMIT + 1), 2):
        dispatcher.committed(_fanout("ep", [start + 1, start + 2]))
    assert dispatcher._fanout_seq is None and not dispatcher._early and worker.rechecks == 2


async def _worker(services: Services, url: str) -> dispatching.EndpointWorker:
    tenant_id, _endpoint_id = await _setup(services, url)
    [endpoint] = await services.webhooks.repository.endpoints.active_endpoints()

    async def fence(_conn: object) -> None:
        return None

    return dispatching.EndpointWorker(
        endpoint,
        repository=services.webhooks.repository,
        event_log=services.events,
        sender=WebhookSender(HostGuard(allow_private=True)),
        policy=dispatching.RetryPolicy(),
        clock=utc_now,
        rand=lambda: 0.5,
        concurrency=1,
        batch=10,
        fence=fence,  # type: ignore[arg-type]
        queue_bytes=100,
    )


def _item(seq: int, size: int) -> PendingDelivery:
    now = utc_now()
    return PendingDelivery(f"dlv_{seq}", seq, f"evt_{seq}", "mbx_a", 0, now, now, now, b"x" * size)


async def test_a_clean_workers_queue_is_bounded_by_the_bytes_of_its_bodies(
    delivery_services: Services, webhook_receiver: WebhookReceiver
) -> None:
    worker = await _worker(delivery_services, webhook_receiver.url)
    worker._clean = True
    worker.offer([_item(1, 40), _item(2, 40)])
    assert [i.event_seq for i in worker._queue] == [1, 2] and not worker._missed
    worker.offer([_item(3, 40)])  # 120 bytes > 100: left in the database, read back later
    assert [i.event_seq for i in worker._queue] == [1, 2] and worker._missed
    worker._forget_queue()
    assert worker._queued_bytes == 0


async def test_a_due_check_lets_a_clean_workers_queue_go_out_first(
    delivery_services: Services, webhook_receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deliveries a due-check finds during a backlog are mostly the worker's own queue: it
    reads the database once that queue is out, or after the grace period, not at once."""
    worker = await _worker(delivery_services, webhook_receiver.url)
    worker.wake(due=True)  # not clean: read now
    assert worker._recheck
    worker._recheck = False
    worker._clean = True
    worker.offer([_item(1, 10)])
    worker.wake(due=True)
    assert not worker._recheck and worker._due_since is not None
    monkeypatch.setattr(dispatching, "DUE_GRACE", 0.0)
    worker.wake(due=True)  # the grace is over
    assert worker._recheck
    worker._recheck = False
    worker._due_since = time.monotonic() - timedelta(seconds=1).total_seconds()
    worker._queue.clear()
    worker._queued_bytes = 0
    next_due = await worker._drain()  # the queue is out: the held due-check reads the database now
    assert next_due is None and not worker._recheck and worker._due_since is None
    worker.wake(recheck=True)  # a recheck (committed deliveries it may not hold) is never held
    assert worker._recheck
