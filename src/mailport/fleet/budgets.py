"""The fleet's connection budgets, divided among the live workers.

Several worker processes on several machines watch mailboxes from one database. Each bounded its
own connects only, so three workers starting together opened three times what one server was
meant to see. The budgets are for the whole fleet, and each worker takes a share of them,
computed from the live rows of the registry (:func:`mailport.fleet.registry.live`, role
``watchers``) the same way in every worker, and recomputed as workers come and go
(:meth:`FleetBudgets.refresh`, every few seconds, or :meth:`FleetBudgets.apply` with rows a
caller read already):

* **Logins per mail host** (``MAILPORT_HOST_LOGINS``, H): at most H connects-and-logins in
  flight at once per server host across the fleet. Worker i of weight w_i takes its share of H
  by :func:`apportion`: every worker at least 1, the rest in proportion to the weights
  (largest remainders). **Bound:** the shares add up to exactly ``max(H, W)`` for W live
  workers: never more than H when H ≥ W; when there are more workers than logins each takes 1
  (W in all, H + (W − H) ≤ H + W − 1). A plain ``ceil(H·w/Σw)`` per worker would add up to as
  much as H + W − 1 even with H ≥ W (3 equal workers, H = 10: 4 + 4 + 4 = 12; here 4 + 3 + 3).
  Between two refreshes, workers that disagree on who is alive can overrun the bound for a
  few seconds (a joiner counts itself before the others have seen it).
* **Connect rate** (``MAILPORT_CONNECT_RATE``, R per second): a token bucket per worker at
  ``R·w/Σw`` per second (these add up to R exactly), holding at most one second's worth (at
  least one token). Over any T seconds the fleet opens at most ``R·(T + 1) + W`` connections,
  so a fleet restarting 10,000 watchers reaches the providers at R per second, not at once.
* **Per-account limits** (:mod:`mailport.mailboxes.connection_limits`): a watched folder past
  what the account allows is refused by the connect gate before it connects
  (``too_many_watched_folders``), and :meth:`FleetBudgets.api_processes` tells the command pools
  among how many API processes the rest of the account's connections are divided.

A login waits first for the host's slot, then for this process's own bound on concurrent
connects (``MAILPORT_MAX_CONCURRENT_CONNECTS``, CPU for TLS handshakes), then for a token, so
that mailboxes of a busy host never hold up those of another. Waiters are served first come,
first served. Slots are per host name as configured (lower-cased), not per resolved address.

Why by hand: the budget moves while logins wait (a resizable semaphore), and the shares must be
computed from the database's rows; no asyncio limiter library does either. The token bucket is
not :class:`mailport.net.ratelimit.TokenBucketLimiter`: that one refuses (429) instead of
waiting in line, and its rate cannot change when a worker joins.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from types import TracebackType
from typing import TYPE_CHECKING

from prometheus_client import Gauge

from mailport import metrics
from mailport.clock import Clock, utc_now
from mailport.fleet import registry
from mailport.fleet.registry import WorkerRow
from mailport.mailboxes.connection_limits import check_watched
from mailport.mailboxes.models import Mailbox
from mailport.tasks import cancel_and_wait

if TYPE_CHECKING:
    from mailport.config import Settings
    from mailport.store import Database

log = logging.getLogger(__name__)

REFRESH_SECONDS = 5.0  # re-read the live workers this often (a dead one's share comes back)
_EPSILON = 1e-9
BURST_SECONDS = 1.0  # a worker's bucket holds this many seconds of its rate (at least 1 token)

LOGINS_WAITING = Gauge(
    "mailport_fleet_logins_waiting",
    "Logins of this worker waiting for a host slot, a connect slot or a rate token",
    ["worker"],
    registry=metrics.REGISTRY,
)
LOGINS_IN_FLIGHT = Gauge(
    "mailport_fleet_logins_in_flight",
    "Logins of this worker holding a host slot now",
    ["worker"],
    registry=metrics.REGISTRY,
)
HOST_LOGIN_SHARE = Gauge(
    "mailport_fleet_host_login_share",
    "This worker's share of MAILPORT_HOST_LOGINS: concurrent logins per mail host",
    ["worker"],
    registry=metrics.REGISTRY,
)
CONNECT_RATE_SHARE = Gauge(
    "mailport_fleet_connect_rate_share",
    "This worker's share of MAILPORT_CONNECT_RATE, connects per second",
    ["worker"],
    registry=metrics.REGISTRY,
)
_GAUGES = (LOGINS_WAITING, LOGINS_IN_FLIGHT, HOST_LOGIN_SHARE, CONNECT_RATE_SHARE)


# ---------------------------------------------------------------------- share arithmetic (pure)


def apportion(total: int, weights: Mapping[str, float]) -> dict[str, int]:
    """Divide ``total`` slots among the workers of ``weights``: each gets at least 1, the rest in
    proportion to its weight, rounded by largest remainder (ties: the smaller id). The shares add
    up to exactly ``max(total, len(weights))``, and every worker computes the same map."""
    left = {worker: max(float(weight), 1e-9) for worker, weight in weights.items()}
    shares: dict[str, int] = {}
    budget = total
    while left:
        whole = sum(left.values())
        small = [worker for worker, weight in left.items() if budget * weight / whole < 1]
        if not small:
            break
        for worker in small:  # less than one slot by weight: exactly one, out of the budget
            shares[worker] = 1
            del left[worker]
            budget -= 1
    if left:
        whole = sum(left.values())
        quotas = {worker: budget * weight / whole for worker, weight in left.items()}
        floors = {worker: math.floor(quota) for worker, quota in quotas.items()}
        spare = budget - sum(floors.values())
        by_remainder = sorted(left, key=lambda worker: (floors[worker] - quotas[worker], worker))
        for worker in by_remainder[:spare]:
            floors[worker] += 1
        shares.update(floors)
    return shares


def rate_share(rate: float, weights: Mapping[str, float], worker: str) -> float:
    """``worker``'s part of ``rate`` by weight (the parts add up to ``rate``)."""
    whole = sum(max(w, 1e-9) for w in weights.values())
    return rate * max(weights[worker], 1e-9) / whole


