"""Ingestion's inserts on SQLite and PostgreSQL: the message rows written by
:func:`mailport.sync.repository.insert_messages`'s fast path (tuples; on SQLite one multi-row
statement, :mod:`mailport.store.many_rows`) read back exactly as SQLAlchemy's own insert stores
them, in order, a row already stored is skipped, and a statement split over SQLite's parameter
limit keeps every row."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import Text, cast, insert, select

from mailport.store import Database, many_rows, open_database, threads, upgrade
from mailport.store.tables import messages, thread_roots
from mailport.sync import repository as repo
from tests.fixtures.migrations import database_with_mailbox, insert_mailbox

NOW = datetime(2026, 12, 6, 3, 0, 0, 123456, tzinfo=UTC)
TENANT = "ten_01m7zh4d94fxj51fc0rsy5n5tt"
BOX = "mbx_01m7zh4d94fxj51fc0rsy5n5aa"


@pytest.fixture
async def database(fresh_database_url: str) -> AsyncIterator[Database]:
    async with database_with_mailbox(fresh_database_url, TENANT, BOX, at=NOW) as database:
        yield database


def _row(
    item: str, *, oversized: bool = False, raw: bytes | None = b"Subject: x\r\n\r\nbody\r\n"
) -> dict[str, Any]:
    return {
        "id": f"msg_{item}",
        "tenant_id": TENANT,
        "mailbox_id": BOX,
        "scope": "Boîte/Été",
        "epoch": "1700000000",
        "item": item,
        "message_id_header": f"<{item.lstrip('fs')}@example.test>",
        "sha256": item.lstrip("fs").rjust(64, "0"),
        "size": 1 << 33,  # beyond 32 bits
        "oversized": oversized,
        "raw": None if oversized else raw,
        "event_id": f"evt_{item}",
        "created_at": NOW,
    }


def _stored(row: Any) -> tuple[Any, ...]:
    """A row as read back, but for what differs by construction (its id, item and event)."""
    return tuple(v for k, v in row._mapping.items() if k not in ("id", "item", "event_id"))


async def test_fast_rows_read_back_as_sqlalchemys_and_duplicates_are_skipped(database: Database) -> None:
    shapes = [
        {},
        {"oversized": True},
        {"raw": b"\x00\xff binary \r\n" * 300},
        {"raw": b""},
    ]
    fast = [_row(f"f{i}", **shape) for i, shape in enumerate(shapes)]
    slow = [_row(f"s{i}", **shape) for i, shape in enumerate(shapes)]
    slow[0]["message_id_header"] = fast[0]["message_id_header"] = None
    async with database.transaction() as conn:
        await repo.insert_messages(conn, fast)
        await conn.execute(insert(messages), slow)
    async with database.transaction() as conn:  # stored already: skipped, the first row kept
        await repo.insert_messages(conn, [{**fast[0], "id": "msg_again", "raw": b"other"}])
    async with database.connect() as conn:
        rows = {r.item: r for r in await conn.execute(select(messages))}
    assert len(rows) == 2 * len(shapes)
    for i in range(len(shapes)):
        assert _stored(rows[f"f{i}"]) == _stored(rows[f"s{i}"])
        assert rows[f"f{i}"].raw == fast[i]["raw"]
        assert rows[f"f{i}"].created_at == NOW
    assert rows["f0"].id == "msg_f0"
    assert rows["f1"].oversized is True and rows["f0"].oversized is False


async def test_timestamps_are_stored_as_the_same_text_as_sqlalchemys(database: Database) -> None:
    """SQLite keeps a timestamp as text and every range query compares it as text, so the fast
    path's stored form (:func:`mailport.store.many_rows.stored_form`, formatted once per value)
    must be SQLAlchemy's to the byte, whole seconds and another zone (stored in UTC) included.
    Until issue 21's seventeenth round it was ``sqlite3``'s ``…+00:00`` instead."""
    whole = datetime(2026, 12, 6, 3, 0, 0, tzinfo=UTC)
    elsewhere = NOW.astimezone(timezone(timedelta(hours=5, minutes=30)))
    stamps = {"0": whole, "1": elsewhere, "2": NOW}
    async with database.transaction() as conn:
        await repo.insert_messages(conn, [{**_row(f"f{k}"), "created_at": at} for k, at in stamps.items()])
        await conn.execute(
            insert(messages), [{**_row(f"s{k}"), "created_at": at} for k, at in stamps.items()]
        )
        await threads.remember(conn, BOX, ["<fast@example.test>"], now=elsewhere)
        await conn.execute(
            insert(thread_roots),
            {"mailbox_id": BOX, "thread_key": "slow", "root": "<slow@example.test>", "created_at": elsewhere},
        )
    async with database.connect() as conn:
        text = {
            r.item: r.stored
            for r in await conn.execute(
                select(messages.c.item, cast(messages.c.created_at, Text).label("stored"))
            )
        }
        back = {
            r.item: r.created_at for r in await conn.execute(select(messages.c.item, messages.c.created_at))
        }
        roots = {
            r.thread_key: r.stored
            for r in await conn.execute(
                select(thread_roots.c.thread_key, cast(thread_roots.c.created_at, Text).label("stored"))
            )
        }
    for key, at in stamps.items():
        assert text[f"f{key}"] == text[f"s{key}"]
        assert back[f"f{key}"] == at
    assert roots[threads.key_of("<fast@example.test>")] == roots["slow"]
    if database.dialect == "sqlite":
        assert text["f0"] == "2026-12-06 03:00:00.000000"
        assert text["f1"] == "2026-12-06 03:00:00.123456"


async def test_a_chunk_of_rows_is_stored_whole_and_in_order(database: Database) -> None:
    rows = [_row(f"{i:04d}") for i in range(700)]
    roots = [f"<root.{i}@example.test>" for i in range(700)]
    async with database.transaction() as conn:
        await repo.insert_messages(conn, rows)
        await threads.remember(conn, BOX, roots, now=NOW)
    async with database.connect() as conn:
        stored = (
            await conn.execute(select(messages.c.id).order_by(messages.c.created_at, messages.c.id))
        ).all()
        recorded = {r.root: r.thread_key for r in await conn.execute(select(thread_roots))}
    assert [r.id for r in stored] == [r["id"] for r in rows]
    assert recorded == {root: threads.key_of(root) for root in roots}


async def test_sqlite_splits_a_statement_over_the_parameter_limit(sqlite_url: str) -> None:
    database = open_database(sqlite_url)
    try:
        await upgrade(database)
        async with database.transaction() as conn:
            await insert_mailbox(conn, TENANT, BOX, at=NOW)
            sql = threads._sqlite_insert(conn)  # the single-row INSERT that remember() repeats
            stamp = many_rows.Stamps(thread_roots.c.created_at, conn.dialect)
            values = [(BOX, f"k{i:03d}", f"<r{i}@x>", stamp(NOW)) for i in range(25)]
            # 4 parameters per row, 10 per statement: 2 rows at a time, 13 statements
            await many_rows.insert_rows(conn, sql, values, max_parameters=10)
            await many_rows.insert_rows(conn, sql, values[:3], max_parameters=10)  # stored: skipped
        async with database.connect() as conn:
            got = (await conn.execute(select(thread_roots.c.thread_key, thread_roots.c.root))).all()
        assert sorted(got) == [(f"k{i:03d}", f"<r{i}@x>") for i in range(25)]
    finally:
        await database.aclose()
