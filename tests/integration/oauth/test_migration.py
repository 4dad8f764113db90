"""Migration 0002_oauth goes down and up again cleanly (SQLite batch mode and PostgreSQL)."""

from __future__ import annotations

from sqlalchemy import Connection, inspect

from mailport.store import current_revision, head_revision, open_database, upgrade
from tests.fixtures.migrations import downgrade


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


async def test_oauth_migration_downgrades_and_upgrades(fresh_database_url: str):
    database = open_database(fresh_database_url)
    try:
        await upgrade(database)
        await downgrade(database, "0001")
        async with database.connect() as conn:
            tables = await conn.run_sync(_tables)
            columns = await conn.run_sync(
                lambda c: {col["name"] for col in inspect(c).get_columns("mailboxes")}
            )
        assert not tables & {"oauth_states", "oauth_apps", "oauth_device_flows"}
        assert "oauth_refresh_lease_until" not in columns and "token_version" in columns
        await upgrade(database)
        assert await current_revision(database) == head_revision()
    finally:
        await database.aclose()
