"""Apply the Alembic migrations shipped inside the package, programmatically.

``mailport db upgrade`` and ``mailport serve`` (embedded default) call :func:`upgrade`; no
``alembic.ini`` is needed at run time. On PostgreSQL an advisory lock keeps two processes
starting at once from migrating concurrently.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.exc import SQLAlchemyError

from mailport.errors import ConfigurationError
from mailport.store.database import Database

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_LOCK_ID = 0x6D61696C706F7274  # "mailport"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def _upgrade_sync(connection: Connection, target: str) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, target)


async def upgrade(database: Database, target: str = "head") -> None:
    """Bring the schema to ``target`` (idempotent)."""
    try:
        async with database.transaction() as conn:
            await conn.run_sync(_upgrade_sync, target)
    except (SQLAlchemyError, OSError) as exc:
        raise ConfigurationError(
            f"cannot migrate the database {database.url}: {type(exc).__name__}: {exc}".splitlines()[0],
            hint="Check MAILPORT_DATABASE_URL and that the database server is reachable.",
        ) from exc


def _current_sync(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def current_revision(database: Database) -> str | None:
    """The schema's revision, or None for an empty database."""
    try:
        async with database.connect() as conn:
            return await conn.run_sync(_current_sync)
    except (SQLAlchemyError, OSError) as exc:
        raise ConfigurationError(
            f"cannot reach the database {database.url}: {type(exc).__name__}: {exc}".splitlines()[0],
            hint="Check MAILPORT_DATABASE_URL and that the database server is reachable.",
        ) from exc
