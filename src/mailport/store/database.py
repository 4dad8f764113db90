"""The async engine and its transactions, with the few per-dialect settings that matter.

SQLite needs foreign keys switched on per connection (for ``ON DELETE CASCADE``) and WAL. It
has one writer at a time, so the transactions of one process take turns (:class:`_Turns`)
before they begin: left to the busy handling, which only tries again now and then and gives up
with ``database is locked`` after a timeout, a steady writer (a backlog being stored) starved
the others -- lease renewals, heartbeats -- on a loaded machine, and the watchers stalled.
Another process's write lock is waited for by the driver on aiosqlite's thread
(:mod:`mailport.store.sqlite_driver`, which also says when and why writes run on the event
loop's thread). PostgreSQL needs nothing special. Upserts (``ON CONFLICT``) are written once for both
dialects through :func:`dialect_insert`.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
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
from mailport.store.sqlite_checkpoint import BACKSTOP_PAGES, Checkpointer
from mailport.store.sqlite_driver import OneTripDBAPI
from mailport.store.sqlite_watch import sqlite_path

log = logging.getLogger(__name__)

APPLICATION_NAME = "mailport"  # PostgreSQL's application_name of mailport's sessions

# Longer than any transaction should take: past it, a transaction goes ahead without its turn
# (the busy handling then decides), so a transaction that waits on another task's
# transaction slows down but never hangs.
TURN_WAIT_SECONDS = 30.0
SQLITE_MMAP_BYTES = 256 * 1024 * 1024  # address space, not memory: pages are the OS's page cache


class _Turns:
    """SQLite transactions of one event loop, one after the other, in the order they asked.

    Re-entrant for the task holding the turn (a nested transaction in that task does not wait
    for itself)."""

    __slots__ = ("_lock", "_holder", "_depth")

    def __init__(self) -> None:
        self._lock = asyncio.Lock()  # FIFO: nobody starves
        self._holder: asyncio.Task[Any] | None = None
        self._depth = 0

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        task = asyncio.current_task()
        if task is not None and task is self._holder:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        try:
            async with asyncio.timeout(TURN_WAIT_SECONDS):  # Lock.acquire is cancellation-safe
                await self._lock.acquire()
        except TimeoutError:
            log.warning("a SQLite transaction waited %.0f s for its turn; it goes ahead", TURN_WAIT_SECONDS)
            yield
            return
        self._holder = task
        try:
            yield
        finally:
            self._holder = None
            self._lock.release()


class Database:
    """One engine; ``transaction()`` for a unit of work, ``connect()`` for reads."""

    def __init__(self, engine: AsyncEngine, *, idle_transaction_seconds: float | None = None) -> None:
        self.engine = engine
        # PostgreSQL ends a session idle this long inside a transaction (see mailport.store.stalled)
        self.idle_transaction_seconds = idle_transaction_seconds
        self._turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Turns]
        self._turns = weakref.WeakKeyDictionary()
        # a SQLite file's WAL checkpoints, run after the commits, outside the turn
        path = sqlite_path(engine.url) if engine.dialect.name == "sqlite" else None
        self.checkpoints = Checkpointer(path) if path is not None else None

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def url(self) -> str:
        """The URL with any password masked (for messages and logs)."""
        return self.engine.url.render_as_string(hide_password=True)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        if self.engine.dialect.name != "sqlite":
            async with self.engine.begin() as conn:
                yield conn
            return
        loop = asyncio.get_running_loop()
        turns = self._turns.get(loop)
        if turns is None:
            turns = self._turns[loop] = _Turns()
        async with turns.turn(), self.engine.begin() as conn:
            yield conn
        if self.checkpoints is not None:
            self.checkpoints.committed()

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
        if self.checkpoints is not None:
            await self.checkpoints.aclose()
        await self.engine.dispose()


def dialect_insert(conn: AsyncConnection, table: Table) -> Any:
    """An ``INSERT`` of this connection's dialect, the one that has ``on_conflict_do_*``."""
    return postgresql.insert(table) if conn.dialect.name == "postgresql" else sqlite.insert(table)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    # 0: a write that finds the lock taken fails at once, and the driver waits for it on
    # aiosqlite's thread, never on the event loop's (mailport.store.sqlite_driver)
    cursor.execute("PRAGMA busy_timeout=0")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # checkpoints run beside the writers, after their commits (mailport.store.sqlite_checkpoint);
    # a commit checkpoints itself only past this many pages of log
    cursor.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}")
    # Reads through a memory map instead of a pread() per page. A pooled connection's page
    # cache is dropped whenever another connection has committed since its last transaction,
    # which during a backlog is every time; re-reading it by pread() was a visible share of the
    # SQLite thread's time. Writes still go through the WAL, so durability is unchanged.
    cursor.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
    cursor.close()


def open_database(url: str, *, echo: bool = False, idle_transaction_seconds: float | None = None) -> Database:
    """An engine for ``url`` (``sqlite+aiosqlite://…`` or ``postgresql+asyncpg://…[?search_path=schema]``).

    ``idle_transaction_seconds`` (PostgreSQL): the server ends a session that sits inside an open
    transaction that long without sending anything. A process paused mid-transaction (SIGSTOP, a
    frozen VM, a partition) would otherwise hold its row locks -- a lease row it fenced with, say
    -- for as long as it stays paused, and no other worker could take the lease over. mailport
    never waits on the network inside a transaction, so only such a pause reaches the limit.
    The server leaves out one state a pause can stop in; :mod:`mailport.store.stalled` covers it.
    """
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
        server_settings: dict[str, str] = {}
        search_path = parsed.query.get("search_path")
        if search_path is not None:
            # `?search_path=mailport` keeps mailport's tables in their own schema (one database,
            # several applications or test runs); asyncpg takes it as a server setting.
            parsed = parsed.difference_update_query(["search_path"])
            server_settings["search_path"] = str(search_path)
        if idle_transaction_seconds is not None:
            server_settings["idle_in_transaction_session_timeout"] = str(int(idle_transaction_seconds * 1000))
        # names mailport's sessions in pg_stat_activity (for operators, and mailport.store.stalled)
        server_settings["application_name"] = APPLICATION_NAME
        kwargs["connect_args"] = {"server_settings": server_settings}
    else:
        raise ConfigurationError(
            f"unsupported database {parsed.get_backend_name()!r}: use sqlite+aiosqlite:// or "
            "postgresql+asyncpg://"
        )
    if parsed.get_backend_name() == "sqlite" and parsed.get_driver_name() == "aiosqlite":
        kwargs["module"] = OneTripDBAPI()  # at most one trip to aiosqlite's thread per statement
        # one connection, two threads, never at once: the event loop's (writes, while another
        # process writes too) and aiosqlite's (the rest)
        kwargs["connect_args"] = {"check_same_thread": False}
    try:
        engine = create_async_engine(parsed, **kwargs)
    except (ArgumentError, NoSuchModuleError, ImportError) as exc:
        raise ConfigurationError(f"cannot use database URL {parsed.render_as_string()}: {exc}") from exc
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return Database(engine, idle_transaction_seconds=idle_transaction_seconds)
