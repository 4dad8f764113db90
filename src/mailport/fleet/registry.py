"""The worker registry: which processes run background work now, with their weight and stats.

Every process that runs watchers (``mailport worker``, ``mailport serve`` with watchers, an
embedded ``mailport.watch``) registers a row of ``workers`` under its lease holder id, renews it
every ``ttl / 3`` with its current stats, and deletes it at a clean stop. A row past its
``expires_at`` belongs to a dead worker: the others stop counting it at once, and its leases run
out on their own (:mod:`mailport.leases`).

The live rows are what the fleet agrees on: the mailbox assignment
(:mod:`mailport.fleet.assignment`) and each worker's share of the fleet's connection budgets are
computed from them, the same way in every worker. ``API`` processes register too (role ``api``),
so that per-account limits can be divided among the processes that open command connections.

No clock and no task here: callers pass ``now`` and run the heartbeat.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from mailport.store.database import dialect_insert
from mailport.store.tables import workers as _workers

WATCHERS = "watchers"
API = "api"
ACTIVE = "active"
DRAINING = "draining"  # stopping: takes no new mailboxes, hands its own over


@dataclass(frozen=True)
class WorkerRow:
    """A registered worker as the table holds it; ``stats`` is what its last heartbeat said."""

    id: str
    host: str
    pid: int
    roles: tuple[str, ...]
    weight: float
    state: str
    version: str
    started_at: datetime
    heartbeat_at: datetime
    expires_at: datetime
    stats: Mapping[str, Any] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.state == ACTIVE


def _version() -> str:
    from mailport import __version__

    return str(__version__)


async def register(
    conn: AsyncConnection,
    worker_id: str,
    *,
    roles: Iterable[str],
    weight: float,
    now: datetime,
    ttl: timedelta,
) -> None:
    """Insert (or refresh) this process's row, active."""
    values = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "roles": json.dumps(sorted(set(roles))),
        "weight": weight,
        "state": ACTIVE,
        "version": _version(),
        "started_at": now,
        "heartbeat_at": now,
        "expires_at": now + ttl,
        "stats": "{}",
    }
    statement = dialect_insert(conn, _workers).values(id=worker_id, **values)
    await conn.execute(statement.on_conflict_do_update(index_elements=["id"], set_=values))


async def heartbeat(
    conn: AsyncConnection,
    worker_id: str,
    *,
    now: datetime,
    ttl: timedelta,
    stats: Mapping[str, Any] | None = None,
    state: str | None = None,
) -> bool:
    """Extend this process's row; False when it is gone (deleted as dead meanwhile: register
    again)."""
    values: dict[str, Any] = {"heartbeat_at": now, "expires_at": now + ttl}
    if stats is not None:
        values["stats"] = json.dumps(dict(stats), default=str)
    if state is not None:
        values["state"] = state
    result = await conn.execute(update(_workers).where(_workers.c.id == worker_id).values(**values))
    return bool(result.rowcount)


async def deregister(conn: AsyncConnection, worker_id: str) -> None:
    """Delete this process's row (a clean stop): the others take its share at once."""
    await conn.execute(delete(_workers).where(_workers.c.id == worker_id))


def _row(row: Any) -> WorkerRow:
    try:
        stats = json.loads(row.stats or "{}")
    except ValueError:
        stats = {}
    return WorkerRow(
        id=row.id,
        host=row.host,
        pid=int(row.pid),
        roles=tuple(json.loads(row.roles or "[]")),
        weight=float(row.weight),
        state=row.state,
        version=row.version,
        started_at=row.started_at,
        heartbeat_at=row.heartbeat_at,
        expires_at=row.expires_at,
        stats=stats if isinstance(stats, dict) else {},
    )


async def live(conn: AsyncConnection, *, now: datetime, role: str | None = None) -> list[WorkerRow]:
    """The unexpired workers (with ``role`` when given), by id."""
    rows = await conn.execute(select(_workers).where(_workers.c.expires_at > now).order_by(_workers.c.id))
    found = [_row(row) for row in rows]
    return [w for w in found if role is None or role in w.roles]


async def everyone(conn: AsyncConnection) -> list[WorkerRow]:
    """Every registered row, dead ones included (for the admin view), by id."""
    return [_row(row) for row in await conn.execute(select(_workers).order_by(_workers.c.id))]


async def purge(conn: AsyncConnection, *, before: datetime) -> int:
    """Forget the workers whose rows ran out before ``before`` (the janitor passes an hour ago)."""
    result = await conn.execute(delete(_workers).where(_workers.c.expires_at < before))
    return int(result.rowcount or 0)


__all__ = [
    "ACTIVE",
    "API",
    "DRAINING",
    "WATCHERS",
    "WorkerRow",
    "deregister",
    "everyone",
    "heartbeat",
    "live",
    "purge",
    "register",
]
