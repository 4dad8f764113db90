"""SQLite transactions of one process take turns: a queue of writers longer than SQLite's busy
timeout (5 s) all commit, in the order they asked, and a nested transaction of the same task does
not wait for itself."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from sqlalchemy import insert, select

from mailport.store import open_database, upgrade
from mailport.store.tables import delivery_state

T0 = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


async def test_writers_queued_past_the_busy_timeout_all_commit_in_order(sqlite_url: str) -> None:
    database = open_database(sqlite_url)
    await upgrade(database)
    try:

        async def write(n: int) -> None:
            async with database.transaction() as conn:
                await conn.execute(insert(delivery_state).values(name=f"w{n}", fanout_seq=n, updated_at=T0))
                await asyncio.sleep(0.8)  # holds SQLite's write lock meanwhile

        started = time.monotonic()
        tasks = []
        for n in range(8):  # 8 x 0.8 s: the last one waits longer than the 5 s busy timeout
            tasks.append(asyncio.create_task(write(n)))
            await asyncio.sleep(0)  # each asks in turn
        await asyncio.gather(*tasks)
        assert time.monotonic() - started >= 8 * 0.8 - 0.1  # one after the other
        async with database.connect() as conn:
            rows = (
                await conn.execute(select(delivery_state.c.name).order_by(delivery_state.c.updated_at))
            ).all()
        assert sorted(r.name for r in rows) == [f"w{n}" for n in range(8)]
    finally:
        await database.aclose()


async def test_a_nested_transaction_of_the_same_task_does_not_wait_for_itself(sqlite_url: str) -> None:
    database = open_database(sqlite_url)
    await upgrade(database)
    try:
        async with asyncio.timeout(5):
            async with database.transaction() as outer:
                await outer.execute(select(1))
                async with database.transaction() as inner:
                    await inner.execute(
                        insert(delivery_state).values(name="inner", fanout_seq=1, updated_at=T0)
                    )
        async with database.connect() as conn:
            assert (await conn.execute(select(delivery_state.c.name))).scalars().all() == ["inner"]
    finally:
        await database.aclose()
