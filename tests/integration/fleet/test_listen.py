"""One LISTEN connection per process: parts that start after it subscribe to it while it is up
(the webhook dispatcher beside the watchers' orchestrator), and take their callbacks back."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from mailport.bootstrap import Services
from mailport.fleet.listen import Listener
from mailport.runtime import Runtime
from tests.integration.fleet.conftest import postgres_only


async def _notify(services: Services, channel: str, payload: str) -> None:
    async with services.database.transaction() as conn:
        await conn.execute(
            text("SELECT pg_notify(:channel, :payload)"), {"channel": channel, "payload": payload}
        )


async def _listen_connections(services: Services) -> int:
    async with services.database.connect() as conn:
        count = await conn.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND query ILIKE 'LISTEN%'"
            )
        )
        return int(count.scalar_one())


@postgres_only
async def test_a_channel_subscribed_while_connected_is_heard(services: Services) -> None:
    listener = Listener(services.database)
    early: list[str] = []
    listener.subscribe("mailport_test_early", early.append)
    listener.start()
    try:
        await asyncio.wait_for(listener.connected.wait(), 5)
        late: list[str] = []
        connected: list[bool] = []
        take_back = listener.subscribe("mailport_test_late", late.append)
        listener.on_connect(lambda: connected.append(True))
        assert connected == [True]  # up already: it runs at once
        for attempt in range(50):  # the loop that owns the connection LISTENs to it
            await _notify(services, "mailport_test_late", f"n{attempt}")
            await asyncio.sleep(0.05)
            if late:
                break
        assert late and late[0].startswith("n")
        take_back()
        heard = len(late)
        await _notify(services, "mailport_test_late", "after")
        await _notify(services, "mailport_test_early", "still")
        for _ in range(100):
            if early:
                break
            await asyncio.sleep(0.02)
        assert early == ["still"] and len(late) == heard  # taken back: not called any more
    finally:
        await listener.stop()


@postgres_only
async def test_the_watchers_and_the_dispatcher_share_one_listen_connection(services: Services) -> None:
    runtime = Runtime(services, janitor=False, sending=False, contacts=False)
    await runtime.start()
    try:
        assert runtime.orchestrator is not None and runtime.dispatcher is not None
        listener = runtime.orchestrator.listener
        await asyncio.wait_for(listener.connected.wait(), 5)
        assert runtime.dispatcher._listener is None  # it has none of its own
        for _ in range(100):
            if await _listen_connections(services) >= 1:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)  # a second LISTEN connection would be up by now
        assert await _listen_connections(services) == 1
    finally:
        await runtime.stop()
