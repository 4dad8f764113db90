"""SQLite through :mod:`mailport.store.sqlite_driver`: at most one trip to aiosqlite's thread per
statement (none for a write transaction's statements while another process writes too: they
run on the event loop's thread), with every DBAPI answer SQLAlchemy reads still right (rows,
rowcount, lastrowid, errors), rollbacks that matter still made, streamed results still
streamed, and another process's write lock waited for off the event loop."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError

from mailport.store import sqlite_driver
from mailport.store.database import Database, open_database
from mailport.store.sqlite_driver import OneTripConnection


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    db = open_database(f"sqlite+aiosqlite:///{tmp_path / 'driver.db'}")
    async with db.transaction() as conn:
        await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE, n INTEGER)"))
    yield db
    await db.aclose()


@pytest.fixture(autouse=True)
def uncontended(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts as a process that has met no other writer (the mark is per process)."""
    monkeypatch.setattr(sqlite_driver, "_contended_until", 0.0)


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The functions sent to aiosqlite's thread, by name (counted, still run)."""
    seen: list[str] = []
    original = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(getattr(fn, "__name__", repr(fn)))
        return await original(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    yield seen


async def test_the_engine_uses_the_one_trip_adapter(database: Database) -> None:
    async with database.connect() as conn:
        raw = await conn.get_raw_connection()
        assert isinstance(raw.dbapi_connection, OneTripConnection)


async def test_alone_with_its_database_a_transaction_costs_one_trip_per_statement_and_its_commit(
    database: Database, trips: list[str]
) -> None:
    async with database.connect() as conn:  # a pooled connection, opened beforehand
        await conn.execute(text("SELECT 1"))
    trips.clear()
    async with database.transaction() as conn:
        await conn.execute(text("INSERT INTO t (name, n) VALUES ('a', 1)"))
        await conn.execute(text("INSERT INTO t (name, n) VALUES ('b', 2)"))
        rows = (await conn.execute(text("SELECT name FROM t ORDER BY name"))).all()
    assert [r.name for r in rows] == ["a", "b"]
    # three statements and the commit; no cursor opened or closed apart, and no rollback when
    # the pool takes back a connection whose transaction has committed
    assert trips == ["_waiting_out_busy", "_waiting_out_busy", "_waiting_out_busy", "commit"]


def _hold_the_write_lock(path: Path) -> sqlite3.Connection:
    """Another process's writer, as SQLite sees it: a connection of its own in a write transaction."""
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO t (name, n) VALUES ('other', 0)")
    return other


async def _meet_another_writer(database: Database, path: Path) -> None:
    """Write once while another connection holds the lock for 0.2 s (the write waits, then lands)."""
    other = _hold_the_write_lock(path)
    asyncio.get_running_loop().call_later(0.2, other.commit)
    try:
        async with database.transaction() as conn:
            await conn.execute(text("INSERT INTO t (name, n) VALUES ('met', 0)"))
    finally:
        other.close()


async def test_once_another_process_writes_a_write_transaction_runs_on_the_loop(
    database: Database, trips: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _meet_another_writer(database, tmp_path / "driver.db")
    trips.clear()
    async with database.transaction() as conn:
        await conn.execute(text("INSERT INTO t (name, n) VALUES ('a', 1)"))
        await conn.execute(text("INSERT INTO t (name, n) VALUES ('b', 2)"))
        rows = (await conn.execute(text("SELECT name FROM t WHERE n > 0 ORDER BY name"))).all()
    assert [r.name for r in rows] == ["a", "b"]
    # the three statements ran here (the transaction holds the write lock from its first
    # write, and the other process waits for its commit); only the commit went to the thread
    assert trips == ["commit"]
    trips.clear()
    async with database.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar_one() == 4
    assert trips == ["_waiting_out_busy"]  # a read: it may scan a large table, off the loop
    trips.clear()
    monkeypatch.setattr(sqlite_driver, "INLINE_MAX_BYTES", 1000)
    async with database.transaction() as conn:
        await conn.execute(text("INSERT INTO t (name, n) VALUES (:name, 1)"), {"name": "x" * 999})
        await conn.execute(text("INSERT INTO t (name, n) VALUES (:name, 2)"), {"name": "y" * 1001})
        many = [{"name": c * 600, "n": i} for i, c in ((3, "z"), (4, "w"))]
        await conn.execute(text("INSERT INTO t (name, n) VALUES (:name, :n)"), many)
    # the first here; the one over the limit, and the executemany over it in all, on the thread
    assert trips == ["_waiting_out_busy", "_waiting_out_busy", "commit"]


async def test_writes_go_back_to_the_thread_when_the_other_writer_is_gone(
    database: Database, trips: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_driver, "CONTENDED_SECONDS", 0.3)
    await _meet_another_writer(database, tmp_path / "driver.db")
    await asyncio.sleep(0.4)  # no other writer met since
    trips.clear()
    async with database.transaction() as conn:
        await conn.execute(text("INSERT INTO t (name, n) VALUES ('a', 1)"))
    assert trips == ["_waiting_out_busy", "commit"]


@pytest.mark.parametrize("contended", [False, True], ids=["from-the-thread", "from-the-loop"])
async def test_a_write_waits_for_another_writer_off_the_event_loop(
    database: Database, tmp_path: Path, contended: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if contended:  # the write is tried on the loop first, meets the lock, and waits on the thread
        monkeypatch.setattr(sqlite_driver, "_contended_until", time.monotonic() + 60)
    async with database.connect() as conn:
        await conn.execute(text("SELECT 1"))
    other = _hold_the_write_lock(tmp_path / "driver.db")
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticking = asyncio.create_task(ticker())
    asyncio.get_running_loop().call_later(0.5, other.commit)  # the other writer commits
    started = time.monotonic()
    try:
        async with database.transaction() as conn:
            await conn.execute(text("INSERT INTO t (name, n) VALUES ('mine', 1)"))
            await conn.execute(text("UPDATE t SET n = n + 10"))
        waited = time.monotonic() - started
    finally:
        ticking.cancel()
        other.close()
    assert waited >= 0.45  # it did wait for the lock, and got it without an error
    assert ticks >= 15  # the loop went on meanwhile (~50 ticks of 10 ms in 0.5 s)
    async with database.connect() as conn:
        rows = (await conn.execute(text("SELECT name, n FROM t ORDER BY name"))).all()
    assert [tuple(r) for r in rows] == [("mine", 11), ("other", 10)]


async def test_a_write_gives_up_when_the_lock_stays_taken(
    database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_driver, "BUSY_SECONDS", 0.3)
    async with database.connect() as conn:
        await conn.execute(text("SELECT 1"))
    other = _hold_the_write_lock(tmp_path / "driver.db")
    try:
        started = time.monotonic()
        with pytest.raises(OperationalError, match="database is locked"):
            async with database.transaction() as conn:
                await conn.execute(text("INSERT INTO t (name, n) VALUES ('mine', 1)"))
        assert 0.25 <= time.monotonic() - started < 5
    finally:
        other.rollback()
        other.close()
    async with database.transaction() as conn:  # nothing left half-done or locked
        await conn.execute(text("INSERT INTO t (name, n) VALUES ('later', 1)"))
    async with database.connect() as conn:
        names = (await conn.execute(text("SELECT name FROM t"))).scalars().all()
    assert names == ["later"]


async def test_what_sqlalchemy_reads_from_the_cursor(database: Database) -> None:
    async with database.transaction() as conn:
        inserted = await conn.execute(text("INSERT INTO t (name, n) VALUES ('x', 5)"))
        assert inserted.lastrowid == 1
        assert inserted.rowcount == 1
        await conn.execute(
            text("INSERT INTO t (name, n) VALUES (:name, :n)"), [{"name": "y", "n": 5}, {"name": "z", "n": 6}]
        )
        updated = await conn.execute(text("UPDATE t SET n = n + 1 WHERE n = 5"))
        assert updated.rowcount == 2
        result = await conn.execute(text("SELECT id, name, n FROM t ORDER BY id"))
        assert list(result.keys()) == ["id", "name", "n"]
        assert [tuple(r) for r in result] == [(1, "x", 6), (2, "y", 6), (3, "z", 6)]
        none = await conn.execute(text("SELECT name FROM t WHERE n > 100"))
        assert none.first() is None
        assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar_one() == 3
        many = await conn.execute(text("SELECT id FROM t ORDER BY id"))
        assert many.fetchmany(2) == [(1,), (2,)]
        assert many.fetchmany(2) == [(3,)]


async def test_a_failed_transaction_is_rolled_back(database: Database, trips: list[str]) -> None:
    async with database.transaction() as conn:
        await conn.execute(text("INSERT INTO t (name, n) VALUES ('kept', 1)"))
    trips.clear()
    with pytest.raises(IntegrityError):
        async with database.transaction() as conn:
            await conn.execute(text("INSERT INTO t (name, n) VALUES ('lost', 1)"))
            await conn.execute(text("INSERT INTO t (name, n) VALUES ('kept', 2)"))  # UNIQUE
    assert "rollback" in trips  # an open transaction is still rolled back
    async with database.connect() as conn:
        names = (await conn.execute(text("SELECT name FROM t ORDER BY name"))).scalars().all()
    assert names == ["kept"]


async def test_a_transaction_left_open_is_rolled_back_when_the_pool_takes_it_back(database: Database) -> None:
    async with database.connect() as conn:
        await conn.execute(text("INSERT INTO t (name, n) VALUES ('uncommitted', 1)"))
        # no commit: the connection goes back to the pool
    async with database.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar_one() == 0
    async with database.transaction() as conn:  # and the database is not left locked
        await conn.execute(text("INSERT INTO t (name, n) VALUES ('next', 1)"))


async def test_sql_errors_keep_their_sqlalchemy_types(database: Database) -> None:
    async with database.connect() as conn:
        with pytest.raises(OperationalError, match="no such table"):
            await conn.execute(text("SELECT * FROM missing"))
        assert (await conn.execute(text("SELECT 41 + 1"))).scalar_one() == 42  # still usable


async def test_streamed_results_still_stream(database: Database) -> None:
    async with database.transaction() as conn:
        await conn.execute(
            text("INSERT INTO t (name, n) VALUES (:name, :n)"), [{"name": f"r{i}", "n": i} for i in range(50)]
        )
    async with database.connect() as conn:
        stream = await conn.stream(text("SELECT n FROM t ORDER BY n"))
        seen = [row.n async for row in stream]
    assert seen == list(range(50))
