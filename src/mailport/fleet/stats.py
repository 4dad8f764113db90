"""What a worker tells the fleet about itself in each heartbeat (``workers.stats``), and what
``GET /v1/workers`` shows: its mailboxes, its connects per minute, its queues.

The keys (all optional to readers; a newer worker may add more):

* ``mailboxes`` — mailboxes whose watchers this worker holds;
* ``watchers`` — watcher tasks (one per watched folder);
* ``connects_per_minute`` — mail server connections opened in the last minute;
* ``queues`` — ``{"connect_waiting": …, "events_unaccepted": …, "sends_due": …}``;
* ``lease_losses`` — watchers stopped because their lease changed hands;
* ``fenced_writes_refused`` — writes refused because their lease had moved on;
* ``rss_bytes`` — the process's resident memory.

Why from the Prometheus registry: the watchers, the orchestrator and the fencing already count
these for ``/metrics`` (:mod:`mailport.metrics`); reading the same samples by name keeps one
count of each thing and needs no hook in the code that counts. A metric this process never
registered (say the fenced-writes counter on an older build) reads as 0.

The heartbeat calls a :data:`StatsSource` synchronously, so everything here is in-process except
``sends_due`` (a count in the database), which :meth:`StatsCollector.refresh` reads when the
heartbeat awaits it first.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from prometheus_client import CollectorRegistry
from sqlalchemy import and_, func, or_, select

from mailport.metrics import REGISTRY
from mailport.sending.models import SendState
from mailport.store import Database
from mailport.store.tables import outbound_messages as om

StatsSource = Callable[[], Mapping[str, Any]]

CONNECTS = "mailport_connects_total"
LEASE_LOSSES = "mailport_lease_losses_total"
FENCED_WRITES_REFUSED = "mailport_fenced_writes_refused_total"  # counted by the fencing (leases)
WATCHERS_BY_STATE = "mailport_connections"  # a watcher task is in exactly one state
MAILBOXES = "mailport_watchers"  # the orchestrator's count of mailboxes it watches
QUEUE_SIZE = "mailport_queue_size"
WINDOW = 60.0  # seconds: connects "per minute" are the connects of the last minute


def empty() -> Mapping[str, Any]:
    """The stats of a worker that collects none (tests, an embedded watch)."""
    return {}


class WatcherHolder(Protocol):
    """What the stats need of the orchestrator: its watchers (first folder per mailbox) and the
    other folders' watchers."""

    @property
    def watchers(self) -> Mapping[str, object]: ...

    @property
    def folder_watchers(self) -> Mapping[str, Sequence[object]]: ...


def sample(
    name: str, labels: Mapping[str, str] | None = None, *, registry: CollectorRegistry = REGISTRY
) -> float:
    """A sample's value by name (and labels); 0 when nothing by that name was registered."""
    value = registry.get_sample_value(name, dict(labels or {}))
    return float(value) if value is not None else 0.0


def samples_sum(name: str, *, registry: CollectorRegistry = REGISTRY) -> float:
    """The sum of a labelled metric's samples (every label value)."""
    return sum(
        s.value for metric in registry.collect() for s in metric.samples if s.name == name and s.value > 0
    )


def rss_bytes() -> int:
    """Resident memory now (Linux: /proc/self/statm); elsewhere the peak, which is what
    ``getrusage`` knows."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(peak if sys.platform == "darwin" else peak * 1024)


def collect(
    holder: WatcherHolder | None = None,
    *,
    connects_per_minute: float = 0.0,
    sends_due: int = 0,
    registry: CollectorRegistry = REGISTRY,
) -> dict[str, Any]:
    """The stats mapping of this process now. Mailboxes and watchers come from ``holder`` (the
    orchestrator) when given, else from the gauges it sets."""
    if holder is not None:
        mailboxes = len(holder.watchers)
        watchers = mailboxes + sum(len(more) for more in holder.folder_watchers.values())
    else:
        mailboxes = int(sample(MAILBOXES, registry=registry))
        watchers = int(samples_sum(WATCHERS_BY_STATE, registry=registry))
    return {
        "mailboxes": mailboxes,
        "watchers": watchers,
        "connects_per_minute": round(connects_per_minute, 2),
        "queues": {
            # watchers waiting for a connect slot or connecting now
            "connect_waiting": int(sample(WATCHERS_BY_STATE, {"state": "connecting"}, registry=registry)),
            # set by the orchestrator every ~10 s for the mailboxes it watches
            "events_unaccepted": int(sample(QUEUE_SIZE, {"queue": "events_unaccepted"}, registry=registry)),
            "sends_due": sends_due,
        },
        "lease_losses": int(sample(LEASE_LOSSES, registry=registry)),
        "fenced_writes_refused": int(samples_sum(FENCED_WRITES_REFUSED, registry=registry)),
        "rss_bytes": rss_bytes(),
    }


async def count_sends_due(database: Database, *, now: datetime) -> int:
    """Outbound messages due now and not claimed (the fleet's send queue; the same rule as the
    send worker's claim, without the expired claims it also retakes)."""
    due = or_(
        and_(om.c.state == SendState.QUEUED.value, om.c.next_attempt_at <= now),
        and_(om.c.state == SendState.SCHEDULED.value, om.c.send_at <= now),
    )
    async with database.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(om).where(due))).scalar_one())


class StatsCollector:
    """A :data:`StatsSource` for one worker: :func:`collect` plus the connects of the last minute
    (the connects counter sampled at each call, differenced over :data:`WINDOW`) and the last
    ``sends_due`` read by :meth:`refresh`."""

    def __init__(
        self,
        holder: WatcherHolder | None = None,
        *,
        registry: CollectorRegistry = REGISTRY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.holder = holder
        self.registry = registry
        self.clock = clock
        self.sends_due = 0
        self._connects: deque[tuple[float, float]] = deque([(clock(), sample(CONNECTS, registry=registry))])

    def connects_per_minute(self) -> float:
        """Connects since the newest sample at least a minute old (or since the first sample)."""
        now, total = self.clock(), sample(CONNECTS, registry=self.registry)
        self._connects.append((now, total))
        while len(self._connects) > 2 and self._connects[1][0] <= now - WINDOW:
            self._connects.popleft()
        return max(0.0, total - self._connects[0][1])

    async def refresh(self, database: Database, *, now: datetime) -> None:
        """Read what lives in the database (the sends due); the heartbeat awaits it before calling."""
        self.sends_due = await count_sends_due(database, now=now)

    def __call__(self) -> Mapping[str, Any]:
        return collect(
            self.holder,
            connects_per_minute=self.connects_per_minute(),
            sends_due=self.sends_due,
            registry=self.registry,
        )


__all__ = [
    "StatsCollector",
    "StatsSource",
    "WatcherHolder",
    "collect",
    "count_sends_due",
    "empty",
    "rss_bytes",
]
