"""Migration 0017_changes on SQLite and PostgreSQL: ``change_tokens`` is created empty, keeps a
mailbox's tokens per stream, goes with its mailbox (cascade), and the way down drops it and only
it (up again works)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import delete, inspect, select

from mailport.store import current_revision, open_database, upgrade
from mailport.store.tables import change_tokens, mailbox_cursors, mailboxes
from mailport.sync import repository as sync_repo
from tests.fixtures.migrations import downgrade, insert_mailbox

NOW = datetime.now(UTC).replace(microsecond=0)
TENANT, MAILBOX = "ten_01m7zh4d94fxj51fc0rsy5n5tt", "mbx_01m7zh4d94fxj51fc0rsy5n5mm"


async def _tables(database) -> set[str]:  # type: ignore[no-untyped-def]
    async with database.connect() as conn:
        return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))


async def test_change_tokens_down_and_up_again(fresh_database_url: str) -> None:
    database = open_database(fresh_database_url)
    try:
        await upgrade(database, "0015_leases")
        assert "change_tokens" not in await _tables(database)
        async with database.transaction() as conn:
            await insert_mailbox(conn, TENANT, MAILBOX, at=NOW, email_key="a@example.test")
        await upgrade(database, "0017_changes")
        async with database.transaction() as conn:
            await sync_repo.save_change_token(
                conn, MAILBOX, "scope:INBOX", '{"m":"q","ms":4}', epoch="7", now=NOW
            )
            await sync_repo.save_change_token(
                conn, MAILBOX, "scope:INBOX", '{"m":"q","ms":9}', epoch="7", now=NOW
            )
            await sync_repo.save_change_token(conn, MAILBOX, "folders", '{"n":0,"f":{}}', epoch=None, now=NOW)
        async with database.connect() as conn:
            token = await sync_repo.get_change_token(conn, MAILBOX, "scope:INBOX")
            assert token == sync_repo.ChangeToken('{"m":"q","ms":9}', "7")
            assert (await sync_repo.get_change_token(conn, MAILBOX, "folders")).epoch is None  # type: ignore[union-attr]

        await downgrade(database, "0015_leases")
        assert await current_revision(database) == "0015_leases"
        tables = await _tables(database)
        assert "change_tokens" not in tables and {"mailboxes", "mailbox_cursors"} <= tables
        async with database.connect() as conn:
            assert (await conn.execute(select(mailboxes.c.id))).scalars().all() == [MAILBOX]

        await upgrade(database, "0017_changes")  # and up again: empty, and cascades with its mailbox
        async with database.transaction() as conn:
            assert (await conn.execute(select(change_tokens))).all() == []
            await sync_repo.save_change_token(conn, MAILBOX, "folders", "{}", epoch=None, now=NOW)
            await conn.execute(delete(mailboxes).where(mailboxes.c.id == MAILBOX))
        async with database.connect() as conn:
            assert (await conn.execute(select(change_tokens))).all() == []
            assert (await conn.execute(select(mailbox_cursors))).all() == []
    finally:
        await database.aclose()
