"""Migrations build exactly the declared tables on SQLite and PostgreSQL, idempotently."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from mailport.bootstrap import build
from mailport.crypto import generate_key
from mailport.errors import DatabaseNotMigratedError
from mailport.store import current_revision, head_revision, open_database, upgrade
from mailport.store.tables import metadata
from tests.fixtures.api import make_settings


async def test_upgrade_creates_the_declared_schema_and_is_idempotent(fresh_database_url: str):
    database = open_database(fresh_database_url)
    try:
        assert await current_revision(database) is None
        await upgrade(database)
        await upgrade(database)
        assert await current_revision(database) == head_revision()
        async with database.connect() as conn:
            diff = await conn.run_sync(lambda c: compare_metadata(MigrationContext.configure(c), metadata))
        assert diff == []
    finally:
        await database.aclose()


async def test_an_unmigrated_database_is_a_clear_startup_error(fresh_database_url: str, tmp_path: Path):
    settings = make_settings(fresh_database_url, tmp_path, generate_key())
    with pytest.raises(DatabaseNotMigratedError) as caught:
        await build(settings, migrate=False)
    assert "mailport db upgrade" in caught.value.hint
    services = await build(settings, migrate=True)
    await services.aclose()
    services = await build(settings, migrate=False)  # now current: starts without migrating
    await services.aclose()
