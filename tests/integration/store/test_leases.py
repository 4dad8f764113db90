"""The lease module (mailport.leases) on SQLite and PostgreSQL: one winner among racing holders,
expiry, a dead local process's lease taken at once, fencing tokens that grow on every hand-over
and never on a renewal, and a stale holder's fenced write refused."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.exc import DBAPIError

from mailport import leases
from mailport.errors import LeaseLostError
from mailport.store import Database, open_database, upgrade
from mailport.store.tables import delivery_state
from mailport.store.tables import leases as leases_table

T0 = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
TTL = timedelta(seconds=30)
A, B = "host-a:1:aaaa", "host-b:2:bbbb"  # other hosts: only their expiry frees their leases


@pytest.fixture
async def database(fresh_database_url: str) -> AsyncIterator[Database]:
    database = open_database(fresh_database_url)
    await upgrade(database)
    try:
        yield database
    finally:
        await database.aclose()


async def take(
    database: Database, holder: str, *, at: datetime = T0, name: str = "job", reentrant: bool = True
) -> leases.Lease | None:
    async with database.transaction() as conn:
        return await leases.acquire(conn, name, holder, now=at, until=at + TTL, reentrant=reentrant)


def dead_pid() -> int:
    """The pid of a process of this host that has ended."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


async def test_of_holders_racing_for_a_free_lease_exactly_one_wins(database: Database) -> None:
    holders = [f"host-{n}:{n}:race" for n in range(8)]
    got = await asyncio.gather(*(take(database, holder) for holder in holders))
    winners = [lease for lease in got if lease is not None]
    assert len(winners) == 1 and winners[0].token == 1
    async with database.connect() as conn:
        assert await leases.current(conn, ["job"]) == {"job": winners[0]}


async def test_racing_for_an_expired_lease_one_takes_it_with_the_next_token(database: Database) -> None:
    assert await take(database, A) is not None
    later = T0 + TTL + timedelta(seconds=1)
    got = await asyncio.gather(*(take(database, f"host-{n}:{n}:late", at=later) for n in range(6)))
    winners = [lease for lease in got if lease is not None]
    assert len(winners) == 1 and winners[0].token == 2


async def test_a_live_lease_is_refused_to_others_until_it_expires(database: Database) -> None:
    mine = await take(database, A)
    assert mine is not None and mine.expires_at == T0 + TTL
    assert await take(database, B, at=T0 + TTL - timedelta(seconds=1)) is None
    theirs = await take(database, B, at=T0 + TTL)
    assert theirs is not None and theirs.holder == B and theirs.token == 2
    async with database.transaction() as conn:
        assert await leases.renew(conn, mine, until=T0 + 2 * TTL) is None  # the loss is reported
        assert not await leases.held(conn, mine) and await leases.held(conn, theirs)
        assert not await leases.release(conn, "job", A)  # not A's to give up
        assert await leases.current(conn, ["job"], now=T0 + 2 * TTL) == {}  # expired: nobody's now


async def test_the_lease_of_a_dead_process_of_this_host_is_taken_at_once(database: Database) -> None:
    dead = f"{socket.gethostname()}:{dead_pid()}:gone"
    assert await take(database, dead) is not None
    alive = f"{socket.gethostname()}:1:init"  # pid 1 exists: its lease is kept
    assert await take(database, alive, name="other") is not None
    taken = await take(database, B, at=T0 + timedelta(seconds=1))
    assert taken is not None and taken.token == 2
    assert await take(database, B, at=T0 + timedelta(seconds=1), name="other") is None
    assert not leases.holder_is_dead(leases.new_holder())  # this process


async def test_the_token_grows_on_every_hand_over_and_never_on_a_renewal(database: Database) -> None:
    first = await take(database, A)
    assert first is not None and first.token == 1
    again = await take(database, A, at=T0 + timedelta(seconds=10))  # its holder, again: a renewal
    assert again is not None and again.token == 1
    async with database.transaction() as conn:
        renewed = await leases.renew(conn, first, until=T0 + timedelta(minutes=5))
        assert renewed is not None and renewed.token == 1 and renewed.expires_at == T0 + timedelta(minutes=5)
    expired = await take(database, A, at=T0 + timedelta(minutes=6))  # expired, nobody took it: same tenure
    assert expired is not None and expired.token == 1
    async with database.transaction() as conn:
        assert await leases.release(conn, "job", A)
    retaken = await take(database, A, at=T0 + timedelta(minutes=7))  # after a release: a new tenure
    assert retaken is not None and retaken.token == 2
    other = await take(database, B, at=T0 + timedelta(minutes=8))
    assert other is not None and other.token == 3
    back = await take(database, A, at=T0 + timedelta(minutes=9))
    assert back is not None and back.token == 4


