"""A member registers, heartbeats, registers again when its row vanished, drains, deregisters;
others see it join and leave within a second on PostgreSQL (NOTIFY)."""

from __future__ import annotations

import asyncio
import time

from mailport.bootstrap import Services
from mailport.fleet import registry
from mailport.fleet.listen import Listener
from mailport.fleet.membership import Membership
from tests.integration.fleet.conftest import postgres_only


async def test_register_heartbeat_reregister_drain_deregister(services: Services) -> None:
    database = services.database
    one = Membership(database, "host-a:1:a", weight=2.0, lease_seconds=3, stats=lambda: {"mailboxes": 7})
    await one.start()
    try:
        assert one.active_weights() == {"host-a:1:a": 2.0}
        await one.beat()
        async with database.connect() as conn:
            (row,) = await registry.everyone(conn)
        assert row.stats == {"mailboxes": 7} and row.roles == (registry.WATCHERS,)

        async with database.transaction() as conn:  # deleted as dead by someone else
            await registry.deregister(conn, "host-a:1:a")
        await one.beat()
        async with database.connect() as conn:
            assert [w.id for w in await registry.everyone(conn)] == ["host-a:1:a"]

        await one.drain()
        assert one.active_weights() == {} and one.weights() == {"host-a:1:a": 2.0}
        await one.beat()  # a heartbeat keeps it draining
        async with database.connect() as conn:
            (row,) = await registry.everyone(conn)
        assert row.state == registry.DRAINING
    finally:
        await one.stop()
    async with database.connect() as conn:
        assert await registry.everyone(conn) == []


@postgres_only
async def test_a_join_and_a_leave_are_seen_within_a_second(services: Services) -> None:
    listener = Listener(services.database)
    watching = Membership(services.database, "host-a:1:a", refresh_seconds=30, listener=listener)
    changed = asyncio.Event()
    watching.on_change(changed.set)
    listener.start()
    await asyncio.wait_for(listener.connected.wait(), 5)
    await watching.start()
    other = Membership(services.database, "host-b:2:b", refresh_seconds=30)
    try:
        changed.clear()
        started = time.monotonic()
        await other.start()
        await asyncio.wait_for(changed.wait(), 2)
        assert time.monotonic() - started < 1.0
        assert set(watching.active_weights()) == {"host-a:1:a", "host-b:2:b"}
        changed.clear()
        await other.stop()
        await asyncio.wait_for(changed.wait(), 2)
        assert set(watching.active_weights()) == {"host-a:1:a"}
    finally:
        await other.stop()
        await watching.stop()
        await listener.stop()


async def test_an_expired_member_drops_out_at_the_next_refresh(services: Services) -> None:
    watching = Membership(services.database, "host-a:1:a", lease_seconds=30, refresh_seconds=0.2)
    dying = Membership(services.database, "host-b:2:b", lease_seconds=3)
    await watching.start()
    await dying.start()
    try:
        await dying.stop(deregister=False)  # no more heartbeats; its row runs out in 3 s
        await asyncio.sleep(0.5)
        assert "host-b:2:b" in watching.active_weights()
        deadline = time.monotonic() + 6
        while "host-b:2:b" in watching.active_weights() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert set(watching.active_weights()) == {"host-a:1:a"}
    finally:
        await watching.stop()


async def test_a_runtime_registers_its_watchers_and_deregisters_after_handover(services: Services) -> None:
    from mailport.runtime import Runtime

    runtime = Runtime(services, delivery=False, janitor=False, sending=False, contacts=False)
    await runtime.start()
    assert runtime.orchestrator is not None
    owner = runtime.orchestrator.owner
    async with services.database.connect() as conn:
        (row,) = await registry.live(conn, now=runtime.orchestrator.clock())
    assert row.id == owner and row.active and row.roles == (registry.WATCHERS,)
    await runtime.stop()
    async with services.database.connect() as conn:
        assert await registry.everyone(conn) == []


async def test_an_api_process_without_watchers_registers_with_the_api_role(services: Services) -> None:
    from mailport.runtime import Runtime

    runtime = Runtime(
        services, watchers=False, delivery=False, janitor=False, sending=False, contacts=False, api=True
    )
    await runtime.start()
    try:
        async with services.database.connect() as conn:
            (row,) = await registry.everyone(conn)
        assert row.roles == (registry.API,)
        assert runtime.membership is not None and runtime.membership.active_weights() == {}  # no watchers
    finally:
        await runtime.stop()
    async with services.database.connect() as conn:
        assert await registry.everyone(conn) == []
