"""SQLite through aiosqlite with at most one trip to its thread per statement.

SQLAlchemy's aiosqlite adapter makes three or four trips to aiosqlite's thread per statement
(open a cursor, execute, fetch the rows, close the cursor) and one more for the rollback with
which the pool resets a connection that has just committed. Each trip is a queue put, a thread
wake-up and a ``call_soon_threadsafe`` back, and a trip's answer waits for whatever else the
event loop is running. One new message took ~18 trips in the watcher's transaction and ~11 in
the webhook fan-out's, a few milliseconds of the ingest latency (issue 21).

Here a statement runs as one function on the thread: execute, fetch every row, close (results
are always fetched whole: a ``stream_results`` query keeps aiosqlite's own server-side cursor),
and a rollback is skipped when the connection has no transaction open (sqlite3's
``in_transaction``; SQLite's own rollback would do nothing then). Written by hand because no
library offers it. It queues its functions on aiosqlite's thread the way SQLAlchemy's own
adapter does for ``isolation_level`` (aiosqlite's ``_execute`` and ``_conn`` are private: the
version range in pyproject.toml is the one tested, and every SQLite test runs through here).

**Writes run on the event loop's thread while another process writes too.** A write transaction
holds the database's one write lock, for every process, from its first write to its commit, and
each trip to aiosqlite's thread adds the wait for the busy event loop to pick the answer up
(issue 21: a watcher's chunk held the lock ~46 ms for ~17 ms of statements). With delivery in a
process of its own, each process waited out the other's holds. So once this process has found
the lock taken by another (``SQLITE_BUSY``, below), and for :data:`CONTENDED_SECONDS` after the
last time, a statement that writes, and every statement of a transaction that has written
(sqlite3's ``in_transaction``), runs right here instead, unless its parameters carry more than
:data:`INLINE_MAX_BYTES`. Only then: in a process alone with its database the trips cost nobody
a lock wait, and they let the loop go on with other work (sending webhooks, parsing) while
SQLite writes; running them here made webhook delivery alone ~15 % slower. Reads outside a
write transaction, commits (a checkpoint may ``fsync``) and large statements always go to the
thread, so a slow query or a big message never stalls the loop for long.

**Busy.** The connections have SQLite's busy timeout at 0: a write that finds the lock taken
fails at once with ``SQLITE_BUSY`` instead of sleeping, on whichever thread it runs. On
aiosqlite's thread it is tried again every few milliseconds for up to :data:`BUSY_SECONDS`
(SQLite's own busy handler slept up to 100 ms between tries); on the event loop's, it goes to
aiosqlite's thread to wait. A statement that fails with ``SQLITE_BUSY`` has changed nothing, so
it is safe to run again.
"""

from __future__ import annotations

import collections
import sqlite3
import time
from collections.abc import Sequence
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_

# what a statement leaves behind: description, rows, rowcount, lastrowid
_Outcome = tuple[Any, list[Any], int, int | None]

BUSY_SECONDS = 5.0  # how long a statement waits for another process's write lock
_BUSY_PAUSES = (0.0002, 0.0005, 0.001, 0.002)  # between tries, then the last one again
INLINE_MAX_BYTES = 1024 * 1024  # parameters larger than this run on aiosqlite's thread
CONTENDED_SECONDS = 30.0  # writes run on the loop this long after another process's lock was met
# time.monotonic(); one float, set from any thread. Per process, not per database file: a
# process with two files and contention on one runs the other's writes on the loop too, which
# is as correct, only not as fast for that file.
_contended_until = 0.0
_WRITES = frozenset({"INSERT", "UPDATE", "DELETE", "REPLAC"})  # (the first six letters)


def _busy(error: sqlite3.OperationalError) -> bool:
    """Is this "the lock is taken" (by another process)? It then marks the process contended."""
    global _contended_until
    if getattr(error, "sqlite_errorcode", None) != sqlite3.SQLITE_BUSY:
        return False
    _contended_until = time.monotonic() + CONTENDED_SECONDS
    return True


def _size(parameters: Any) -> int:
    """The bytes a statement's parameters carry (strings counted by length), as far as it matters."""
    if parameters is None:
        return 0
    if isinstance(parameters, dict):
        parameters = parameters.values()
    total = 0
    for value in parameters:
        kind = type(value)
        if kind is bytes or kind is str:
            total += len(value)
        elif kind is tuple or kind is list or kind is dict:  # executemany's rows
            total += _size(value)
        if total > INLINE_MAX_BYTES:
            break
    return total


