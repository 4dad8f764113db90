"""Command connections per mailbox, beside the watcher: what live API requests borrow.

A request never touches the watcher's IDLE connection: the pool makes its own connectors (with
the same factory, so separate sessions by construction) and lends one to a request at a time.

Why a pool of our own and not a generic one: what it must know is mail-specific. Per mailbox:

* at most ``size`` connections (``MAILPORT_COMMAND_CONNECTIONS``), fewer for a provider that
  counts every connection of an account against a small limit: this process's share of what the
  account's watched folders and the person's own programs leave, divided among the live API
  processes (``api_processes``, :meth:`mailport.fleet.budgets.FleetBudgets.api_processes`;
  :mod:`~mailport.mailboxes.connection_limits`);
* requests wait in arrival order (FIFO) up to ``wait`` seconds, then 503 ``mailbox_busy`` with
  ``retry_after``;
* a server's "too many connections" shrinks the mailbox's pool to what it has open (at least 1);
  after ``regrow_after`` quiet seconds it tries one more. The request that met the refusal waits
  for an open connection instead of failing, when there is one;
* a connection idle for ``CHECK_AFTER`` seconds is asked (:meth:`Connector.ping`, IMAP NOOP)
  before reuse; one idle for ``idle_timeout`` is closed by a reaper task (one per pool, waking
  every quarter of the timeout, at most every 15 s, and touching only idle connections);
* a connection that failed at the connection level (lost, timed out, desynced, cancelled
  mid-command) is closed, never lent again;
* a mailbox whose server settings or credentials changed gets fresh connections (a fingerprint
  of them, taken from the mailbox as the request loaded it). A deleted mailbox is never loaded
  again, so its idle connections go with the reaper.

Connections are closed in background tasks so that giving one back never waits on a server.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Final

from mailport import metrics
from mailport.connectors.base import Connector
from mailport.errors import (
    AuthenticationError,
    AuthUnavailableError,
    ConnectError,
    ConnectionLostError,
    MailboxBusyError,
    MailportError,
    MailTimeoutError,
    ProtocolError,
    TLSError,
    TooManyConnectionsError,
)
from mailport.mailboxes.connection_limits import command_cap
from mailport.mailboxes.models import Mailbox

log = logging.getLogger(__name__)

DEFAULT_SIZE = 2
DEFAULT_WAIT = 10.0  # seconds a request waits for a connection before mailbox_busy
DEFAULT_IDLE = 60.0  # seconds an unused connection stays open
CHECK_AFTER = 15.0  # a connection unused this long is asked (NOOP) before it is lent again
PING_TIMEOUT = 5.0
REGROW_AFTER = 300.0  # quiet seconds after "too many connections" before one more is tried
MAX_WAITING = 500  # requests queued per mailbox; beyond, mailbox_busy at once
CLOSE_TIMEOUT = 10.0

# Failures after which a session cannot be trusted: the connection is closed, not given back.
_CONNECTION_FAILURES: Final = (
    ConnectError,
    TLSError,
    ProtocolError,
    ConnectionLostError,
    MailTimeoutError,
    AuthenticationError,
    AuthUnavailableError,
)


def fingerprint(mailbox: Mailbox) -> str:
    """What a command connection depends on: server, security, connector, sign-in method, user
    name, password, OAuth account. A digest, so that no secret is kept beside the connections."""
    digest = hashlib.sha256()
    parts = (
        mailbox.connector,
        mailbox.auth_method.value,
        repr(mailbox.imap),
        mailbox.imap_username,
        mailbox.password.reveal() if mailbox.password is not None else "",
        mailbox.oauth.provider if mailbox.oauth is not None else "",
        (mailbox.oauth.connected_email or "") if mailbox.oauth is not None else "",
    )
    for part in parts:
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


@dataclass(eq=False)
class _Pooled:
    connector: Connector
    fingerprint: str
    last_used: float


class _Slot:
    """A grant to open one more connection (the pool counted it as ``connecting``)."""


SLOT: Final = _Slot()
Grant = _Pooled | _Slot


@dataclass(eq=False)
class _MailboxPool:
    """One mailbox's connections and queue."""

    cap: int  # the configured size, under the provider's limit
    limit: int  # what may be open now (below cap after "too many connections")
    fingerprint: str
    idle: deque[_Pooled] = field(default_factory=deque)  # oldest on the left
    in_use: int = 0
    connecting: int = 0
    waiters: deque[asyncio.Future[Grant]] = field(default_factory=deque)
    limited_at: float | None = None  # when the server last said "too many connections"

    @property
    def open(self) -> int:
        return len(self.idle) + self.in_use + self.connecting


