"""The janitor: applies the retention (:func:`mailport.store.retention.purge`) every hour in the
background of ``mailport serve`` and ``mailport worker``; the first run a minute after start-up.

One process at a time, with a claim rather than a held lease: before each run a process
*claims the hour* by taking the lease ``janitor`` (:mod:`mailport.leases`) for ~0.9 of the
interval, and neither renews nor releases it; the claim is refused while it runs, even to its
own holder. Whichever process ticks first runs, the others find the hour taken and sleep; when
that process dies, another takes the next hour (at once when it died on the same host). The
deletes are idempotent, so two runs overlapping after a clock jump would only do the work twice —
the claim is there to keep ten workers from scanning the same tables in the same minute, not
for correctness. Why not the dispatcher's lease: an API-only ``serve`` beside workers may hold
it, and the janitor must not depend on webhooks being configured. Each run also forgets the
leases that ran out a day ago (:func:`mailport.leases.purge`), the mailbox change log older
than a day (:func:`mailport.fleet.changes.purge`) and the rows of workers dead for an hour
(:func:`mailport.fleet.registry.purge`), and the connection checks no page looks at any more
(:meth:`mailport.check.runs.CheckRunStore.purge`).

A failed run is logged and retried at the next interval; a run that removed something logs
one INFO line with the counts.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import KW_ONLY, dataclass, field
from datetime import datetime, timedelta

from mailport import leases
from mailport.check.runs import CheckRunStore
from mailport.clock import Clock, utc_now
from mailport.config import Settings
from mailport.fleet import changes, registry
from mailport.store.database import Database
from mailport.store.retention import BATCH, PurgeReport, purge
from mailport.tasks import cancel_and_wait, stop_if_cancelled

log = logging.getLogger(__name__)

INTERVAL = 3600.0
FIRST_DELAY = 60.0
LEASES_KEPT = timedelta(days=1)  # leases that ran out longer ago are forgotten (mailport.leases.purge)
CHANGES_KEPT = timedelta(days=1)  # the mailbox change log (mailport.fleet.changes.purge)
WORKERS_KEPT = timedelta(hours=1)  # dead workers' rows (mailport.fleet.registry.purge)


async def claim_run(database: Database, owner: str, *, now: datetime, hold: timedelta) -> bool:
    """Take the right to run now (until ``now + hold``); False when a process has it (this one too)."""
    async with database.transaction() as conn:
        claim = await leases.acquire(conn, leases.JANITOR, owner, now=now, until=now + hold, reentrant=False)
    return claim is not None


@dataclass(eq=False, repr=False)
class Janitor:
    """Runs :func:`~mailport.store.retention.purge` every ``interval`` seconds; ``start()`` / ``stop()``."""

    database: Database
    _: KW_ONLY
    retention_days: int
    raw_retention_days: int | None = None
    interval: float = INTERVAL
    first_delay: float = FIRST_DELAY
    batch_size: int = BATCH
    clock: Clock = utc_now
    owner: str = field(default_factory=leases.new_holder)
    last_report: PurgeReport | None = field(default=None, init=False)
    _task: asyncio.Task[None] | None = field(default=None, init=False)

    @classmethod
    def from_settings(cls, database: Database, settings: Settings, **options: float) -> Janitor:
        return cls(
            database,
            retention_days=settings.retention_days,
            raw_retention_days=settings.raw_retention_days,
            **options,  # type: ignore[arg-type]
        )

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._loop(), name="janitor")

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        """Cancel the loop; a batch in progress rolls back (the next run does it again)."""
        if self._task is not None:
            await cancel_and_wait(self._task, timeout=10)  # bounded: never hang shutdown
            self._task = None

    async def run_once(self) -> PurgeReport | None:
        """Claim this interval and purge; None when another process claimed it."""
        now = self.clock()
        hold = timedelta(seconds=self.interval * 0.9)
        if not await claim_run(self.database, self.owner, now=now, hold=hold):
            return None
        report = await purge(
            self.database,
            now=now,
            retention_days=self.retention_days,
            raw_retention_days=self.raw_retention_days,
            batch_size=self.batch_size,
        )
        async with self.database.transaction() as conn:
            await leases.purge(conn, before=now - LEASES_KEPT)
            await changes.purge(conn, before=now - CHANGES_KEPT)
            await registry.purge(conn, before=now - WORKERS_KEPT)
        await CheckRunStore(self.database).purge(now=now)  # runs no page looks at any more
        self.last_report = report
        if report.total:
            log.info("retention: purged %s", report.summary())
        return report

    async def _loop(self) -> None:
        # a little jitter: processes started together do not all try the claim in one instant
        await asyncio.sleep(self.first_delay * (1 + 0.1 * random.random()))
        while True:
            try:
                await self.run_once()
            except Exception:  # a database hiccup must not end the loop
                stop_if_cancelled()
                log.exception("retention run failed; retrying in %.0f s", self.interval)
            await asyncio.sleep(self.interval)


def start_janitor(database: Database, settings: Settings, **options: float) -> Janitor:
    """Build and start the janitor of a process; ``await janitor.stop()`` on shutdown."""
    janitor = Janitor.from_settings(database, settings, **options)
    janitor.start()
    return janitor
