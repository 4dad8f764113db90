"""Pull consumers in the database: who reads ``GET /v1/events`` (or acknowledges in
``mailport.watch``), and through which cursor each has acknowledged.

A consumer is a name and a scope (every mailbox, or one), so two readers with different names
never acknowledge each other's events: an event owed to pull consumers is accepted only when
every consumer covering it has acknowledged it (:mod:`mailport.events.acceptance`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from mailport.errors import InputError
from mailport.events.acceptance import ALL_MAILBOXES
from mailport.store.database import dialect_insert
from mailport.store.rows import from_row
from mailport.store.tables import pull_consumers

DEFAULT_CONSUMER = "default"
WATCH_CONSUMER = "watch"
SEEN_EVERY = timedelta(minutes=1)  # a reader polling with nothing new writes at most this often
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def check_consumer_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise InputError(
            f"{name[:80]!r} is not a consumer name",
            field="consumer",
            hint="Use 1-64 letters, digits, '.', '_' or '-' (starting with a letter or digit).",
        )
    return name


@dataclass(frozen=True)
class PullConsumer:
    name: str
    mailbox_id: str | None  # None: every mailbox
    acked_seq: int
    created_at: datetime
    updated_at: datetime


def _consumer(row: Any) -> PullConsumer:
    return from_row(PullConsumer, row, mailbox_id=row.mailbox_id or None, acked_seq=int(row.acked_seq))


def _key(tenant_id: str, name: str, mailbox_id: str | None) -> Any:
    c = pull_consumers.c
    return (c.tenant_id == tenant_id) & (c.name == name) & (c.mailbox_id == (mailbox_id or ALL_MAILBOXES))


async def get(
    conn: AsyncConnection, tenant_id: str, name: str, mailbox_id: str | None
) -> PullConsumer | None:
    row = (await conn.execute(select(pull_consumers).where(_key(tenant_id, name, mailbox_id)))).first()
    return _consumer(row) if row is not None else None


def needs_write(current: PullConsumer | None, *, through: int, now: datetime) -> bool:
    """Must the consumer's row be written? When it is new or its cursor moves on, or to refresh
    ``updated_at`` once per :data:`SEEN_EVERY` (a reader polling with nothing new)."""
    return current is None or current.acked_seq < through or now - current.updated_at >= SEEN_EVERY


async def advance(
    conn: AsyncConnection, tenant_id: str, name: str, mailbox_id: str | None, *, through: int, now: datetime
) -> None:
    """Register the consumer and move its cursor forward to ``through`` (never back). A write
    first thing in its transaction, so SQLite takes the write lock before anything is read."""
    statement = dialect_insert(conn, pull_consumers).values(
        tenant_id=tenant_id,
        name=name,
        mailbox_id=mailbox_id or ALL_MAILBOXES,
        acked_seq=through,
        created_at=now,
        updated_at=now,
    )
    c = pull_consumers.c
    await conn.execute(
        statement.on_conflict_do_update(
            index_elements=["tenant_id", "name", "mailbox_id"],
            set_={
                "acked_seq": case(
                    (statement.excluded.acked_seq > c.acked_seq, statement.excluded.acked_seq),
                    else_=c.acked_seq,
                ),
                "updated_at": now,
            },
        )
    )


async def list_for(conn: AsyncConnection, tenant_id: str) -> list[PullConsumer]:
    c = pull_consumers.c
    query = select(pull_consumers).where(c.tenant_id == tenant_id).order_by(c.name, c.mailbox_id)
    return [_consumer(row) for row in await conn.execute(query)]


async def remove(conn: AsyncConnection, tenant_id: str, name: str, mailbox_id: str | None) -> bool:
    result = await conn.execute(delete(pull_consumers).where(_key(tenant_id, name, mailbox_id)))
    return bool(result.rowcount)
