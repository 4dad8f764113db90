"""SQLite's WAL checkpoints, run beside the writers instead of inside a commit.

Why: SQLite copies the write-ahead log back into the database file (a checkpoint, with an
``fsync`` of each) inside the commit that takes the log past ``wal_autocheckpoint`` pages. That
commit holds the process's turn (:class:`mailport.store.database.Database` runs one SQLite
transaction at a time), so every other writer of the process -- the other watchers, the webhook
fan-out and its results, the lease renewals -- waits for the copy and its ``fsync``\\ s. In a
10-mailbox backlog (issue 21, twelfth round) the turn was held 80 % of the time, and the commits
averaged 6 ms inside it, half of that checkpoints.

Here a commit asks for a ``PASSIVE`` checkpoint (at most one running per database, at most one
started per :data:`INTERVAL`), which runs on a worker thread with a connection of its own after
the turn is released: SQLite lets one checkpointer run while writers go on appending to the log
(https://sqlite.org/wal.html#checkpointing). The pool's connections keep SQLite's automatic
checkpoint as a backstop at :data:`BACKSTOP_PAGES`, in case the log ever outgrows what these
keep up with. Nothing about durability changes: a checkpoint moves committed pages only.

Why a time limit and not the log's length: the length is in the WAL-index (``-shm``) file, but
closing any descriptor of a file drops every POSIX lock this process holds on it, SQLite's
included (https://sqlite.org/howtocorrupt.html, section 2.2). A version that read the header
with ``open()`` let other processes recover the log under this one's writers: duplicate rows
past unique indexes in the SIGKILL tests. Only SQLite opens SQLite's files here. The cost: a
process that commits now and then (lease renewals) checkpoints after such commits, at most
once per :data:`INTERVAL`, where SQLite alone would wait for 1,000 pages of log.

Written by hand: the stdlib's ``sqlite3`` has no WAL hook, and no library runs checkpoints for
an async application.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3

from mailport.store.sqlite_watch import side_connection

log = logging.getLogger(__name__)

INTERVAL = 0.2  # seconds: at most one checkpoint started per interval (only after commits)
BACKSTOP_PAGES = 10_000  # the pool's own wal_autocheckpoint (SQLite's default is 1,000)


class Checkpointer:
    """Background ``PASSIVE`` checkpoints of one SQLite file, asked for after each commit."""

    __slots__ = ("path", "runs", "_task", "_last")

    def __init__(self, path: str) -> None:
        self.path = path
        self.runs = 0  # checkpoints started (for tests and benchmarks)
        self._task: asyncio.Task[None] | None = None
        self._last = float("-inf")

    def committed(self) -> None:
        """A transaction has committed and released the turn: start a checkpoint if none runs
        and none started within :data:`INTERVAL`."""
        loop = asyncio.get_running_loop()
        task = self._task
        if task is not None and not task.done() and task.get_loop() is loop:
            return  # (a task of another loop, e.g. a test client's, is that loop's business)
        now = loop.time()
        if now - self._last < INTERVAL:
            return
        self._last = now
        self.runs += 1
        self._task = loop.create_task(asyncio.to_thread(self._checkpoint), name="sqlite-checkpoint")

    def _checkpoint(self) -> None:
        """On a worker thread. timeout=0: another checkpointer (another process's) makes this one
        return at once; the next commit asks again."""
        try:
            conn = side_connection(self.path)
        except sqlite3.Error as exc:
            log.debug("SQLite checkpoint of %s: %s", self.path, exc)
            return
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as exc:  # busy: another checkpoint runs
            log.debug("SQLite checkpoint of %s: %s", self.path, exc)
        finally:
            conn.close()

    async def aclose(self) -> None:
        """Wait for a running checkpoint (it cannot be interrupted, and it is short: it never
        waits for a lock)."""
        task, self._task = self._task, None
        if task is not None and not task.done() and task.get_loop() is asyncio.get_running_loop():
            await asyncio.wait({task})


__all__ = ["BACKSTOP_PAGES", "INTERVAL", "Checkpointer"]
