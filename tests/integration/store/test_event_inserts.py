"""Appending events on SQLite and PostgreSQL: the events that went in come back with the seqs
the database gave them, in order, those whose idempotency key exists are skipped (on SQLite
the seqs are taken from ``lastrowid`` when every row of a statement went in, else read back),
a statement split over SQLite's parameter limit keeps every row, and events commit in ``seq``
order: a writer appending while another's events are not yet committed waits for that commit
(PostgreSQL's event lock, taken by the INSERT itself; SQLite's one writer)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from mailport.events import NewEvent, append_many
from mailport.store import Database, many_rows
from mailport.store.tables import events
from tests.fixtures.migrations import database_with_mailbox

NOW = datetime(2026, 12, 6, 10, 0, 0, 654321, tzinfo=UTC)
TENANT = "ten_01m7zh4d94fxj51fc0rsy5n5tt"
BOX = "mbx_01m7zh4d94fxj51fc0rsy5n5aa"


@pytest.fixture
async def database(fresh_database_url: str) -> AsyncIterator[Database]:
    async with database_with_mailbox(fresh_database_url, TENANT, BOX, at=NOW) as database:
        yield database


def _new(key: str) -> NewEvent:
    return NewEvent(TENANT, BOX, "message.received", {"key": key, "text": "é" * 3}, key)


async def _stored(database: Database) -> dict[str, tuple[int, str, datetime, object]]:
    async with database.connect() as conn:
        rows = (await conn.execute(select(events))).all()
    return {r.idempotency_key: (r.seq, r.id, r.created_at, r.accepted_at) for r in rows}


async def test_appended_events_carry_their_stored_seqs_and_duplicates_are_skipped(
    database: Database,
) -> None:
    async with database.transaction() as conn:
        first = await append_many(conn, [_new("a"), _new("b")], now=NOW)
    async with database.transaction() as conn:  # "b" exists: skipped, the others go in
        second = await append_many(conn, [_new("c"), _new("b"), _new("d")], now=NOW)
    async with database.transaction() as conn:  # all exist: nothing
        third = await append_many(conn, [_new("a"), _new("d")], now=NOW)
    stored = await _stored(database)
    assert [e.idempotency_key for e in first] == ["a", "b"]
    assert [e.idempotency_key for e in second] == ["c", "d"] and third == []
    for event in first + second:
        assert stored[event.idempotency_key] == (event.seq, event.id, NOW, None)
    seqs = [e.seq for e in first + second]
    assert seqs == sorted(seqs) and len(set(seqs)) == 4


async def test_a_writer_waits_for_the_commit_of_events_appended_before_its_own(database: Database) -> None:
    """A reader that has seen ``seq`` N never finds a smaller one appear later: the second
    writer's INSERT does not go in (nor draw a ``seq``) until the first writer commits."""

    async def second_writer() -> list[int]:
        async with database.transaction() as conn:
            return [e.seq for e in await append_many(conn, [_new("c"), _new("d")], now=NOW)]

    async with database.transaction() as conn:
        first = [e.seq for e in await append_many(conn, [_new("a"), _new("b")], now=NOW)]
        second = asyncio.create_task(second_writer())
        await asyncio.sleep(0.5)
        assert not second.done()  # waiting for the lock this transaction holds
        assert await _stored(database) == {}  # and nothing of either is visible yet
    later = await asyncio.wait_for(second, 10)
    assert first == sorted(first) and later == sorted(later)
    assert min(later) > max(first)
    assert sorted(stored[0] for stored in (await _stored(database)).values()) == first + later


async def test_a_statement_split_over_the_parameter_limit_keeps_every_row(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(many_rows, "MAX_PARAMETERS", 21)  # SQLite: three events per statement
    async with database.transaction() as conn:
        await append_many(conn, [_new("k1"), _new("k3")], now=NOW)
    keys = [f"k{n}" for n in range(8)]
    async with database.transaction() as conn:  # k1 and k3 skipped, in two different pages
        got = await append_many(conn, [_new(key) for key in keys], now=NOW)
    stored = await _stored(database)
    assert [e.idempotency_key for e in got] == ["k0", "k2", "k4", "k5", "k6", "k7"]
    assert all(stored[e.idempotency_key][:2] == (e.seq, e.id) for e in got)
    assert [e.seq for e in got] == sorted(e.seq for e in got)
