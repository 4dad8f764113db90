"""Wake a mailbox's watcher in whichever process holds it, through the database.

A push notification arrives at whichever API process the load balancer picked; the watcher of
its mailbox runs in the process that holds the mailbox's lease (:mod:`mailport.sync.orchestrator`),
maybe on another machine. So the request only records a wake-up (:func:`request_wakes`: one
row per mailbox, upserted, so a burst of notifications costs one row and one wake), and every
orchestrator runs a :class:`WakeupFollower` that looks at the table twice a second, wakes the
watchers it holds and deletes the rows it has served. The table alone is enough on SQLite and
PostgreSQL alike (no LISTEN/NOTIFY, no broker); half a second is well under the providers'
own delivery delays.

A row is deleted only if no request came since it was read (``requests`` unchanged), so a
notification racing the delete still wakes the watcher at the next look. Rows nobody serves (a
mailbox disabled, or between two leases) are purged after :data:`KEEP`: a watcher that starts
later catches up from its cursor anyway.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import KW_ONLY, dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import bindparam, delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from mailport.clock import Clock, utc_now
from mailport.store.database import Database, dialect_insert
from mailport.store.tables import mailbox_wakeups
from mailport.tasks import cancel_and_wait, stop_if_cancelled

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5
KEEP = timedelta(minutes=5)  # a wake-up nobody served by then is dropped
PURGE_EVERY = 60.0  # seconds between purges of unserved wake-ups


class Wakeable(Protocol):
    def wake(self) -> None: ...


async def request_wakes(conn: AsyncConnection, mailbox_ids: Iterable[str], *, now: datetime) -> None:
    """Ask the holders of these mailboxes' watchers to catch up now (in the caller's transaction)."""
    table = mailbox_wakeups
    for mailbox_id in sorted(set(mailbox_ids)):  # one order everywhere: no deadlock between requests
        statement = dialect_insert(conn, table).values(mailbox_id=mailbox_id, requests=1, requested_at=now)
        await conn.execute(
            statement.on_conflict_do_update(
                index_elements=["mailbox_id"],
                set_={"requests": table.c.requests + 1, "requested_at": statement.excluded.requested_at},
            )
        )


async def take_wakes(conn: AsyncConnection, holds: Callable[[str], bool]) -> list[str]:
    """The mailboxes with a wake-up that this process ``holds``; their rows are deleted unless a
    new request came meanwhile."""
    rows = (await conn.execute(select(mailbox_wakeups.c.mailbox_id, mailbox_wakeups.c.requests))).all()
    mine = [(row.mailbox_id, row.requests) for row in rows if holds(row.mailbox_id)]
    if mine:
        await conn.execute(
            delete(mailbox_wakeups).where(
                mailbox_wakeups.c.mailbox_id == bindparam("m"), mailbox_wakeups.c.requests == bindparam("n")
            ),
            [{"m": mailbox_id, "n": requests} for mailbox_id, requests in mine],
        )
    return [mailbox_id for mailbox_id, _ in mine]


async def purge_wakes(conn: AsyncConnection, *, before: datetime) -> int:
    """Drop wake-ups nobody served since ``before``; returns how many."""
    result = await conn.execute(delete(mailbox_wakeups).where(mailbox_wakeups.c.requested_at < before))
    return int(result.rowcount or 0)


@dataclass(eq=False, repr=False)
class WakeupFollower:
    """Wakes the watchers ``lookup`` finds in this process for the recorded wake-ups."""

    database: Database
    lookup: Callable[[str], Wakeable | None]
    _: KW_ONLY
    interval: float = POLL_SECONDS
    clock: Clock = utc_now
    _task: asyncio.Task[None] | None = field(default=None, init=False)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="wakeup-follower")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task, timeout=5)
            self._task = None

    async def poll(self) -> list[str]:
        """Serve the wake-ups of the watchers held here; returns the mailboxes woken."""
        async with self.database.transaction() as conn:
            woken = await take_wakes(conn, lambda mailbox_id: self.lookup(mailbox_id) is not None)
        for mailbox_id in woken:
            watcher = self.lookup(mailbox_id)
            if watcher is not None:
                watcher.wake()
        return woken

    async def purge(self) -> int:
        async with self.database.transaction() as conn:
            return await purge_wakes(conn, before=self.clock() - KEEP)

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        last_purge = loop.time()
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.poll()
                if loop.time() - last_purge >= PURGE_EVERY:
                    last_purge = loop.time()
                    await self.purge()
            except asyncio.CancelledError:
                raise
            except Exception:
                stop_if_cancelled()
                log.exception("serving watcher wake-ups failed; retrying")
