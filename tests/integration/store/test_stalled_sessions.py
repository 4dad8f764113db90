"""A paused process's PostgreSQL session stopped between asyncpg's prepare (Parse, Describe,
Flush) and its execute keeps its row locks: the server's idle-in-transaction limit does not
apply to that state. mailport's heartbeat ends such sessions after the same limit
(:mod:`mailport.store.stalled`), and only those: other applications' sessions, sessions not
yet past the limit and healthy ones stay.

The paused process is imitated by a raw asyncpg connection that prepares a statement inside a
transaction holding a lease row and then sends nothing more: exactly what a process paused by
SIGSTOP in that window leaves on the server. A process really paused (SIGSTOP) while a large
answer comes in leaves its session writing (``ClientWrite``), and is ended the same way."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from mailport import leases
from mailport.fleet.membership import Membership
from mailport.store import Database, open_database, upgrade
from mailport.store.stalled import end_stalled_sessions

pytestmark = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)

IDLE_LIMIT = 1.0
NAME = "dispatcher"


@pytest.fixture
async def database(fresh_database_url: str) -> AsyncIterator[Database]:
    migrating = open_database(fresh_database_url)  # without the 1 s limit: a loaded machine's
    try:  # migration may sit that long between two statements
        await upgrade(migrating)
    finally:
        await migrating.aclose()
    database = open_database(fresh_database_url, idle_transaction_seconds=IDLE_LIMIT)
    try:
        yield database
    finally:
        await database.aclose()


async def raw_session(url: str, application: str) -> asyncpg.Connection:
    parsed = make_url(url)
    settings = {"application_name": application, "idle_in_transaction_session_timeout": "1000"}
    if "search_path" in parsed.query:
        settings["search_path"] = str(parsed.query["search_path"])
    dsn = parsed.difference_update_query(["search_path"]).set(drivername="postgresql")
    return await asyncpg.connect(dsn.render_as_string(hide_password=False), server_settings=settings)


async def stall(conn: asyncpg.Connection) -> int:
    """Lock the lease row inside a transaction, then stop between prepare and execute."""
    await conn.execute("BEGIN")
    await conn.execute(f"UPDATE leases SET token = token WHERE name = '{NAME}'")
    await conn.prepare("SELECT token FROM leases WHERE name = $1")  # Parse, Describe, Flush
    return conn.get_server_pid()


async def take_over(database: Database) -> leases.Lease | None:
    now = datetime.now(UTC)
    async with database.transaction() as conn:
        return await leases.acquire(conn, NAME, "host-b:2:b", now=now, until=now + timedelta(seconds=30))


async def alive(database: Database, pid: int) -> bool:
    async with database.connect() as conn:
        found = await conn.exec_driver_sql(f"SELECT 1 FROM pg_stat_activity WHERE pid = {pid}")
        return found.first() is not None


async def expired_lease(database: Database) -> None:
    past = datetime.now(UTC) - timedelta(minutes=5)
    async with database.transaction() as conn:
        assert await leases.acquire(conn, NAME, "host-a:1:a", now=past, until=past + timedelta(seconds=1))


async def test_a_session_stalled_mid_query_is_ended_and_its_lock_freed(
    database: Database, fresh_database_url: str
) -> None:
    await expired_lease(database)
    paused = await raw_session(fresh_database_url, "mailport")
    other_app = await raw_session(fresh_database_url, "someone-else")
    try:
        pid = await stall(paused)
        assert await end_stalled_sessions(database) == []  # not past the limit yet

        # the server's own idle limit (1 s) does not end it: the lease stays locked
        taking = asyncio.create_task(take_over(database))
        await asyncio.sleep(IDLE_LIMIT * 2.5)
        assert not taking.done() and await alive(database, pid)

        # another application's session in the same state is none of mailport's business
        await other_app.execute("BEGIN")
        await other_app.prepare("SELECT 1")
        other_pid = other_app.get_server_pid()
        await asyncio.sleep(IDLE_LIMIT * 1.5)

        assert await end_stalled_sessions(database) == [pid]
        lease = await asyncio.wait_for(taking, 10)
        assert lease is not None and lease.holder == "host-b:2:b" and lease.token == 2
        assert not await alive(database, pid)
        assert await alive(database, other_pid)
        # ended: the server's FATAL may have reached asyncpg before the socket's close, which
        # then refuses the next statement as InternalClientError (another operation in progress)
        with pytest.raises(
            (
                asyncpg.PostgresConnectionError,
                ConnectionError,
                asyncpg.InterfaceError,
                asyncpg.InternalClientError,
            )
        ):
            await paused.fetchval("SELECT 1")
    finally:
        paused.terminate()
        other_app.terminate()


async def test_the_heartbeat_ends_stalled_sessions(database: Database, fresh_database_url: str) -> None:
    await expired_lease(database)
    member = Membership(database, "host-b:2:b", lease_seconds=1.5)  # a heartbeat every 0.5 s
    paused = await raw_session(fresh_database_url, "mailport")
    await member.start()
    try:
        pid = await stall(paused)
        started = time.monotonic()
        lease = await asyncio.wait_for(take_over(database), 10)
        waited = time.monotonic() - started
        assert lease is not None and lease.token == 2
        assert not await alive(database, pid)
        assert waited >= IDLE_LIMIT * 0.9  # not before the limit
    finally:
        await member.stop()
        paused.terminate()


PAUSED_READER = """
import asyncio, os, signal, sys
import asyncpg

async def main():
    conn = await asyncpg.connect(sys.argv[1], server_settings={
        "application_name": "mailport", "search_path": sys.argv[2],
        "idle_in_transaction_session_timeout": "1000"})
    await conn.execute("BEGIN")
    await conn.execute("UPDATE leases SET token = token WHERE name = 'dispatcher'")
    print(conn.get_server_pid(), flush=True)
    # a simple query (no prepare) whose 64 MB answer outgrows the socket's buffers
    reading = asyncio.ensure_future(conn.execute("SELECT repeat('x', 1048576) FROM generate_series(1, 64)"))
    await asyncio.sleep(0)  # the query is written
    os.kill(os.getpid(), signal.SIGSTOP)
    await reading

asyncio.run(main())
"""


async def test_a_session_paused_while_a_large_answer_comes_in_is_ended(
    database: Database, fresh_database_url: str
) -> None:
    await expired_lease(database)
    parsed = make_url(fresh_database_url)
    dsn = parsed.difference_update_query(["search_path"]).set(drivername="postgresql")
    reader = subprocess.Popen(
        [
            sys.executable,
            "-c",
            PAUSED_READER,
            dsn.render_as_string(hide_password=False),
            str(parsed.query.get("search_path", "public")),
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert reader.stdout is not None
        pid = int(await asyncio.to_thread(reader.stdout.readline))
        await asyncio.sleep(IDLE_LIMIT * 1.5)
        async with database.connect() as conn:
            row = (
                await conn.exec_driver_sql(
                    f"SELECT state, wait_event FROM pg_stat_activity WHERE pid = {pid}"
                )
            ).first()
        assert row is not None and (row.state, row.wait_event) == ("active", "ClientWrite")
        assert await end_stalled_sessions(database) == [pid]
        lease = await asyncio.wait_for(take_over(database), 10)
        assert lease is not None and lease.token == 2
    finally:
        reader.send_signal(signal.SIGCONT)
        reader.kill()
        reader.wait(10)
