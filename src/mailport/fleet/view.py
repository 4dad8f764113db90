"""The operator's view of the fleet: every registered worker with what its last heartbeat said,
and which mailboxes one holds. Shared by ``GET /v1/workers`` and ``mailport workers``, so the
API and the CLI show the same fields computed the same way.

A worker's stats are whatever its version wrote (:mod:`mailport.fleet.stats`); a key it did not
write reads as 0 (an empty ``queues``), so an older or embedded worker still renders.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import select

from mailport.errors import WorkerNotFoundError
from mailport.fleet import registry
from mailport.fleet.registry import WorkerRow
from mailport.store import Database
from mailport.store.tables import leases

WATCHER_LEASE_PREFIX = "watcher:"  # leases.name("watcher", mailbox_id)
QUEUE_NAMES = ("connect_waiting", "events_unaccepted", "sends_due")


class WorkerRead(BaseModel):
    """One worker process as the fleet sees it."""

    id: str = Field(description="The process's lease holder id, `host:pid:nonce`")
    host: str
    pid: int
    roles: list[str] = Field(description="`watchers` (runs mailbox watchers) and/or `api`")
    weight: float = Field(description="Its share of mailboxes and budgets (MAILPORT_WORKER_WEIGHT)")
    state: str = Field(description="`active`, or `draining` while it hands its mailboxes over")
    version: str
    started_at: datetime
    heartbeat_at: datetime
    expires_at: datetime
    alive: bool = Field(description="`expires_at` is in the future: it heartbeats")
    mailboxes: int = Field(description="Mailboxes whose watchers it holds")
    watchers: int = Field(description="Watcher tasks (one per watched folder)")
    connects_per_minute: float = Field(description="Mail server connections opened in the last minute")
    queues: dict[str, int] = Field(description="`connect_waiting`, `events_unaccepted`, `sends_due`")
    lease_losses: int = Field(description="Watchers stopped because their lease changed hands")
    fenced_writes_refused: int = Field(description="Writes refused because their lease had moved on")
    rss_bytes: int = Field(description="Resident memory of the process")


class WorkerDetail(WorkerRead):
    """A worker with the mailboxes it holds."""

    mailbox_ids: list[str] = Field(description="Mailboxes whose watcher lease it holds now")


class WorkerList(BaseModel):
    workers: list[WorkerRead]


def _number(stats: Mapping[str, Any], key: str) -> float:
    value = stats.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _queues(stats: Mapping[str, Any]) -> dict[str, int]:
    given = stats.get("queues")
    given = given if isinstance(given, Mapping) else {}
    found = {name: int(_number(given, name)) for name in given if isinstance(name, str)}
    return {**dict.fromkeys(QUEUE_NAMES, 0), **found}


def read(row: WorkerRow, *, now: datetime) -> WorkerRead:
    """``row`` as the API shows it; missing stats read as 0."""
    stats = row.stats
    return WorkerRead(
        id=row.id,
        host=row.host,
        pid=row.pid,
        roles=list(row.roles),
        weight=row.weight,
        state=row.state,
        version=row.version,
        started_at=row.started_at,
        heartbeat_at=row.heartbeat_at,
        expires_at=row.expires_at,
        alive=row.expires_at > now,
        mailboxes=int(_number(stats, "mailboxes")),
        watchers=int(_number(stats, "watchers")),
        connects_per_minute=round(_number(stats, "connects_per_minute"), 2),
        queues=_queues(stats),
        lease_losses=int(_number(stats, "lease_losses")),
        fenced_writes_refused=int(_number(stats, "fenced_writes_refused")),
        rss_bytes=int(_number(stats, "rss_bytes")),
    )


async def list_workers(database: Database, *, now: datetime) -> WorkerList:
    """Every registered worker, dead ones included (``alive`` false), by id."""
    async with database.connect() as conn:
        rows = await registry.everyone(conn)
    return WorkerList(workers=[read(row, now=now) for row in rows])


async def get_worker(database: Database, worker_id: str, *, now: datetime) -> WorkerDetail:
    """One worker and the mailboxes it holds (404 ``worker_not_found``)."""
    async with database.connect() as conn:
        found = [w for w in await registry.everyone(conn) if w.id == worker_id]  # a fleet is small
        if not found:
            raise WorkerNotFoundError(f"no worker {worker_id!r}")
        held = await conn.execute(
            select(leases.c.name)
            .where(
                leases.c.holder == worker_id,
                leases.c.name.startswith(WATCHER_LEASE_PREFIX, autoescape=True),
                leases.c.expires_at > now,
            )
            .order_by(leases.c.name)
        )
        mailbox_ids = [name[len(WATCHER_LEASE_PREFIX) :] for name in held.scalars()]
    return WorkerDetail(**read(found[0], now=now).model_dump(), mailbox_ids=mailbox_ids)


__all__ = ["WorkerDetail", "WorkerList", "WorkerRead", "get_worker", "list_workers", "read"]