@dataclass(eq=False, repr=False)
class CommandPool:
    """Connected connectors per mailbox, at most ``size`` at once; see the module docstring."""

    connect: Callable[[Mailbox], Connector]
    size: int = DEFAULT_SIZE
    wait: float = DEFAULT_WAIT
    idle_timeout: float = DEFAULT_IDLE
    regrow_after: float = REGROW_AFTER
    clock: Callable[[], float] = time.monotonic  # monotonic seconds (idle ages, regrowth)
    # how many API processes share each account's connections (None: this one alone)
    api_processes: Callable[[], Awaitable[int]] | None = None
    _pools: dict[str, _MailboxPool] = field(default_factory=dict, init=False)
    _reaper: asyncio.Task[None] | None = field(default=None, init=False)
    _closing: set[asyncio.Task[None]] = field(default_factory=set, init=False)
    _closed: bool = field(default=False, init=False)
    _loop: asyncio.AbstractEventLoop | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        _LIVE.add(self)

    # ------------------------------------------------------------------ borrowing

    @asynccontextmanager
    async def borrow(self, mailbox: Mailbox) -> AsyncIterator[Connector]:
        """A connected connector of ``mailbox`` for the duration of the block; 503
        ``mailbox_busy`` when none came free within ``wait`` seconds."""
        started = time.perf_counter()
        processes = await self.api_processes() if self.api_processes is not None else 1
        pool = self._pool_of(mailbox, processes)
        pooled = await self._acquire(mailbox, pool)
        metrics.COMMAND_WAIT.observe(time.perf_counter() - started)
        reusable = False
        try:
            yield pooled.connector
            reusable = True
        except MailportError as exc:
            reusable = not isinstance(exc, _CONNECTION_FAILURES)
            raise
        finally:
            # anything else (cancelled, a timeout mid-command, a bug) may have left the session
            # half-way through a command: it is closed
            self._release(pool, pooled, reusable=reusable and pooled.connector.is_connected)

    def sizes(self, mailbox_id: str) -> dict[str, int]:
        """``idle``, ``in_use``, ``connecting``, ``waiting`` and ``limit`` of one mailbox."""
        pool = self._pools.get(mailbox_id)
        if pool is None:
            return {"idle": 0, "in_use": 0, "connecting": 0, "waiting": 0, "limit": 0}
        return {
            "idle": len(pool.idle),
            "in_use": pool.in_use,
            "connecting": pool.connecting,
            "waiting": sum(1 for w in pool.waiters if not w.done()),
            "limit": pool.limit,
        }

    def _pool_of(self, mailbox: Mailbox, api_processes: int = 1) -> _MailboxPool:
        if self._closed:
            raise MailboxBusyError(f"mailbox {mailbox.id}: the service is shutting down", retry_after=5)
        self._follow_loop()
        self._start_reaper()
        cap = command_cap(mailbox, size=self.size, api_processes=api_processes)
        now = self.clock()
        current = fingerprint(mailbox)
        pool = self._pools.get(mailbox.id)
        if pool is None:
            pool = self._pools[mailbox.id] = _MailboxPool(cap=cap, limit=cap, fingerprint=current)
            return pool
        if pool.cap != cap:  # settings changed, or API processes came or went
            pool.cap, pool.limit = cap, min(pool.limit, cap) if pool.limited_at is not None else cap
            while pool.open > pool.limit and pool.idle:  # a smaller share: idle ones over it go
                self._close_later(pool.idle.popleft().connector)
        if pool.limited_at is not None and now - pool.limited_at >= self.regrow_after:
            pool.limit = min(pool.cap, pool.limit + 1)
            pool.limited_at = now if pool.limit < pool.cap else None
            log.info("mailbox %s: trying %d command connections again", mailbox.id, pool.limit)
            self._dispatch(pool)
        if pool.fingerprint != current:
            log.info("mailbox %s: settings changed, its command connections are renewed", mailbox.id)
            pool.fingerprint = current
            while pool.idle:
                self._close_later(pool.idle.popleft().connector)
        return pool

    async def _acquire(self, mailbox: Mailbox, pool: _MailboxPool) -> _Pooled:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait
        grant = self._take(pool) if not pool.waiters else None
        if grant is None:
            grant = await self._wait(mailbox, pool, deadline)
        while True:
            if isinstance(grant, _Pooled):
                try:
                    usable = await self._usable(pool, grant)
                except BaseException:
                    self._release(pool, grant, reusable=False)
                    raise
                if usable:
                    return grant
                pool.in_use -= 1
                pool.connecting += 1
                self._close_later(grant.connector)
            try:
                return await self._open(mailbox, pool)
            except TooManyConnectionsError as exc:
                if pool.open == 0:
                    raise TooManyConnectionsError(
                        exc.message,
                        hint=exc.hint,
                        server_said=exc.server_said,
                        retry_after=max(1, math.ceil(self.wait)),
                    ) from exc
                # the server allows what is open: wait for one of them, first in line
                grant = await self._wait(mailbox, pool, deadline, first=True)

    def _take(self, pool: _MailboxPool) -> Grant | None:
        """An idle connection (the most recently used), or a grant to open one, or None."""
        if pool.idle:
            pool.in_use += 1
            return pool.idle.pop()
        if pool.open < pool.limit:
            pool.connecting += 1
            return SLOT
        return None

    async def _wait(
        self, mailbox: Mailbox, pool: _MailboxPool, deadline: float, *, first: bool = False
    ) -> Grant:
        if len(pool.waiters) >= MAX_WAITING:
            raise self._busy(mailbox, pool)
        waiter: asyncio.Future[Grant] = asyncio.get_running_loop().create_future()
        if first:
            pool.waiters.appendleft(waiter)
        else:
            pool.waiters.append(waiter)
        self._dispatch(pool)
        try:
            async with asyncio.timeout_at(deadline):
                return await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                # granted just as the deadline passed (or the request was cancelled)
                self._give_back(pool, waiter.result())
            with contextlib.suppress(ValueError):
                pool.waiters.remove(waiter)
            if isinstance(exc, TimeoutError):
                raise self._busy(mailbox, pool) from None
            raise

    def _busy(self, mailbox: Mailbox, pool: _MailboxPool) -> MailboxBusyError:
        metrics.COMMAND_BUSY.inc()
        log.info("mailbox %s: all %d command connections stayed busy", mailbox.id, pool.limit)
        return MailboxBusyError(
            f"mailbox {mailbox.id}: all {pool.limit} command connections stayed busy for {self.wait:g} s",
            retry_after=max(1, math.ceil(self.wait / 2)),
        )

    async def _usable(self, pool: _MailboxPool, pooled: _Pooled) -> bool:
        """Still the mailbox's settings, still connected, and (after a pause) still answering."""
        if pooled.fingerprint != pool.fingerprint or not pooled.connector.is_connected:
            return False
        if self.clock() - pooled.last_used < CHECK_AFTER:
            return True
        try:
            async with asyncio.timeout(PING_TIMEOUT):
                return await pooled.connector.ping()
        except (MailportError, OSError, TimeoutError):
            return False

    async def _open(self, mailbox: Mailbox, pool: _MailboxPool) -> _Pooled:
        """Connect under the ``connecting`` count this request holds; on failure the count goes
        and the next in line may try."""
        connector = self.connect(mailbox)
        try:
            await connector.connect()
        except BaseException as exc:
            pool.connecting -= 1
            if isinstance(exc, TooManyConnectionsError):
                self._shrink(mailbox, pool)  # before the next in line is let in
            self._dispatch(pool)
            self._close_later(connector)
            raise
        pool.connecting -= 1
        pool.in_use += 1
        return _Pooled(connector, fingerprint(mailbox), self.clock())

    def _shrink(self, mailbox: Mailbox, pool: _MailboxPool) -> None:
        limit = max(1, pool.open)
        if limit < pool.limit:
            log.warning(
                "mailbox %s: the server refused more connections; its command pool shrinks to %d",
                mailbox.id,
                limit,
            )
            metrics.COMMAND_POOL_SHRINKS.inc()
        pool.limit = min(pool.limit, limit)
        pool.limited_at = self.clock()

    # ------------------------------------------------------------------ giving back

    def _release(self, pool: _MailboxPool, pooled: _Pooled, *, reusable: bool) -> None:
        pool.in_use -= 1
        if (
            reusable
            and not self._closed
            and pooled.fingerprint == pool.fingerprint
            and pool.open < pool.limit
        ):
            pooled.last_used = self.clock()
            pool.idle.append(pooled)
        else:
            self._close_later(pooled.connector)
        self._dispatch(pool)

    def _give_back(self, pool: _MailboxPool, grant: Grant) -> None:
        """A grant whose waiter left (deadline, cancellation) returns to the pool unused."""
        if isinstance(grant, _Pooled):
            pool.in_use -= 1
            pool.idle.append(grant)
        else:
            pool.connecting -= 1
        self._dispatch(pool)

    def _dispatch(self, pool: _MailboxPool) -> None:
        """Hand idle connections and free places to the waiters, first come first served."""
        while pool.waiters:
            waiter = pool.waiters[0]
            if waiter.done():
                pool.waiters.popleft()
                continue
            grant = self._take(pool)
            if grant is None:
                return
            pool.waiters.popleft()
            waiter.set_result(grant)

    # ------------------------------------------------------------------ closing

    def _close_later(self, connector: Connector) -> None:
        task = asyncio.get_running_loop().create_task(_close(connector))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def reap(self) -> int:
        """Close connections unused for ``idle_timeout`` seconds; forget empty mailboxes. The
        reaper task calls it every few seconds; the count is for tests and logs."""
        now = self.clock()
        closed = 0
        for mailbox_id, pool in list(self._pools.items()):
            while pool.idle and now - pool.idle[0].last_used >= self.idle_timeout:
                self._close_later(pool.idle.popleft().connector)
                closed += 1
            if pool.open == 0 and not pool.waiters and pool.limited_at is None:
                del self._pools[mailbox_id]
        return closed

    def _follow_loop(self) -> None:
        """Connections belong to the event loop that made them: a pool used from another loop
        (an embedding application's ``asyncio.run`` per job) drops the old loop's, unused."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            if self._loop is not None:
                log.info("command pool: a new event loop; the previous loop's connections are dropped")
            self._loop = loop
            self._pools = {}
            self._closing = set()
            self._reaper = None

    def _start_reaper(self) -> None:
        if self._reaper is None or self._reaper.done():
            self._reaper = asyncio.get_running_loop().create_task(
                self._reap_forever(), name="command-pool-reaper"
            )

    async def _reap_forever(self) -> None:
        interval = min(max(self.idle_timeout / 4, 0.05), 15.0)
        while True:
            await asyncio.sleep(interval)
            self.reap()

    async def aclose(self) -> None:
        """Close every pooled connection; waiting requests get ``mailbox_busy``; connections in
        use are closed when they come back."""
        self._closed = True
        if self._reaper is not None and not self._reaper.done():
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError, RuntimeError):
                await self._reaper
        for pool in self._pools.values():
            while pool.idle:
                self._close_later(pool.idle.popleft().connector)
            for waiter in pool.waiters:
                if not waiter.done():
                    waiter.set_exception(MailboxBusyError("the service is shutting down", retry_after=5))
        if self._closing:
            await asyncio.gather(*list(self._closing), return_exceptions=True)

    def count(self, state: str) -> int:
        """Connections of every mailbox in ``state`` (``idle``, ``in_use``, ``connecting``)."""
        pools = self._pools.values()
        if state == "idle":
            return sum(len(p.idle) for p in pools)
        if state == "in_use":
            return sum(p.in_use for p in pools)
        return sum(p.connecting for p in pools)


async def _close(connector: Connector) -> None:
    with contextlib.suppress(Exception):
        async with asyncio.timeout(CLOSE_TIMEOUT):
            await connector.disconnect()


# Read at scrape time (/metrics): the connections of every pool of the process.
_LIVE: weakref.WeakSet[CommandPool] = weakref.WeakSet()


def _counter(state: str) -> Callable[[], float]:
    return lambda: float(sum(pool.count(state) for pool in list(_LIVE)))


for _state in ("idle", "in_use", "connecting"):
    metrics.COMMAND_CONNECTIONS.labels(_state).set_function(_counter(_state))
