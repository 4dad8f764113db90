"""Many rows in ONE ``INSERT … VALUES (…), (…), …`` instead of an ``executemany`` (SQLite; and
PostgreSQL where the rows must come back: ``RETURNING``, below).

Why: the ``sqlite3`` module steps an ``executemany`` once per row and gives the GIL back around
every step. The statement runs in aiosqlite's thread while the event loop parses the next chunk,
so every row's step waited for the loop to hand the GIL back (up to the 5 ms switch interval):
a 200-row chunk of messages took ~8 ms of wall time in the backlog bench for ~1 ms of SQLite
work. One statement is one step. SQLAlchemy batches this way only with ``RETURNING`` (its
"insertmanyvalues"); without it the dialect uses the driver's ``executemany``, hence this.

The SQL is SQLAlchemy's own single-row statement with its ``VALUES`` group repeated, in
SQLite's ``qmark`` style or asyncpg's numbered one (``$1::VARCHAR``, renumbered per row). On
PostgreSQL a multi-row statement is for an ``INSERT … RETURNING`` (asyncpg's ``executemany``
returns no rows): SQLAlchemy's own multi-row ``RETURNING`` ("insertmanyvalues") processed a
dict per row and took twice the CPU of the same statement sent through the driver (12.6-13.8
against 6.0-6.9 ms for a chunk of 200 events, issue 21).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncConnection

# SQLite's default limit of bound parameters per statement since 3.32 (builds may raise it);
# under PostgreSQL's (asyncpg: 32,767), so it serves both
MAX_PARAMETERS = 32766
_VALUES = re.compile(r" VALUES (\((?:\?, )*\?\))")
# asyncpg's style as SQLAlchemy compiles it: $1, $2, … each with an optional cast (::VARCHAR,
# ::TIMESTAMP WITH TIME ZONE), numbered from 1 in order
_NUMBERED = r"\$\d+(?:::[A-Z][A-Z ]*)?"
_NUMBERED_VALUES = re.compile(rf" VALUES (\((?:{_NUMBERED}, )*{_NUMBERED}\))")
_NUMBER = re.compile(r"\$(\d+)")


@lru_cache(maxsize=64)
def multi_row_sql(single_row: str, rows: int) -> str:
    """``single_row`` (an ``INSERT … VALUES (?, …, ?) …`` or ``… VALUES ($1, …, $n) …``
    compiled by SQLAlchemy) for ``rows`` rows; what follows the ``VALUES`` group (``ON
    CONFLICT …``, ``RETURNING …``) is kept. Numbered parameters go on from row to row."""
    found = list(_VALUES.finditer(single_row))
    numbered = not found
    if numbered:
        found = list(_NUMBERED_VALUES.finditer(single_row))
    if len(found) != 1:
        raise ValueError(f"not a single-row INSERT: {single_row!r}")
    match = found[0]
    group = match.group(1)
    if numbered:
        width = len(_NUMBER.findall(group))
        if [int(n) for n in _NUMBER.findall(group)] != list(range(1, width + 1)):
            raise ValueError(f"parameters not numbered 1..{width} in order: {single_row!r}")
        groups = [_NUMBER.sub(lambda m, k=k: f"${int(m.group(1)) + k * width}", group) for k in range(rows)]
    else:
        groups = [group] * rows
    return f"{single_row[: match.start(1)]}{', '.join(groups)}{single_row[match.end(1) :]}"


def positional_sql(statement: Any, dialect: Any, columns: Sequence[str]) -> str:
    """``statement`` compiled for ``dialect`` with its parameters in the order of ``columns``,
    which the callers' tuples follow; refused if SQLAlchemy ever orders them otherwise (values
    would land in the wrong columns)."""
    compiled = statement.compile(dialect=dialect, column_keys=list(columns))
    if tuple(compiled.positiontup or ()) != tuple(columns):
        raise ValueError(f"compiled parameters {compiled.positiontup} differ from {tuple(columns)}")
    return str(compiled)


async def insert_rows(
    conn: AsyncConnection,
    single_row: str,
    rows: Sequence[Sequence[Any]],
    *,
    max_parameters: int = MAX_PARAMETERS,
) -> None:
    """Insert ``rows`` (tuples in ``single_row``'s parameter order) in as few statements as
    ``max_parameters`` (SQLite's limit) allows, in order."""
    if not rows:
        return
    per_statement = max(1, max_parameters // len(rows[0]))
    for start in range(0, len(rows), per_statement):
        page = rows[start : start + per_statement]
        flat = [value for row in page for value in row]
        await conn.exec_driver_sql(multi_row_sql(single_row, len(page)), tuple(flat))


def stored_form(column: Any, dialect: Any) -> Callable[[Any], Any] | None:
    """What SQLAlchemy itself sends the driver for a value of ``column`` (a timestamp). On SQLite
    that is its text, ``YYYY-MM-DD HH:MM:SS.ffffff`` in UTC (the bind processor of the column's
    type as the dialect implements it); on PostgreSQL a datetime in UTC (the type's own).

    Why the dialect's on SQLite: the type's own ``bind_processor`` (a ``TypeDecorator`` over the generic
    ``DateTime``) gave SQLite a datetime, which ``sqlite3``'s default adapter (deprecated since
    Python 3.12) stored as ``isoformat(" ")``, ``…+00:00``: not the text SQLAlchemy's own
    statements store and compare against (equal instants compared as unequal), and a Python
    call per datetime parameter of every row, ~1.2 µs each against 0.19 µs for text (100,000
    parameters, measured here). With :class:`Stamps` the rows that share a timestamp format it
    once. ``None``: the values go to the driver as they are.

    On SQLite the text comes from :func:`_sqlite_text` (C's ``isoformat``, ~0.5 µs) instead of
    SQLAlchemy's processor (a ``%`` format of a dict, ~1.5 µs per value), but only where the two
    agree on :data:`_PROBES`; a column stored otherwise keeps SQLAlchemy's processor."""
    if dialect.name != "sqlite":  # the type's own processor, as before: it gives the same datetime
        own: Callable[[Any], Any] | None = column.type.bind_processor(dialect)
        return own
    process: Callable[[Any], Any] | None = column.type.dialect_impl(dialect).bind_processor(dialect)
    if process is not None:
        try:
            same = all(process(probe) == _sqlite_text(probe) for probe in _PROBES)
        except (TypeError, ValueError):
            same = False
        if same:
            return _sqlite_text
    return process


# an instant with and without microseconds, one in UTC and one elsewhere, an early year
_PROBES = (
    datetime(2026, 12, 6, 3, 0, 0, tzinfo=UTC),
    datetime(1999, 1, 2, 3, 4, 5, 678901, tzinfo=timezone(timedelta(hours=-7, minutes=-30))),
    datetime(999, 12, 31, 23, 59, 59, 1, tzinfo=timezone(timedelta(hours=5))),
)


def _sqlite_text(value: datetime) -> str:
    """An aware datetime as SQLAlchemy's SQLite ``DATETIME`` stores it, in UTC:
    ``YYYY-MM-DD HH:MM:SS.ffffff`` (a naive one is refused, as ``UTCDateTime`` refuses it)."""
    if value.tzinfo is None:
        raise ValueError("naive datetime given to the database; use timezone-aware UTC")
    return value.astimezone(UTC).isoformat(" ", "microseconds")[:26]


class Stamps:
    """A timestamp column's stored form (:func:`stored_form`), computed once per value: the
    rows of a chunk share their ``created_at``."""

    def __init__(self, column: Any, dialect: Any) -> None:
        self._process = stored_form(column, dialect)
        self._seen: dict[Any, Any] = {}

    def __call__(self, value: Any) -> Any:
        if self._process is None or value is None:
            return value
        stored = self._seen.get(value)
        if stored is None:
            stored = self._seen[value] = self._process(value)
        return stored


class RowInsert:
    """A table's plain ``INSERT`` of ``columns``, compiled once per dialect, taking tuples: the
    driver's own statement (on SQLite one multi-row statement per page of rows; on PostgreSQL
    asyncpg's executemany, pipelined in one round trip). SQLAlchemy's executemany processed a
    dict per row on the event loop and, on SQLite, stepped once per row (see above).

    Values go to the driver as given, except the ``stamped`` columns (timestamps), which are
    given in their stored form (:class:`Stamps`), so they are stored as SQLAlchemy stores them."""

    def __init__(self, table: Table, columns: Sequence[str], *, stamped: Sequence[str] = ()) -> None:
        self.table = table
        self.columns = tuple(columns)
        self._stamped = [self.columns.index(name) for name in stamped]
        self._compiled: dict[str, str] = {}

    def _sql(self, conn: AsyncConnection) -> str:
        dialect = conn.dialect
        sql = self._compiled.get(dialect.name)
        if sql is None:
            sql = self._compiled[dialect.name] = positional_sql(self.table.insert(), dialect, self.columns)
        return sql

    async def insert(self, conn: AsyncConnection, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        sql = self._sql(conn)
        if self._stamped:
            stamps = [(i, Stamps(self.table.c[self.columns[i]], conn.dialect)) for i in self._stamped]
            rows = [_stamp(row, stamps) for row in rows]
        if conn.dialect.name == "sqlite":
            await insert_rows(conn, sql, rows)
        else:
            await conn.exec_driver_sql(sql, list(rows))


def _stamp(row: Sequence[Any], stamps: list[tuple[int, Stamps]]) -> tuple[Any, ...]:
    values = list(row)
    for position, stamp in stamps:
        values[position] = stamp(values[position])
    return tuple(values)
