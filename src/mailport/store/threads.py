"""The thread-key table: ``(mailbox, thread key) -> root Message-ID``.

A thread key is ``sha256(root)[:32]`` (:mod:`mailport.messages.threading`) and cannot be
reversed, yet ``GET …/threads/{key}`` must search the server for the root. Every place that
hands out keys records their roots here: ingestion (one batched insert per chunk, in the
chunk's transaction) and the live listings, searches and threads. A key is only ever recorded
with its own root, so rows are never updated (``ON CONFLICT DO NOTHING``).

Roots made from a message's hash (no Message-ID, In-Reply-To or References) are not recorded:
nothing on a server can be searched for them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import ARRAY, String, bindparam, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from mailport.clock import utc_now
from mailport.store import many_rows
from mailport.store.database import Database, dialect_insert
from mailport.store.tables import UTCDateTime, thread_roots

MEMO_SIZE = 20_000  # (mailbox, key) pairs a process remembers having recorded (~5 MB at most)
MAX_ROOT = 998  # RFC 5322's line limit; the column's size
_UNNEST = text(
    "INSERT INTO thread_roots (mailbox_id, thread_key, root, created_at) "
    "SELECT :mailbox_id, k, r, :now "
    "FROM unnest(CAST(:keys AS VARCHAR[]), CAST(:roots AS VARCHAR[])) AS t(k, r) "
    "ON CONFLICT (mailbox_id, thread_key) DO NOTHING"
).bindparams(
    bindparam("keys", type_=ARRAY(String())),
    bindparam("roots", type_=ARRAY(String())),
    bindparam("now", type_=UTCDateTime()),
)


def key_of(root: str) -> str:
    """The thread key of ``root`` (the rule of :func:`mailport.messages.threading.thread_key`)."""
    return hashlib.sha256(root.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _searchable(root: str) -> bool:
    if not root or len(root) > MAX_ROOT or root.startswith("sha256:"):
        return False
    try:
        root.encode("utf-8")
    except UnicodeEncodeError:  # an undecodable header byte kept as a surrogate
        return False
    return True


async def remember(conn: AsyncConnection, mailbox_id: str, roots: Iterable[str], *, now: datetime) -> None:
    """Record ``roots`` for ``mailbox_id`` in the caller's transaction (one statement)."""
    rows = [
        {"mailbox_id": mailbox_id, "thread_key": key_of(root), "root": root, "created_at": now}
        for root in dict.fromkeys(roots)
        if _searchable(root)
    ]
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        # one statement over two arrays: a fraction of an executemany's round trips
        await conn.execute(
            _UNNEST,
            {
                "mailbox_id": mailbox_id,
                "keys": [r["thread_key"] for r in rows],
                "roots": [r["root"] for r in rows],
                "now": now,
            },
        )
        return
    # SQLite: one multi-row statement (mailport.store.many_rows), not a step per row
    stamp = many_rows.Stamps(thread_roots.c.created_at, conn.dialect)(now)  # the stored form
    await many_rows.insert_rows(
        conn, _sqlite_insert(conn), [(mailbox_id, r["thread_key"], r["root"], stamp) for r in rows]
    )


_SQLITE_COLUMNS = ("mailbox_id", "thread_key", "root", "created_at")
_sqlite_inserts: list[str] = []  # the single-row INSERT's SQL, compiled once


def _sqlite_insert(conn: AsyncConnection) -> str:
    if not _sqlite_inserts:
        statement = dialect_insert(conn, thread_roots).on_conflict_do_nothing(
            index_elements=["mailbox_id", "thread_key"]
        )
        _sqlite_inserts.append(many_rows.positional_sql(statement, conn.dialect, _SQLITE_COLUMNS))
    return _sqlite_inserts[0]


async def root_of(conn: AsyncConnection, mailbox_id: str, key: str) -> str | None:
    found = await conn.execute(
        select(thread_roots.c.root).where(
            thread_roots.c.mailbox_id == mailbox_id, thread_roots.c.thread_key == key
        )
    )
    return found.scalar_one_or_none()


@dataclass(eq=False, repr=False)
class ThreadRoots:
    """The table over a database, for callers without a transaction of their own (the live
    listings). What this process recorded is remembered (up to :data:`MEMO_SIZE` keys), so
    listing the same page again writes nothing."""

    database: Database
    _recorded: set[tuple[str, str]] = field(default_factory=set)

    async def remember(self, mailbox_id: str, roots: Iterable[str]) -> None:
        pending = [
            root
            for root in dict.fromkeys(roots)
            if _searchable(root) and (mailbox_id, key_of(root)) not in self._recorded
        ]
        if not pending:
            return
        async with self.database.transaction() as conn:
            await remember(conn, mailbox_id, pending, now=utc_now())
        if len(self._recorded) + len(pending) > MEMO_SIZE:
            self._recorded.clear()
        self._recorded.update((mailbox_id, key_of(root)) for root in pending)

    async def root(self, mailbox_id: str, key: str) -> str | None:
        async with self.database.connect() as conn:
            return await root_of(conn, mailbox_id, key)