async def test_a_claim_that_is_not_reentrant_is_refused_to_its_own_holder_until_it_lapses(
    database: Database,
) -> None:
    assert await take(database, A, reentrant=False) is not None
    assert await take(database, A, at=T0 + timedelta(seconds=29), reentrant=False) is None
    lapsed = await take(database, A, at=T0 + TTL, reentrant=False)
    assert lapsed is not None and lapsed.token == 1


async def _write_fenced(database: Database, lease: leases.Lease, row: str) -> None:
    async with database.transaction() as conn:
        await conn.execute(insert(delivery_state).values(name=row, fanout_seq=1, updated_at=T0))
        await leases.fence(conn, lease)


async def test_a_stale_holders_fenced_write_is_refused_and_rolled_back(database: Database) -> None:
    stale = await take(database, A)
    assert stale is not None
    await _write_fenced(database, stale, "while-held")  # current: written
    fresh = await take(database, B, at=T0 + TTL)  # A paused past its expiry; B took over
    assert fresh is not None
    with pytest.raises(LeaseLostError) as caught:
        await _write_fenced(database, stale, "stale")
    assert caught.value.code == "lease_lost" and caught.value.http_status == 409
    await _write_fenced(database, fresh, "fresh")
    async with database.connect() as conn:
        written = set((await conn.execute(select(delivery_state.c.name))).scalars())
    assert written == {"while-held", "fresh"}


async def test_an_expired_lease_that_nobody_took_still_fences(database: Database) -> None:
    lease = await take(database, A)
    assert lease is not None
    await _write_fenced(database, lease, "late")  # its expiry passed long ago in T0 terms: still A's


async def test_a_fenced_transaction_holds_off_a_take_over_until_it_commits(database: Database) -> None:
    lease = await take(database, A)
    assert lease is not None
    async with database.transaction() as conn:
        await conn.execute(insert(delivery_state).values(name="guarded", fanout_seq=1, updated_at=T0))
        await leases.fence(conn, lease)
        taker = asyncio.create_task(take(database, B, at=T0 + TTL))
        await asyncio.sleep(0.3)
        assert not taker.done()  # the take-over waits for the fenced writes
    taken = await asyncio.wait_for(taker, timeout=10)
    assert taken is not None and taken.token == 2


async def test_a_paused_fenced_transaction_cannot_hold_off_a_take_over_for_ever(postgres_url: str) -> None:
    """A holder paused inside its fenced transaction (SIGSTOP, a frozen VM) keeps its row lock only
    until PostgreSQL ends the idle session; then the take-over goes on and the paused writes are lost."""
    paused_db = open_database(postgres_url, idle_transaction_seconds=1.0)
    database = open_database(postgres_url)
    await upgrade(database)
    try:
        async with database.transaction() as conn:
            await conn.execute(delete(leases_table).where(leases_table.c.name == "job"))
            await conn.execute(delete(delivery_state).where(delivery_state.c.name == "paused"))
        lease = await take(database, A)
        assert lease is not None
        with pytest.raises(DBAPIError):
            async with paused_db.transaction() as conn:
                await conn.execute(insert(delivery_state).values(name="paused", fanout_seq=1, updated_at=T0))
                await leases.fence(conn, lease)
                taker = asyncio.create_task(take(database, B, at=T0 + TTL))
                await asyncio.sleep(0.3)
                assert not taker.done()  # the take-over waits for the fenced writes ...
                await asyncio.sleep(2.0)  # ... until the server ended the "paused" session
                taken = await asyncio.wait_for(taker, timeout=10)
                assert taken is not None and taken.token == lease.token + 1
        async with database.connect() as conn:
            rows = (await conn.execute(select(delivery_state).where(delivery_state.c.name == "paused"))).all()
        assert rows == []  # the paused transaction wrote nothing
    finally:
        await paused_db.aclose()
        await database.aclose()