def _inline(raw: sqlite3.Connection, operation: str, parameters: Any) -> bool:
    """Run this statement on the event loop's thread? (See the module's docstring.)"""
    if _contended_until == 0.0 or time.monotonic() > _contended_until:
        return False
    if not raw.in_transaction and operation.lstrip()[:6].upper() not in _WRITES:
        return False
    return _size(parameters) <= INLINE_MAX_BYTES


def _waiting_out_busy(function: Any, raw: sqlite3.Connection, operation: str, parameters: Any) -> _Outcome:
    """On aiosqlite's thread: ``function``, tried again while another process holds the lock."""
    deadline: float | None = None
    tries = 0
    while True:
        try:
            outcome: _Outcome = function(raw, operation, parameters)
            return outcome
        except sqlite3.OperationalError as error:
            if not _busy(error):
                raise
            now = time.monotonic()
            if deadline is None:
                deadline = now + BUSY_SECONDS
            elif now >= deadline:
                raise
            time.sleep(_BUSY_PAUSES[min(tries, len(_BUSY_PAUSES) - 1)])
            tries += 1


def _execute(raw: sqlite3.Connection, operation: str, parameters: Any) -> _Outcome:
    """On aiosqlite's thread: the whole statement, its cursor closed."""
    cursor = raw.cursor()
    try:
        if parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        return description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


def _executemany(raw: sqlite3.Connection, operation: str, seq_of_parameters: Sequence[Any]) -> _Outcome:
    cursor = raw.cursor()
    try:
        cursor.executemany(operation, seq_of_parameters)
        return cursor.description, [], cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


class OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    """A cursor with no aiosqlite cursor behind it: each statement is one trip, its results
    kept here (the DBAPI attributes SQLAlchemy reads afterwards)."""

    __slots__ = ("_description", "_rowcount", "_lastrowid", "_arraysize")

    def __init__(self, adapt_connection: AsyncAdapt_aiosqlite_connection) -> None:
        # (no super().__init__: it would open an aiosqlite cursor, one trip)
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None
        self._arraysize = 1

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> int:
        return self._lastrowid  # type: ignore[return-value]  # (None before any insert, as sqlite3's)

    @property
    def arraysize(self) -> int:
        return self._arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._arraysize = value

    async def _async_soft_close(self) -> None:
        return  # nothing is open: the rows are all here

    def close(self) -> None:
        self._rows.clear()

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        try:
            return await_(self._run(_execute, operation, parameters))
        except Exception as error:
            self._adapt_connection._handle_exception(error)

    def executemany(self, operation: Any, seq_of_parameters: Any) -> Any:
        try:
            return await_(self._run(_executemany, operation, seq_of_parameters))
        except Exception as error:
            self._adapt_connection._handle_exception(error)

    async def _run(self, function: Any, operation: Any, parameters: Any) -> None:
        connection: aiosqlite.Connection = self._connection  # type: ignore[assignment]
        async with self._adapt_connection._execute_mutex:
            raw = connection._conn  # ValueError "no active connection" once closed, as aiosqlite's
            outcome: _Outcome | None = None
            if _inline(raw, operation, parameters):
                try:
                    outcome = function(raw, operation, parameters)
                except sqlite3.OperationalError as error:
                    if not _busy(error):
                        raise  # (else: the lock is taken; wait for it on the thread)
            if outcome is None:
                outcome = await connection._execute(_waiting_out_busy, function, raw, operation, parameters)  # type: ignore[no-untyped-call]
        self._description, rows, self._rowcount, self._lastrowid = outcome
        self._rows = collections.deque(rows)

    def nextset(self) -> None:
        self._rows.clear()  # sqlite3 has no further result sets

    def setinputsizes(self, *inputsizes: Any) -> None:
        return None


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ()
    _cursor_cls = OneTripCursor  # type: ignore[assignment]  # (a subclass: mypy reads the base's as exact)

    def rollback(self) -> None:
        raw = self._connection._connection
        if raw is None or not raw.in_transaction:
            return  # nothing to roll back (the pool's reset after a commit): no trip
        super().rollback()


class OneTripDBAPI(AsyncAdapt_aiosqlite_dbapi):
    """The DBAPI module handed to SQLAlchemy's aiosqlite dialect (``create_engine(module=...)``)."""

    def __init__(self) -> None:
        super().__init__(aiosqlite, sqlite3)

    def connect(self, *arg: Any, **kw: Any) -> OneTripConnection:
        adapted = super().connect(*arg, **kw)
        return OneTripConnection(self, adapted._connection)
