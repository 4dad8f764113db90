"""This process as a member of the fleet: registered, heartbeating, and watching who else is.

:class:`Membership` registers the process (:mod:`mailport.fleet.registry`) with its roles and
weight, renews its row every ``lease_seconds / 3`` with the stats of a
:class:`~mailport.fleet.stats.StatsSource`, registers again when its row vanished (deleted as
dead after a long pause), and keeps the set of live workers current: it re-reads
``registry.live`` every ``refresh_seconds`` (cost ∝ workers; that is how an expired worker is
noticed; one of this host whose process is gone counts as dead at once, as its leases do) and,
on PostgreSQL, at once when a NOTIFY on ``mailport_workers`` says one joined, left or started
draining. A change of the set calls the ``on_change`` callbacks.

A clean stop is two steps, so that the others take over before this process lets go:
:meth:`Membership.drain` marks the row ``draining`` (the others stop assigning to it at once),
the orchestrator hands its mailboxes over, then :meth:`Membership.stop` deregisters.

With each heartbeat, the process also ends its paused peers' database sessions that stopped in
the middle of a query (:mod:`mailport.store.stalled`), which would otherwise hold their locks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from mailport import leases
from mailport.clock import Clock, utc_now
from mailport.fleet import registry
from mailport.fleet.listen import WORKERS, Listener
from mailport.fleet.stats import StatsCollector, StatsSource, empty
from mailport.store.database import Database
from mailport.store.stalled import end_stalled_sessions
from mailport.tasks import cancel_and_wait, stop_if_cancelled

log = logging.getLogger(__name__)


async def notify_workers(conn: AsyncConnection, worker_id: str) -> None:
    """Tell the other workers (PostgreSQL) that ``worker_id`` joined, left or changed state."""
    if conn.dialect.name == "postgresql":
        await conn.execute(select(func.pg_notify(WORKERS, worker_id)))


class Membership:
    """Registration, heartbeat and the live worker set of one process."""

    def __init__(
        self,
        database: Database,
        worker_id: str,
        *,
        weight: float = 1.0,
        lease_seconds: float = 30.0,
        roles: Iterable[str] = (registry.WATCHERS,),
        stats: StatsSource = empty,
        refresh_seconds: float = 2.0,
        listener: Listener | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.database = database
        self.worker_id = worker_id
        self.weight = weight
        self.ttl = timedelta(seconds=lease_seconds)
        self.roles = tuple(roles)
        self.stats = stats
        self.refresh_seconds = min(refresh_seconds, lease_seconds / 3)
        self.listener = listener
        self.clock = clock
        self.state = registry.ACTIVE
        self.workers: tuple[registry.WorkerRow, ...] = ()  # live, by id
        self.version = 0  # moves whenever the live set (ids, weights, states) changes
        self._callbacks: list[Callable[[], None]] = []
        self._wake = asyncio.Event()
        self._closing = asyncio.Event()  # the loops end between two queries, never inside one
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._refresh_task: asyncio.Task[None] | None = None
        if listener is not None:
            listener.subscribe(WORKERS, lambda _id: self._wake.set())
            listener.on_connect(self._wake.set)

    # ------------------------------------------------------------------ the view

    def on_change(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` whenever the live set changes; returns the unsubscribe."""
        self._callbacks.append(callback)
        return lambda: self._callbacks.remove(callback) if callback in self._callbacks else None

    def active_weights(self, role: str = registry.WATCHERS) -> dict[str, float]:
        """The live, active workers with ``role`` (id → weight): whom mailboxes are assigned to."""
        return {w.id: w.weight for w in self.workers if w.active and role in w.roles}

    def weights(self, role: str = registry.WATCHERS) -> dict[str, float]:
        """The live workers with ``role``, draining ones included (id → weight)."""
        return {w.id: w.weight for w in self.workers if role in w.roles}

    async def refresh(self) -> bool:
        """Read the live workers now; True when the set changed."""
        async with self.database.connect() as conn:
            found = await registry.live(conn, now=self.clock())
        # a worker of this host whose process is gone is dead now, not at its row's expiry
        # (a crashed worker restarted on the same machine takes its mailboxes back at once)
        rows = tuple(w for w in found if not leases.holder_is_dead(w.id))
        before = [(w.id, w.weight, w.state, w.roles) for w in self.workers]
        after = [(w.id, w.weight, w.state, w.roles) for w in rows]
        self.workers = rows
        if before == after:
            return False
        self.version += 1
        for callback in list(self._callbacks):
            callback()
        return True

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Register, read the live set, and keep both current."""
        self._closing.clear()
        async with self.database.transaction() as conn:
            await registry.register(
                conn, self.worker_id, roles=self.roles, weight=self.weight, now=self.clock(), ttl=self.ttl
            )
            await notify_workers(conn, self.worker_id)
        await self.refresh()
        self._heartbeat_task = asyncio.create_task(self._heartbeat_loop(), name="fleet-heartbeat")
        self._refresh_task = asyncio.create_task(self._refresh_loop(), name="fleet-membership")

    async def drain(self) -> None:
        """Mark this worker ``draining``: the others stop assigning mailboxes to it now."""
        self.state = registry.DRAINING
        async with self.database.transaction() as conn:
            await registry.heartbeat(
                conn, self.worker_id, now=self.clock(), ttl=self.ttl, state=registry.DRAINING
            )
            await notify_workers(conn, self.worker_id)
        await self.refresh()

    async def stop(self, *, deregister: bool = True) -> None:
        """Stop the tasks and (unless told not to: a simulated death) delete the row."""
        self._closing.set()
        self._wake.set()
        tasks = {t for t in (self._heartbeat_task, self._refresh_task) if t is not None}
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=5)
            for task in pending:
                await cancel_and_wait(task, timeout=5)
        self._heartbeat_task = self._refresh_task = None
        if not deregister:
            return
        try:
            async with self.database.transaction() as conn:
                await registry.deregister(conn, self.worker_id)
                await notify_workers(conn, self.worker_id)
        except Exception:  # the database may be gone at shutdown; the row expires anyway
            log.warning("could not deregister worker %s", self.worker_id, exc_info=True)

    async def beat(self) -> None:
        """One heartbeat (with the stats); register again when the row was gone."""
        stats: Mapping[str, object] = {}
        now = self.clock()
        try:
            if isinstance(self.stats, StatsCollector):  # what lives in the database (sends due)
                await self.stats.refresh(self.database, now=now)
            stats = self.stats()
        except Exception:
            log.warning("collecting worker stats failed", exc_info=True)
        async with self.database.transaction() as conn:
            found = await registry.heartbeat(
                conn, self.worker_id, now=now, ttl=self.ttl, stats=stats, state=self.state
            )
            if not found:
                log.warning("worker %s: its registration was gone; registering again", self.worker_id)
                await registry.register(
                    conn, self.worker_id, roles=self.roles, weight=self.weight, now=now, ttl=self.ttl
                )
                if self.state != registry.ACTIVE:
                    await registry.heartbeat(conn, self.worker_id, now=now, ttl=self.ttl, state=self.state)
                await notify_workers(conn, self.worker_id)

    async def _heartbeat_loop(self) -> None:
        while not self._closing.is_set():
            try:
                await asyncio.wait_for(self._closing.wait(), self.ttl.total_seconds() / 3)
                return
            except TimeoutError:
                pass
            try:
                await self.beat()
            except asyncio.CancelledError:
                raise
            except Exception:
                stop_if_cancelled()
                log.warning("worker heartbeat failed; retrying", exc_info=True)
            try:  # a paused peer's session stuck mid-query would hold its locks on
                await end_stalled_sessions(self.database)
            except asyncio.CancelledError:
                raise
            except Exception:
                stop_if_cancelled()
                log.warning("looking for stalled database sessions failed; retrying", exc_info=True)

    async def _refresh_loop(self) -> None:
        while not self._closing.is_set():
            try:
                await asyncio.wait_for(self._wake.wait(), self.refresh_seconds)
            except TimeoutError:
                pass
            self._wake.clear()
            if self._closing.is_set():
                return
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception:
                stop_if_cancelled()
                log.warning("reading the live workers failed; retrying", exc_info=True)


__all__ = ["Membership", "notify_workers"]
