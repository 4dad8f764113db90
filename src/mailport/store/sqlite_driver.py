"""SQLite through aiosqlite with one trip to its thread per statement.

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
"""

from __future__ import annotations

import collections
import sqlite3
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
            outcome: _Outcome = await connection._execute(function, raw, operation, parameters)  # type: ignore[no-untyped-call]
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
