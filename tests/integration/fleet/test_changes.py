"""The change follower reads what changed since its last read (the ``mailbox_changes`` log),
asks again for numbers a still-open transaction holds, wakes on NOTIFY, and the janitor's purge
keeps the newest row."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, insert, select

from mailport.bootstrap import Services
from mailport.fleet.changes import ChangeFollower, purge
from mailport.fleet.listen import Listener
from mailport.store.tables import mailbox_changes
from tests.integration.fleet.conftest import new_mailbox, postgres_only


async def _log(services: Services, mailbox_id: str) -> None:
    async with services.database.transaction() as conn:
        await conn.execute(insert(mailbox_changes).values(mailbox_id=mailbox_id, at=datetime.now(UTC)))


async def test_reads_only_what_changed_since_the_last_read(services: Services) -> None:
    await _log(services, "mbx_before")
    follower = ChangeFollower(services.database)
    await follower.start()
    assert await follower.read() == set()  # what came before start is the full read's business
    await _log(services, "mbx_a")
    await _log(services, "mbx_b")
    await _log(services, "mbx_a")
    assert await follower.read() == {"mbx_a", "mbx_b"}
    assert await follower.read() == set()
    tenant, _ = await services.tenants.create_tenant("t")
    created = await services.mailboxes.repository.create(
        tenant.id, new_mailbox("x@fleet.test"), now=datetime.now(UTC)
    )
    assert await follower.read() == {created.id}  # the trigger's row


@postgres_only
async def test_a_number_held_by_an_open_transaction_is_read_when_it_commits(services: Services) -> None:
    follower = ChangeFollower(services.database, gap_seconds=10)
    await follower.start()
    async with services.database.engine.connect() as slow:
        transaction = await slow.begin()
        await slow.execute(insert(mailbox_changes).values(mailbox_id="mbx_slow", at=datetime.now(UTC)))
        await _log(services, "mbx_fast")  # takes the next number and commits first
        assert await follower.read() == {"mbx_fast"}
        assert len(follower.gaps) == 1
        await transaction.commit()
    assert await follower.read() == {"mbx_slow"}
    assert follower.gaps == {}


async def test_an_abandoned_gap_closes_after_its_time(services: Services) -> None:
    clock = [0.0]
    follower = ChangeFollower(services.database, gap_seconds=10, monotonic=lambda: clock[0])
    await follower.start()
    async with services.database.transaction() as conn:
        latest = (await conn.execute(select(func.max(mailbox_changes.c.seq)))).scalar() or 0
        await conn.execute(
            insert(mailbox_changes).values(seq=latest + 3, mailbox_id="mbx_c", at=datetime.now(UTC))
        )
    assert await follower.read() == {"mbx_c"}
    assert sorted(follower.gaps) == [latest + 1, latest + 2]
    clock[0] = 11.0
    await follower.read()
    assert follower.gaps == {}


@postgres_only
async def test_notify_wakes_the_follower_at_once(services: Services) -> None:
    listener = Listener(services.database)
    follower = ChangeFollower(services.database, poll_seconds=30, listener=listener)
    listener.start()
    try:
        await asyncio.wait_for(listener.connected.wait(), 5)
        await follower.start()
        await follower.wait(0.01)  # the connect wake-up
        started = time.monotonic()
        waiting = asyncio.ensure_future(follower.wait())
        await asyncio.sleep(0.05)
        tenant, _ = await services.tenants.create_tenant("t")
        created = await services.mailboxes.repository.create(
            tenant.id, new_mailbox("y@fleet.test"), now=datetime.now(UTC)
        )
        assert await asyncio.wait_for(waiting, 5) is True
        assert time.monotonic() - started < 5.0  # the poll is 30 s away: NOTIFY woke it
        assert created.id in await follower.read()
    finally:
        await listener.stop()


async def test_purge_forgets_old_changes_but_keeps_the_newest(services: Services) -> None:
    old = datetime.now(UTC) - timedelta(days=2)
    async with services.database.transaction() as conn:
        for name in ("mbx_1", "mbx_2", "mbx_3"):
            await conn.execute(insert(mailbox_changes).values(mailbox_id=name, at=old))
    async with services.database.transaction() as conn:
        removed = await purge(conn, before=datetime.now(UTC) - timedelta(days=1))
        left = [r.mailbox_id for r in await conn.execute(select(mailbox_changes.c.mailbox_id))]
    assert removed == 2 and left == ["mbx_3"]


async def test_the_janitor_purges_old_changes_and_long_dead_workers(services: Services) -> None:
    from mailport.fleet import registry
    from mailport.janitor import Janitor

    now = datetime.now(UTC)
    async with services.database.transaction() as conn:
        for name, at in (("mbx_old", now - timedelta(days=2)), ("mbx_older", now - timedelta(days=3))):
            await conn.execute(insert(mailbox_changes).values(mailbox_id=name, at=at))
        await conn.execute(insert(mailbox_changes).values(mailbox_id="mbx_new", at=now))
        await registry.register(
            conn,
            "gone:1:a",
            roles=[registry.WATCHERS],
            weight=1,
            now=now - timedelta(hours=3),
            ttl=timedelta(seconds=30),
        )
        await registry.register(
            conn,
            "late:2:b",
            roles=[registry.WATCHERS],
            weight=1,
            now=now - timedelta(minutes=5),
            ttl=timedelta(seconds=30),
        )
    janitor = Janitor(services.database, retention_days=30, clock=lambda: now)
    assert await janitor.run_once() is not None
    async with services.database.connect() as conn:
        left = [r.mailbox_id for r in await conn.execute(select(mailbox_changes.c.mailbox_id))]
        workers = [w.id for w in await registry.everyone(conn)]
    assert left == ["mbx_new"]
    assert workers == ["late:2:b"]  # dead for five minutes: still shown; for three hours: forgotten
