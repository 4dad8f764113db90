"""SQLite through :mod:`mailport.store.sqlite_driver`: one trip to aiosqlite's thread per
statement, with every DBAPI answer SQLAlchemy reads still right (rows, rowcount, lastrowid,
errors), rollbacks that matter still made, and streamed results still streamed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError

from mailport.store.database import Database, open_database
from mailport.store.sqlite_driver import OneTripConnection


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    db = open_database(f"sqlite+aiosqlite:///{tmp_path / 'driver.db'}")
    async with db.transaction() as conn:
        await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE, n INTEGER)"))
    yield db
    await db.aclose()


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


async def test_a_transaction_costs_one_trip_per_statement_and_one_for_its_commit(
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
    assert trips == ["_execute", "_execute", "_execute", "commit"]


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
