"""The async engine and its transactions, with the few per-dialect settings that matter.

SQLite needs foreign keys switched on per connection (for ``ON DELETE CASCADE``), WAL and a
busy timeout so that the API and the watchers can write from one process without
``database is locked``. PostgreSQL needs nothing special. Upserts (``ON CONFLICT``) are
written once for both dialects through :func:`dialect_insert`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Table, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from mailport.errors import ConfigurationError


class Database:
    """One engine; ``transaction()`` for a unit of work, ``connect()`` for reads."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def url(self) -> str:
        """The URL with any password masked (for messages and logs)."""
        return self.engine.url.render_as_string(hide_password=True)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            yield conn

    async def ping(self) -> bool:
        """True when the database answers (for /readyz)."""
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except (SQLAlchemyError, OSError):
            return False
        return True

    async def aclose(self) -> None:
        await self.engine.dispose()


def dialect_insert(conn: AsyncConnection, table: Table) -> Any:
    """An ``INSERT`` of this connection's dialect, the one that has ``on_conflict_do_*``."""
    return postgresql.insert(table) if conn.dialect.name == "postgresql" else sqlite.insert(table)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def open_database(url: str, *, echo: bool = False) -> Database:
    """An engine for ``url`` (``sqlite+aiosqlite://…`` or ``postgresql+asyncpg://…[?search_path=schema]``)."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigurationError("MAILPORT_DATABASE_URL is not a valid database URL") from exc
    kwargs: dict[str, Any] = {"echo": echo}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    elif parsed.get_backend_name() == "postgresql":
        kwargs["pool_pre_ping"] = True
        search_path = parsed.query.get("search_path")
        if search_path is not None:
            # `?search_path=mailport` keeps mailport's tables in their own schema (one database,
            # several applications or test runs); asyncpg takes it as a server setting.
            parsed = parsed.difference_update_query(["search_path"])
            kwargs["connect_args"] = {"server_settings": {"search_path": str(search_path)}}
    else:
        raise ConfigurationError(
            f"unsupported database {parsed.get_backend_name()!r}: use sqlite+aiosqlite:// or "
            "postgresql+asyncpg://"
        )
    try:
        engine = create_async_engine(parsed, **kwargs)
    except (ArgumentError, NoSuchModuleError, ImportError) as exc:
        raise ConfigurationError(f"cannot use database URL {parsed.render_as_string()}: {exc}") from exc
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return Database(engine)
