"""SQLite's WAL checkpoints run beside the writers, after their commits: the pool's connections
checkpoint only past the backstop, yet the pages of a burst of commits reach the database file
while the database is open, and closing waits for a checkpoint that runs."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert, text

from mailport.store import open_database, upgrade
from mailport.store.sqlite_checkpoint import BACKSTOP_PAGES, INTERVAL
from mailport.store.tables import delivery_state

T0 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
ROW_BYTES = 3000
ROWS_PER_COMMIT = 100
COMMITS = 20  # ~6 MB: 1,500 pages, past SQLite's default 1,000 and far below the backstop


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
            await asyncio.sleep(INTERVAL / 4)
        written = COMMITS * ROWS_PER_COMMIT * ROW_BYTES
        runs = database.checkpoints.runs
        assert runs >= 2  # asked for after commits, at most one per interval
        # Only a checkpoint copies pages from the log into the database file; the last one may
        # still run.
        for _ in range(100):
            if os.path.getsize(path) - before >= written:
                break
            await asyncio.sleep(0.05)
        assert os.path.getsize(path) - before >= written
        assert runs <= COMMITS
    finally:
        await database.aclose()
    assert database.checkpoints._task is None  # closing waited for the last one


async def test_databases_without_a_file_have_no_checkpoints(postgres_url: str) -> None:
    memory = open_database("sqlite+aiosqlite:///:memory:")
    postgres = open_database(postgres_url)
    try:
        assert memory.checkpoints is None
        assert postgres.checkpoints is None
    finally:
        await memory.aclose()
        await postgres.aclose()