async def test_watcher_leases_are_renewed_and_released_by_prefix(database: Database) -> None:
    for name in ("watcher:m1", "watcher:m2", "watcher_x", "dispatcher"):
        assert await take(database, A, name=name) is not None
    until = T0 + timedelta(minutes=10)
    async with database.transaction() as conn:
        assert await leases.renew_all(conn, A, prefix="watcher:", until=until) == {"watcher:m1", "watcher:m2"}
        held = await leases.current(conn, ["watcher:m1", "watcher_x", "dispatcher"])
        assert held["watcher:m1"].expires_at == until and held["watcher_x"].expires_at == T0 + TTL
        assert await leases.release_all(conn, A, prefix="watcher:") == {"watcher:m1", "watcher:m2"}
        assert set(await leases.current(conn, ["watcher:m1", "watcher:m2", "watcher_x"])) == {"watcher_x"}


async def test_the_one_step_store_uses_its_clock(database: Database) -> None:
    now = [T0]
    store = leases.Leases(database, clock=lambda: now[0])
    mine = await store.acquire("dispatcher", A, ttl=TTL)
    assert mine is not None and mine.expires_at == T0 + TTL
    now[0] = T0 + timedelta(seconds=20)
    renewed = await store.renew(mine, ttl=TTL)
    assert renewed is not None and renewed.expires_at == now[0] + TTL and renewed.token == mine.token
    await store.release(renewed)
    assert await store.acquire("dispatcher", B, ttl=TTL) == leases.Lease("dispatcher", B, 2, now[0] + TTL)


async def test_leases_that_ran_out_a_day_ago_are_forgotten(database: Database) -> None:
    old = await take(database, A, name="device_poll:dev_1")
    live = await take(database, B, name="dispatcher", at=T0 + timedelta(days=1))
    assert old is not None and live is not None
    async with database.transaction() as conn:
        assert await leases.purge(conn, before=T0 + timedelta(days=1)) == 1
        assert set(await leases.current(conn, ["device_poll:dev_1", "dispatcher"])) == {"dispatcher"}
        with pytest.raises(LeaseLostError):
            await leases.fence(conn, old)


@pytest.fixture
async def sqlite_file(tmp_path: Path) -> AsyncIterator[str]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'still_held.db'}"
    database = open_database(url)
    await upgrade(database)
    await database.aclose()
    yield url


@pytest.mark.parametrize("prebuilt", [False, True], ids=["built", "bind-parameters"])
async def test_still_held_in_a_writes_where_is_the_fence_on_sqlite(sqlite_file: str, prebuilt: bool) -> None:
    """The watcher's chunk on SQLite fences in its cursor's UPDATE (one round trip fewer): the
    condition holds while the lease is this tenure, fails once it moved on, and while the
    transaction is open nobody, in this process or another, can take the lease over. The
    same with the condition's lease as bind parameters (a statement built once)."""
    database = open_database(sqlite_file)
    other = open_database(sqlite_file)  # another process: its own turns, SQLite's lock only
    row = delivery_state.c.name == "guarded"

    once = update(delivery_state).where(row, leases.still_held_by_params()).values(fanout_seq=bindparam("v"))

    async def write(conn: Any, lease: leases.Lease, value: int) -> bool:
        if prebuilt:
            moved = await conn.execute(once, {"v": value} | leases.held_params(lease))
        else:
            moved = await conn.execute(
                update(delivery_state).where(row, leases.still_held(lease)).values(fanout_seq=value)
            )
        return bool(moved.rowcount)

    try:
        async with database.transaction() as conn:
            await conn.execute(insert(delivery_state).values(name="guarded", fanout_seq=0, updated_at=T0))
        lease = await take(database, A)
        assert lease is not None
        async with database.transaction() as conn:
            assert await write(conn, lease, 1)
            taker = asyncio.create_task(take(other, B, at=T0 + TTL))
            await asyncio.sleep(0.3)
            assert not taker.done()  # the take-over waits for SQLite's write lock
        fresh = await asyncio.wait_for(taker, timeout=10)
        assert fresh is not None and fresh.token == 2
        async with database.transaction() as conn:
            assert not await write(conn, lease, 2)  # the stale tenure changes nothing
            assert await write(conn, fresh, 3)
        async with database.connect() as conn:
            assert (await conn.execute(select(delivery_state.c.fanout_seq).where(row))).scalar_one() == 3
    finally:
        await other.aclose()
        await database.aclose()
