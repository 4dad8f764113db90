"""Many rows in ONE SQLite ``INSERT … VALUES (…), (…), …`` instead of an ``executemany``.

Why: the ``sqlite3`` module steps an ``executemany`` once per row and gives the GIL back around
every step. The statement runs in aiosqlite's thread while the event loop parses the next chunk,
so every row's step waited for the loop to hand the GIL back (up to the 5 ms switch interval):
a 200-row chunk of messages took ~8 ms of wall time in the backlog bench for ~1 ms of SQLite
work. One statement is one step. SQLAlchemy batches this way only with ``RETURNING`` (its
"insertmanyvalues"); without it the dialect uses the driver's ``executemany``, hence this.

The SQL is SQLAlchemy's own single-row statement with its ``VALUES`` group repeated; only the
``qmark`` parameter style (SQLite's) is handled.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

# SQLite's default limit of bound parameters per statement since 3.32 (builds may raise it)
MAX_PARAMETERS = 32766
_VALUES = re.compile(r" VALUES (\((?:\?, )*\?\))")


@lru_cache(maxsize=64)
def multi_row_sql(single_row: str, rows: int) -> str:
    """``single_row`` (an ``INSERT … VALUES (?, …, ?) …`` compiled by SQLAlchemy) for ``rows``
    rows; what follows the ``VALUES`` group (``ON CONFLICT …``) is kept."""
    found = list(_VALUES.finditer(single_row))
    if len(found) != 1:
        raise ValueError(f"not a single-row qmark INSERT: {single_row!r}")
    match = found[0]
    group = match.group(1)
    return f"{single_row[: match.start(1)]}{', '.join([group] * rows)}{single_row[match.end(1) :]}"


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
