"""Other processes' commits to a SQLite file, noticed within one poll of ``PRAGMA data_version``.

Why: on PostgreSQL a process that commits events wakes the dispatcher of another at once (its
``NOTIFY``, :mod:`mailport.fleet.listen`); SQLite has no signal between processes, so a
dispatcher in a process of its own (``MAILPORT_WORKER_PARTS=delivery``) found the watchers'
events only at its poll, once a second, and a backlog's webhooks trailed ingestion by that much.

``PRAGMA data_version`` (https://sqlite.org/pragma.html#pragma_data_version) changes when another
connection has committed since this connection last asked. Asking reads the WAL index in shared
memory: no disk read and, in WAL mode, no wait for a writer (a few µs here). That is less than a
trip to aiosqlite's thread, so the question runs on the event loop's thread, on a connection of
its own that never writes and never holds a transaction. When the answer changed, ``probe`` (one
short read on the same connection, e.g. the newest event's ``seq``) tells the caller whether the
change concerns it, so this process's own commits, which change the answer too, cost no more
than that read.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable

from sqlalchemy.engine import URL

from mailport.tasks import cancel_and_wait

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 0.02  # seconds between two questions: the most a foreign commit waits


class CommitWatch:
    """Calls ``on_change(value)`` with ``probe``'s first column whenever another connection has
    committed to ``path`` since the last look (once at start too: what came before it)."""

    def __init__(
        self,
        path: str,
        probe: str,
        on_change: Callable[[int], None],
        *,
        interval: float = DEFAULT_INTERVAL,
    ) -> None:
        self.path = path
        self.probe = probe
        self.interval = interval
        self._on_change = on_change
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="sqlite-commit-watch")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task, timeout=5)
            self._task = None

    async def _run(self) -> None:
        # timeout=0: a busy database (a WAL recovery) answers at once; the next tick asks again
        conn = side_connection(self.path)
        try:
            seen: int | None = None
            while True:
                try:
                    version = conn.execute("PRAGMA data_version").fetchone()[0]
                    if version != seen:
                        row = conn.execute(self.probe).fetchone()
                        seen = version
                        self._on_change(int(row[0] or 0) if row else 0)
                except sqlite3.Error as exc:  # busy, or the schema not there yet: look again
                    log.debug("SQLite commit watch on %s: %s", self.path, exc)
                except Exception:
                    log.exception("a SQLite commit watcher's callback failed")
                await asyncio.sleep(self.interval)
        finally:
            conn.close()


def side_connection(path: str) -> sqlite3.Connection:
    """A connection of mailport's own beside the pool's (``path`` as :func:`sqlite_path` gives
    it): autocommit, usable from any thread, and never waiting for a lock (``timeout=0``: the
    caller looks again later)."""
    return sqlite3.connect(
        path, timeout=0, isolation_level=None, check_same_thread=False, uri=path.startswith("file:")
    )


def sqlite_path(url: URL) -> str | None:
    """The file behind a SQLite database URL (``file:`` when the URL asks for a URI), or None
    for PostgreSQL and in-memory databases, which no other process can write to."""
    name = url.database
    if url.get_backend_name() != "sqlite" or not name or name == ":memory:" or "mode=memory" in name:
        return None
    if url.query.get("uri") == "true" and not name.startswith("file:"):
        return "file:" + name
    return name


__all__ = ["DEFAULT_INTERVAL", "CommitWatch", "side_connection", "sqlite_path"]
