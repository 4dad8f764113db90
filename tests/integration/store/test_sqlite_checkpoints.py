"""SQLite's WAL checkpoints run beside the writers, after their commits: the pool's connections
checkpoint only past the backstop, yet the pages of a burst of commits reach the database file
while the database is open; a small commit starts none (an idle process adds no fsync); closing
waits for a checkpoint that runs."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert, text

from mailport.store import open_database, upgrade
from mailport.store.sqlite_checkpoint import BACKSTOP_PAGES, PAGES, shm_path
from mailport.store.tables import delivery_state

T0 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
ROW_BYTES = 3000
ROWS_PER_COMMIT = 100
COMMITS = 30  # ~9 MB: ~2,300 pages, past the threshold twice and far below the backstop


async def test_a_burst_of_commits_is_checkpointed_in_the_background(tmp_path: Path) -> None:
    path = tmp_path / "mailport.db"
    database = open_database(f"sqlite+aiosqlite:///{path}")
    await upgrade(database)
    try:
        async with database.connect() as conn:
            backstop = (await conn.execute(text("PRAGMA wal_autocheckpoint"))).scalar_one()
        assert backstop == BACKSTOP_PAGES  # a commit does not checkpoint this burst itself
        assert database.checkpoints is not None
        before = os.path.getsize(path)
        for n in range(COMMITS):
            async with database.transaction() as conn:
                await conn.execute(
                    insert(delivery_state),
                    [
                        {"name": f"{n}-{i}-" + "x" * ROW_BYTES, "fanout_seq": i, "updated_at": T0}
                        for i in range(ROWS_PER_COMMIT)
                    ],
                )
            await asyncio.sleep(0.02)
        assert 1 <= database.checkpoints.runs < COMMITS  # past the threshold only
        # Only a checkpoint copies pages from the log into the database file; the last one may
        # still run. What stays in the log is less than the threshold.
        for _ in range(100):
            if database.checkpoints.waiting() < PAGES:
                break
            await asyncio.sleep(0.05)
        assert database.checkpoints.waiting() < PAGES
        assert os.path.getsize(path) - before >= PAGES * 4096 // 2
    finally:
        await database.aclose()
    assert database.checkpoints._task is None  # closing waited for the last one


async def test_a_small_commit_starts_no_checkpoint(tmp_path: Path) -> None:
    database = open_database(f"sqlite+aiosqlite:///{tmp_path / 'mailport.db'}")
    await upgrade(database)
    try:
        assert database.checkpoints is not None
        runs = database.checkpoints.runs
        async with database.transaction() as conn:
            await conn.execute(insert(delivery_state).values(name="one", fanout_seq=1, updated_at=T0))
        assert 0 < database.checkpoints.waiting() < PAGES  # the header was read: frames wait
        assert database.checkpoints.runs == runs
    finally:
        await database.aclose()


def test_the_wal_index_of_a_uri_is_beside_its_file() -> None:
    assert shm_path("/var/lib/mailport/mailport.db") == "/var/lib/mailport/mailport.db-shm"
    assert shm_path("file:/var/lib/mail%20port/m.db?mode=rwc") == "/var/lib/mail port/m.db-shm"


async def test_databases_without_a_file_have_no_checkpoints(postgres_url: str) -> None:
    memory = open_database("sqlite+aiosqlite:///:memory:")
    postgres = open_database(postgres_url)
    try:
        assert memory.checkpoints is None
        assert postgres.checkpoints is None
    finally:
        await memory.aclose()
        await postgres.aclose()
