"""SQLite's WAL checkpoints, run beside the writers instead of inside a commit.

Why: SQLite copies the write-ahead log back into the database file (a checkpoint, with an
``fsync`` of each) inside the commit that takes the log past ``wal_autocheckpoint`` pages. That
commit holds the process's turn (:class:`mailport.store.database.Database` runs one SQLite
transaction at a time), so every other writer of the process -- the other watchers, the webhook
fan-out and its results, the lease renewals -- waits for the copy and its ``fsync``\\ s. In a
10-mailbox backlog (issue 21, twelfth round) the turn was held 80 % of the time, and the commits
averaged 6 ms inside it, half of that checkpoints.

Here, after a commit has released the turn, the database reads how many frames of the log are
not yet copied (the WAL-index header in the ``-shm`` file: ``mxFrame`` minus ``nBackfill``,
https://sqlite.org/walformat.html#the_wal_index_file_format; 100 bytes read, a few µs) and, at
:data:`PAGES` or more -- SQLite's own default threshold, so checkpoints are as frequent as they
were and an idle process adds no ``fsync`` -- starts a ``PASSIVE`` checkpoint on a worker thread
with a connection of its own (at most one running per database). SQLite lets one checkpointer
run while writers go on appending to the log (https://sqlite.org/wal.html#checkpointing). The
pool's connections keep SQLite's automatic checkpoint as a backstop at :data:`BACKSTOP_PAGES`,
in case the log ever outgrows what these keep up with (or the header cannot be read). Nothing
about durability changes: a checkpoint moves committed pages only.

Written by hand: the stdlib's ``sqlite3`` has no WAL hook, and no library runs checkpoints for
an async application.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import struct
from urllib.parse import unquote, urlsplit

log = logging.getLogger(__name__)

PAGES = 1_000  # frames not yet copied that start a checkpoint (SQLite's wal_autocheckpoint default)
BACKSTOP_PAGES = 10_000  # the pool's own wal_autocheckpoint
# the WAL-index header (native byte order): mxFrame in its first copy, nBackfill in the
# checkpoint information that follows the two copies
_U32 = struct.Struct("=I")
_MX_FRAME_AT = 16
_BACKFILL_AT = 96
_HEADER_BYTES = 100


def shm_path(path: str) -> str:
    """The WAL-index file of a database (``path`` as :func:`mailport.store.sqlite_watch.sqlite_path`
    gives it: a file name, or a ``file:`` URI)."""
    if path.startswith("file:"):
        path = unquote(urlsplit(path).path)
    return path + "-shm"


class Checkpointer:
    """Background ``PASSIVE`` checkpoints of one SQLite file, asked for after each commit."""

    __slots__ = ("path", "uri", "shm", "runs", "_task")

    def __init__(self, path: str) -> None:
        self.path = path
        self.uri = path.startswith("file:")
        self.shm = shm_path(path)
        self.runs = 0  # checkpoints started (for tests and benchmarks)
        self._task: asyncio.Task[None] | None = None

    def waiting(self) -> int:
        """Frames of the log not yet copied into the database file (0 when unknown)."""
        try:
            with open(self.shm, "rb", buffering=0) as shm:
                header = shm.read(_HEADER_BYTES)
        except OSError:
            return 0
        if len(header) < _HEADER_BYTES:
            return 0
        frames: int = _U32.unpack_from(header, _MX_FRAME_AT)[0]
        copied: int = _U32.unpack_from(header, _BACKFILL_AT)[0]
        return max(frames - copied, 0)

    def committed(self) -> None:
        """A transaction has committed and released the turn: start a checkpoint if none runs
        and the log holds :data:`PAGES` frames not yet copied."""
        loop = asyncio.get_running_loop()
        task = self._task
        if task is not None and not task.done() and task.get_loop() is loop:
            return  # (a task of another loop, e.g. a test client's, is that loop's business)
        if self.waiting() < PAGES:
            return
        self.runs += 1
        self._task = loop.create_task(asyncio.to_thread(self._checkpoint), name="sqlite-checkpoint")

    def _checkpoint(self) -> None:
        """On a worker thread. timeout=0: another checkpointer (another process's) makes this one
        return at once; the next commit asks again."""
        try:
            conn = sqlite3.connect(
                self.path, timeout=0, isolation_level=None, check_same_thread=False, uri=self.uri
            )
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


__all__ = ["BACKSTOP_PAGES", "PAGES", "Checkpointer", "shm_path"]
