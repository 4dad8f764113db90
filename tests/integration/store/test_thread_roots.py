"""The thread-key table on SQLite and PostgreSQL: roots recorded once per mailbox and key, kept
apart between mailboxes, gone with their mailbox; roots nothing can search for are left out;
and migration 0016 goes down and up again."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy import delete, select

from mailport.messages.threading import thread_key
from mailport.store import Database, current_revision, head_revision, open_database, upgrade
from mailport.store import threads as repo
from mailport.store.tables import mailboxes, thread_roots
from tests.fixtures.migrations import downgrade, insert_mailbox

NOW = datetime(2026, 12, 5, 1, 0, tzinfo=UTC)
TENANT = "ten_01m7zh4d94fxj51fc0rsy5n5tt"
BOX_A, BOX_B = "mbx_01m7zh4d94fxj51fc0rsy5n5aa", "mbx_01m7zh4d94fxj51fc0rsy5n5bb"
ROOT = "<root.1@example.test>"


@pytest.fixture
async def database(fresh_database_url: str) -> AsyncIterator[Database]:
    database = open_database(fresh_database_url)
    await upgrade(database)
    async with database.transaction() as conn:
        await insert_mailbox(conn, TENANT, BOX_A, at=NOW, email_key="a@example.test")
        await conn.execute(
            sa.insert(mailboxes).from_select(
                [c.name for c in mailboxes.c],
                select(
                    *(
                        sa.literal(BOX_B).label("id")
                        if c.name == "id"
                        else sa.literal("b@example.test").label(c.name)
                        if c.name in ("email", "email_key")
                        else c
                        for c in mailboxes.c
                    )
                ).where(mailboxes.c.id == BOX_A),
            )
        )
    try:
        yield database
    finally:
        await database.aclose()


def key(root: str) -> str:
    return thread_key(message_id=None, in_reply_to=(), references=(root,), content_sha256="")


async def test_roots_are_recorded_once_per_mailbox_and_key(database: Database) -> None:
    table = repo.ThreadRoots(database)
    assert repo.key_of(ROOT) == key(ROOT)
    await table.remember(BOX_A, [ROOT, ROOT, "<other@example.test>"])
    await table.remember(BOX_A, [ROOT])  # again: nothing changes, nothing fails
    assert await table.root(BOX_A, key(ROOT)) == ROOT
    assert await table.root(BOX_A, key("<other@example.test>")) == "<other@example.test>"
    assert await table.root(BOX_B, key(ROOT)) is None  # another mailbox: not handed out there
    assert await table.root(BOX_A, "0" * 32) is None
    async with database.connect() as conn:
        assert (await conn.execute(select(sa.func.count()).select_from(thread_roots))).scalar_one() == 2


async def test_unsearchable_roots_are_left_out(database: Database) -> None:
    table = repo.ThreadRoots(database)
    hashed = "sha256:" + "ab" * 32
    undecodable = "<caf\udce9@example.test>"
    await table.remember(BOX_A, [hashed, "<" + "x" * 1000 + ">", undecodable, "", "<ok@example.test>"])
    async with database.connect() as conn:
        assert (await conn.execute(select(thread_roots.c.root))).scalars().all() == ["<ok@example.test>"]


async def test_non_ascii_roots_and_the_mailbox_cascade(database: Database) -> None:
    table = repo.ThreadRoots(database)
    await table.remember(BOX_A, ["<größe.山田@example.test>"])
    await table.remember(BOX_B, ["<größe.山田@example.test>"])
    assert await table.root(BOX_B, key("<größe.山田@example.test>")) == "<größe.山田@example.test>"
    async with database.transaction() as conn:
        await conn.execute(delete(mailboxes).where(mailboxes.c.id == BOX_A))
    async with database.connect() as conn:
        left = (await conn.execute(select(thread_roots.c.mailbox_id))).scalars().all()
    assert left == [BOX_B]


async def test_migration_goes_down_and_up(fresh_database_url: str) -> None:
    database = open_database(fresh_database_url)
    try:
        await upgrade(database)
        async with database.transaction() as conn:
            await insert_mailbox(conn, TENANT, BOX_A, at=NOW, email_key="a@example.test")
            await repo.remember(conn, BOX_A, [ROOT], now=NOW)
        await downgrade(database, "0015_leases")
        async with database.connect() as conn:
            names = await conn.run_sync(lambda sync: sa.inspect(sync).get_table_names())
        assert "thread_roots" not in names and "mailboxes" in names
        await upgrade(database, "0016_thread_roots")
        assert await current_revision(database) == "0016_thread_roots"
        await upgrade(database)
        assert await current_revision(database) == head_revision()
        async with database.transaction() as conn:
            assert await repo.root_of(conn, BOX_A, key(ROOT)) is None  # a new, empty table
            await repo.remember(conn, BOX_A, [ROOT], now=NOW)
            assert await repo.root_of(conn, BOX_A, key(ROOT)) == ROOT
    finally:
        await database.aclose()
