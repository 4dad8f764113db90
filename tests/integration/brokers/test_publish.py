"""Each broker against its real local server: the event log arrives in seq order with its
idempotency keys and the webhook body; and through an outage (a relay cut, events appended,
the relay restored) nothing is lost and the order holds. JetStream's duplicate window also
removes what was published twice."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from mailport.bootstrap import Services
from mailport.brokers import Publisher, build_publisher
from mailport.event_loop import loop_name
from mailport.events import Event, NewEvent
from mailport.metrics import BROKER_FAILURES
from mailport.retry import RetryPolicy
from tests.fixtures.relay import TcpRelay
from tests.integration.brokers.conftest import NatsSide, Received, Side

FAST = RetryPolicy(first_delay=0.1, multiplier=2.0, max_delay=0.5, jitter=0.5)
MakePublisher = Callable[[str], Awaitable[Publisher]]


@pytest.fixture
async def make_publisher(services: Services) -> AsyncIterator[MakePublisher]:
    started: list[Publisher] = []

    async def make(url: str) -> Publisher:
        publisher = build_publisher(
            services, url, poll_interval=0.1, retry=FAST, timeout=2.0, batch=7, lease_ttl=30.0
        )
        publisher.start()
        started.append(publisher)
        return publisher

    yield make
    for publisher in started:
        await publisher.stop()


async def _append(services: Services, tenant_id: str, tag: str, count: int) -> list[Event]:
    appended = []
    for n in range(count):
        mailbox = "mbx_a" if n % 3 else "mbx_b"
        item = NewEvent(tenant_id, mailbox, "message.received", {"n": n, "tag": tag}, f"{tag}:{n}")
        event = await services.events.append(item)
        assert event is not None
        appended.append(event)
    return appended


async def _wait_for(side: Side, ids: list[str], timeout: float = 20.0) -> list[Received]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        got = await side.received()
        if set(ids) <= {r.id for r in got} or loop.time() > deadline:
            return got
        await asyncio.sleep(0.05)


def _first_seen(got: list[Received]) -> list[str]:
    seen: dict[str, None] = {}
    for r in got:
        seen.setdefault(r.id, None)
    return list(seen)


async def test_the_event_log_arrives_in_order_with_its_keys(
    services: Services, side: Side, make_publisher: MakePublisher, request: pytest.FixtureRequest
) -> None:
    tenant, _key = await services.tenants.create_tenant("brokers")
    before = await _append(services, tenant.id, "before", 10)  # appended before it started
    await make_publisher(side.url(side.port))
    after = await _append(services, tenant.id, "after", 10)
    events = before + after

    got = await _wait_for(side, [e.id for e in events])
    assert [r.id for r in got] == [e.id for e in events]  # seq order, each once
    expected = "uvloop" if "[uvloop" in request.node.name else "asyncio"  # (conftest: both run)
    assert loop_name(asyncio.get_running_loop()) == expected
    assert [r.seq for r in got] == [e.seq for e in events]
    assert [r.idempotency_key for r in got] == [e.idempotency_key for e in events]
    assert [r.mailbox_id for r in got] == [e.mailbox_id for e in events]
    assert [r.body for r in got] == [e.to_dict() for e in events]  # the webhook body


async def test_broker_down_then_up_loses_nothing(
    services: Services, side: Side, make_publisher: MakePublisher
) -> None:
    tenant, _key = await services.tenants.create_tenant("outage")
    relay = await TcpRelay(side.port).up()
    try:
        publisher = await make_publisher(side.url(relay.port))
        first = await _append(services, tenant.id, "first", 5)
        await _wait_for(side, [e.id for e in first])
        failures_before = BROKER_FAILURES.labels(broker=publisher.target.name)._value.get()

        await relay.down()
        during = await _append(services, tenant.id, "during", 20)
        for _ in range(200):  # it noticed the outage and is retrying
            if publisher.last_error is not None:
                break
            await asyncio.sleep(0.05)
        assert publisher.last_error is not None
        assert "guest" not in publisher.last_error  # no credentials in what it reports
        await asyncio.sleep(0.5)  # a few failed attempts
        await relay.up()
        after = await _append(services, tenant.id, "after", 5)

        events = first + during + after
        got = await _wait_for(side, [e.id for e in events])
    finally:
        await relay.down()
    assert BROKER_FAILURES.labels(broker=publisher.target.name)._value.get() > failures_before
    assert _first_seen(got) == [e.id for e in events]  # nothing lost, nothing out of order
    for mailbox in ("mbx_a", "mbx_b"):
        mine = [r.seq for r in got if r.mailbox_id == mailbox]
        firsts = list(dict.fromkeys(mine))
        assert firsts == sorted(firsts)
    if isinstance(side, NatsSide):  # Nats-Msg-Id: JetStream dropped what was published again
        assert [r.id for r in got] == [e.id for e in events]
    assert publisher.last_error is None