def host_key(mailbox: Mailbox) -> str:
    """The server a mailbox's watcher logs in to: its IMAP or POP3 host; an API connector's
    logins are counted under the connector's key (one provider endpoint)."""
    server = mailbox.imap or mailbox.pop3
    if mailbox.connector in ("imap", "pop3") and server is not None:
        return server.host.lower().rstrip(".")
    return f"{mailbox.connector}:api"


# ---------------------------------------------------------------------- token bucket


class TokenBucket:
    """``rate`` tokens a second, at most ``capacity`` kept; :meth:`take` waits for one, first
    come first served. ``clock`` (monotonic seconds) and ``sleep`` are injectable for tests."""

    def __init__(
        self,
        rate: float,
        *,
        burst_seconds: float = BURST_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self.burst_seconds = burst_seconds
        self.rate = max(rate, 1e-9)
        self.tokens = self.capacity
        self._at = clock()
        self._turn = asyncio.Lock()  # FIFO: asyncio.Lock wakes its waiters in order

    @property
    def capacity(self) -> float:
        return max(1.0, self.rate * self.burst_seconds)

    def set_rate(self, rate: float) -> None:
        """A new share: tokens earned so far at the old rate stay (up to the new capacity)."""
        self._refill()
        self.rate = max(rate, 1e-9)
        self.tokens = min(self.tokens, self.capacity)

    def _refill(self) -> None:
        now = self._clock()
        self.tokens = min(self.capacity, self.tokens + (now - self._at) * self.rate)
        self._at = now

    def try_take(self) -> bool:
        """Take a token if there is one now (nobody waiting ahead)."""
        if self._turn.locked():
            return False
        self._refill()
        if self.tokens >= 1 - _EPSILON:
            self.tokens = max(0.0, self.tokens - 1)
            return True
        return False

    async def take(self) -> None:
        async with self._turn:
            while True:
                self._refill()
                if self.tokens >= 1 - _EPSILON:  # float sums of refills land just below 1
                    self.tokens = max(0.0, self.tokens - 1)
                    return
                await self._sleep((1 - self.tokens) / self.rate)


# ---------------------------------------------------------------------- host slots


class _Slots:
    """A semaphore whose size may change while tasks wait (a host's share); FIFO."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.busy = 0
        self.waiters: deque[asyncio.Future[None]] = deque()

    @property
    def idle(self) -> bool:
        return self.busy == 0 and not self.waiters

    async def acquire(self) -> None:
        if self.busy < self.limit and not self.waiters:
            self.busy += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.release()  # granted just as the waiter was cancelled
            with contextlib.suppress(ValueError):
                self.waiters.remove(waiter)
            raise

    def release(self) -> None:
        self.busy -= 1
        self.dispatch()

    def resize(self, limit: int) -> None:
        self.limit = limit
        self.dispatch()

    def dispatch(self) -> None:
        while self.waiters and self.busy < self.limit:
            waiter = self.waiters.popleft()
            if waiter.done():
                continue
            self.busy += 1
            waiter.set_result(None)


# ---------------------------------------------------------------------- the budgets


class FleetBudgets:
    """This worker's shares of the fleet's budgets; see the module docstring.

    ``worker_id`` is this process's row in ``workers`` (its lease holder id). Until that row is
    read (or when the process does not register: SQLite, an embedded watcher) the worker counts
    itself with ``weight``, alone if no one else is registered: then it has the whole budget.
    """

    def __init__(
        self,
        database: Database | None,
        worker_id: str,
        *,
        host_logins: int,
        connect_rate: float,
        weight: float = 1.0,
        local_connects: int | None = None,
        refresh_seconds: float = REFRESH_SECONDS,
        now: Clock = utc_now,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        show_metrics: bool = True,
    ) -> None:
        self.database = database
        self.worker_id = worker_id
        self.host_logins = host_logins
        self.connect_rate = connect_rate
        self.weight = weight
        self.refresh_seconds = refresh_seconds
        self._now = now
        self._clock = clock
        self._local = asyncio.Semaphore(local_connects) if local_connects else None
        self.host_share = host_logins
        self.rate_share = connect_rate
        self.workers = 1
        self._api_processes = 1
        self._read_at: float | None = None
        self._metrics = show_metrics
        self.bucket = TokenBucket(connect_rate, clock=clock, sleep=sleep)
        self._hosts: dict[str, _Slots] = {}
        self._task: asyncio.Task[None] | None = None
        self._show()

    @classmethod
    def from_settings(
        cls,
        database: Database | None,
        worker_id: str,
        settings: Settings,
        *,
        local_connects: int | None = None,
        show_metrics: bool = True,
    ) -> FleetBudgets:
        """The budgets ``MAILPORT_HOST_LOGINS``, ``MAILPORT_CONNECT_RATE`` and
        ``MAILPORT_WORKER_WEIGHT`` say, re-read every third of ``MAILPORT_LEASE_SECONDS`` at
        most every 5 s."""
        return cls(
            database,
            worker_id,
            host_logins=settings.host_logins,
            connect_rate=settings.connect_rate,
            weight=settings.worker_weight,
            local_connects=local_connects,
            refresh_seconds=min(REFRESH_SECONDS, settings.lease_seconds / 3),
            show_metrics=show_metrics,
        )

    # ------------------------------------------------------------------ shares

    def apply(self, rows: Sequence[WorkerRow]) -> None:
        """Recompute the shares from the live workers' rows (any roles: those with ``watchers``
        share the host and rate budgets, those with ``api`` the command connections)."""
        weights = {row.id: row.weight for row in rows if registry.WATCHERS in row.roles}
        weights.setdefault(self.worker_id, self.weight)
        host_share = apportion(self.host_logins, weights)[self.worker_id]
        if host_share != self.host_share or len(weights) != self.workers:
            log.info(
                "fleet budgets: %d workers; this one takes %d of %d logins per host and %.3g of %.3g "
                "connects per second",
                len(weights),
                host_share,
                self.host_logins,
                rate_share(self.connect_rate, weights, self.worker_id),
                self.connect_rate,
            )
        self.workers = len(weights)
        self.host_share = host_share
        self.rate_share = rate_share(self.connect_rate, weights, self.worker_id)
        self.bucket.set_rate(self.rate_share)
        for slots in self._hosts.values():
            slots.resize(host_share)
        self._api_processes = max(1, sum(1 for row in rows if registry.API in row.roles))
        self._read_at = self._clock()
        self._show()

    async def refresh(self) -> None:
        """Read the live workers and recompute the shares (nothing without a database)."""
        if self.database is None:
            return
        async with self.database.connect() as conn:
            rows = await registry.live(conn, now=self._now())
        self.apply(rows)

    async def api_processes(self) -> int:
        """How many live processes have role ``api`` (at least 1), read again when the last read
        is older than ``refresh_seconds``; the last value when the database cannot be read."""
        stale = self._read_at is None or self._clock() - self._read_at >= self.refresh_seconds
        if stale:
            # no lock (a pool may serve several event loops): the others use the value at hand
            self._read_at = self._clock()
            try:
                await self.refresh()
            except Exception:
                log.warning("fleet budgets: could not read the live workers", exc_info=True)
        return self._api_processes

    def _show(self) -> None:
        if not self._metrics:  # not a worker (an API process's command pools): no share to show
            return
        HOST_LOGIN_SHARE.labels(self.worker_id).set(self.host_share)
        CONNECT_RATE_SHARE.labels(self.worker_id).set(self.rate_share)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Read the shares now, then again every ``refresh_seconds`` until :meth:`stop`."""
        try:
            await self.refresh()
        except Exception:
            log.warning("fleet budgets: could not read the live workers; the whole budget until then")
        self._task = asyncio.create_task(self._follow(), name="fleet-budgets")

    async def _follow(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_seconds)
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("fleet budgets: could not read the live workers; keeping the shares")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task, timeout=5)
            self._task = None
        for gauge in _GAUGES:
            with contextlib.suppress(KeyError):
                gauge.remove(self.worker_id)

    # ------------------------------------------------------------------ logins

    @asynccontextmanager
    async def login(self, host: str) -> AsyncIterator[None]:
        """Hold one of this worker's slots for ``host`` (and a connect slot of the process, and
        a rate token) for the duration of the block: the connect, TLS and sign-in."""
        key = host.lower().rstrip(".")
        slots = self._hosts.get(key)
        if slots is None:
            slots = self._hosts[key] = _Slots(self.host_share)
        waiting = LOGINS_WAITING.labels(self.worker_id)
        waiting.inc()
        counted = True
        try:
            await slots.acquire()
            try:
                if self._local is not None:
                    await self._local.acquire()
                try:
                    await self.bucket.take()
                    waiting.dec()
                    counted = False
                    in_flight = LOGINS_IN_FLIGHT.labels(self.worker_id)
                    in_flight.inc()
                    try:
                        yield
                    finally:
                        in_flight.dec()
                finally:
                    if self._local is not None:
                        self._local.release()
            finally:
                slots.release()
                if slots.idle and self._hosts.get(key) is slots:
                    del self._hosts[key]
        finally:
            if counted:
                waiting.dec()

    def gate(self, mailbox: Mailbox, folder_index: int = 0) -> ConnectGate:
        """What the watcher of ``mailbox``'s ``folder_index``-th watched folder holds around its
        connect (``async with``, like the semaphore it replaces)."""
        return ConnectGate(self, mailbox, folder_index)

    def sizes(self, host: str) -> dict[str, int]:
        """``busy``, ``waiting`` and ``limit`` of this worker's slots for ``host`` (tests, logs)."""
        slots = self._hosts.get(host.lower().rstrip("."))
        if slots is None:
            return {"busy": 0, "waiting": 0, "limit": self.host_share}
        waiting = sum(1 for w in slots.waiters if not w.done())
        return {"busy": slots.busy, "waiting": waiting, "limit": slots.limit}


class ConnectGate:
    """One watcher's way through the budgets: ``async with gate:`` refuses a folder past the
    account's limit (``too_many_watched_folders``), then waits for a login of the mailbox's host.
    One per watcher; a watcher connects once at a time."""

    __slots__ = ("budgets", "mailbox", "folder_index", "_held")

    def __init__(self, budgets: FleetBudgets, mailbox: Mailbox, folder_index: int) -> None:
        self.budgets = budgets
        self.mailbox = mailbox
        self.folder_index = folder_index
        self._held: contextlib.AbstractAsyncContextManager[None] | None = None

    async def __aenter__(self) -> None:
        check_watched(self.mailbox, self.folder_index)
        held = self.budgets.login(host_key(self.mailbox))
        await held.__aenter__()
        self._held = held

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        held, self._held = self._held, None
        if held is not None:
            await held.__aexit__(exc_type, exc, tb)


__all__ = [
    "ConnectGate",
    "FleetBudgets",
    "TokenBucket",
    "apportion",
    "host_key",
    "rate_share",
]
