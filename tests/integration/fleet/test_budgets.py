"""The fleet budgets on real PostgreSQL with three workers registered in ``workers``, each
logging in with the real IMAP connector to one TCP server that counts the logins in flight (from
the connection's accept to the answer to its LOGIN): the fleet never has more than
``MAILPORT_HOST_LOGINS`` in flight, uses all of it, takes a leaver's or a dead worker's share
back, and spreads a mass start-up at ``MAILPORT_CONNECT_RATE``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from mailport.clock import utc_now
from mailport.connectors import registry as connectors
from mailport.fleet import registry
from mailport.fleet.budgets import FleetBudgets
from mailport.store import Database, open_database, upgrade
from tests.connectors.mailbed import make_mailbox
from tests.fixtures.imap import DEFAULT_CAPS, ScriptedConnection, ScriptedImapServer, serve_commands

TTL = timedelta(seconds=30)


@pytest.fixture
def database_url(postgres_url: str) -> str:
    """PostgreSQL only: the fleet shares one PostgreSQL database (SQLite stays single-process)."""
    return postgres_url


@pytest.fixture
async def database(fresh_database_url: str) -> AsyncIterator[Database]:
    database = open_database(fresh_database_url)
    await upgrade(database)
    try:
        yield database
    finally:
        await database.aclose()


class LoginCounter:
    """An IMAP server's sign-in: counts connections between accept and the LOGIN answer."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.inside = 0
        self.most = 0
        self.accepted: list[float] = []  # monotonic times

    async def __call__(self, conn: ScriptedConnection) -> None:
        self.accepted.append(time.monotonic())
        self.inside += 1
        self.most = max(self.most, self.inside)
        signed_in = False
        try:
            await conn.greet(DEFAULT_CAPS)
            while not signed_in:
                tag, verb, _ = await conn.read_command()
                if verb in (b"LOGIN", b"AUTHENTICATE"):
                    await asyncio.sleep(self.delay)
                    self.inside -= 1
                    signed_in = True
                    await conn.send(tag + b" OK [CAPABILITY " + DEFAULT_CAPS + b"] logged in\r\n")
                elif verb == b"CAPABILITY":
                    await conn.send(b"* CAPABILITY " + DEFAULT_CAPS + b"\r\n" + tag + b" OK done\r\n")
                else:
                    await conn.send(tag + b" OK done\r\n")
        finally:
            if not signed_in:
                self.inside -= 1
        await serve_commands(conn, {})


async def worker(database: Database, worker_id: str, *, host_logins: int, rate: float) -> FleetBudgets:
    async with database.transaction() as conn:
        await registry.register(
            conn, worker_id, roles=[registry.WATCHERS], weight=1.0, now=utc_now(), ttl=TTL
        )
    return FleetBudgets(database, worker_id, host_logins=host_logins, connect_rate=rate)


async def connect_all(budgets: FleetBudgets, port: int, count: int, done: list[float]) -> None:
    """``count`` watchers of this worker connect at once, each through the budgets."""

    async def one(n: int) -> None:
        mailbox = make_mailbox("imap", f"u{n}@example.test", "pw", port)
        connector = connectors.create(mailbox, connectors.ConnectorContext())
        try:
            async with budgets.login(mailbox.imap.host if mailbox.imap else ""):
                await connector.connect()
            done.append(time.monotonic())
        finally:
            await connector.disconnect()

    await asyncio.gather(*(one(n) for n in range(count)))


async def test_the_fleet_never_exceeds_the_host_budget_and_takes_back_a_leavers_share(
    database: Database,
) -> None:
    fleet = [await worker(database, f"host-{n}:{n}:budget", host_logins=5, rate=10_000) for n in range(3)]
    counter = LoginCounter(delay=0.15)
    async with ScriptedImapServer(counter) as server:
        for budgets in fleet:
            await budgets.start()
        try:
            unbounded = FleetBudgets(None, "alone:0:x", host_logins=100, connect_rate=10_000)
            await connect_all(unbounded, server.port, 12, [])
            assert counter.most > 5  # the control: the server sees every login in flight
            counter.most = 0
            assert [b.host_share for b in fleet] == [2, 2, 1]  # 5 in all, not 3 × ceil(5/3) = 6
            done: list[float] = []
            started = time.monotonic()
            await asyncio.gather(*(connect_all(b, server.port, 10, done) for b in fleet))
            elapsed = time.monotonic() - started
            assert len(done) == 30 and counter.most == 5  # all of the budget, never more
            assert elapsed >= 30 / 5 * 0.15 * 0.9
            # one worker leaves; the others see it at their next read
            async with database.transaction() as conn:
                await registry.deregister(conn, fleet[2].worker_id)
            for budgets in fleet[:2]:
                await budgets.refresh()
            assert [b.host_share for b in fleet[:2]] == [3, 2]
            counter.most = 0
            await asyncio.gather(*(connect_all(b, server.port, 10, done) for b in fleet[:2]))
            assert counter.most == 5 and len(done) == 50
            # a worker that died: its row expires, its share comes back without a deregister
            async with database.transaction() as conn:
                await registry.register(
                    conn, "dead:9:x", roles=[registry.WATCHERS], weight=1.0, now=utc_now() - TTL, ttl=TTL
                )
            await fleet[0].refresh()
            assert fleet[0].host_share == 3 and fleet[0].workers == 2
        finally:
            for budgets in fleet:
                await budgets.stop()
    assert not server.errors


async def test_a_mass_start_up_is_spread_at_the_fleets_connect_rate(database: Database) -> None:
    rate = 20.0
    fleet = [await worker(database, f"host-{n}:{n}:rate", host_logins=100, rate=rate) for n in range(3)]
    counter = LoginCounter(delay=0.0)
    async with ScriptedImapServer(counter) as server:
        for budgets in fleet:
            await budgets.start()
        try:
            assert sum(b.rate_share for b in fleet) == pytest.approx(rate)
            started = time.monotonic()
            per_worker: list[list[float]] = [[], [], []]
            await asyncio.gather(
                *(connect_all(b, server.port, 20, per_worker[n]) for n, b in enumerate(fleet))
            )
        finally:
            for budgets in fleet:
                await budgets.stop()
    times = sorted(t - started for t in counter.accepted)
    assert len(times) == 60
    # at most R·(T + 1) + W connections in any first T seconds (the buckets start full)
    for n, at in enumerate(times, start=1):
        assert n <= rate * (at + 1) + len(fleet) + 1, (n, at)
    assert times[-1] >= (60 - rate - len(fleet)) / rate * 0.95  # ~2 s, not all at once
    for done in per_worker:  # each worker at its share, a third of the rate
        assert max(done) - started >= (20 - rate / 3 - 1) / (rate / 3) * 0.95


async def test_api_processes_are_counted_from_the_registry_and_read_again_when_stale(
    database: Database,
) -> None:
    now = [0.0]
    budgets = FleetBudgets(database, "host-w:1:api", host_logins=5, connect_rate=10, clock=lambda: now[0])
    async with database.transaction() as conn:
        for n in range(3):
            await registry.register(
                conn, f"api-{n}:1:x", roles=[registry.API], weight=1.0, now=utc_now(), ttl=TTL
            )
    assert await budgets.api_processes() == 3
    async with database.transaction() as conn:
        await registry.deregister(conn, "api-0:1:x")
    assert await budgets.api_processes() == 3  # cached for refresh_seconds
    now[0] += budgets.refresh_seconds
    assert await budgets.api_processes() == 2
