"""What the fencing tests share: a watcher driven step by step on a real Dovecot under a lease
of its own, another process taking that lease over at a chosen point, and the refusal counter.

:class:`Interposed` is the real connector with one step run right before or after one of its
calls (the moment another process takes the lease over): the I/O is the real connector's,
nothing is faked; it only chooses *when* the take-over lands, which a real pause (GC,
SIGSTOP, a partition) would choose at random (``tests/e2e/fleet/test_sigstop.py`` does that).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

from mailport import leases
from mailport.clock import utc_now
from mailport.connectors.base import Connector
from mailport.mailboxes.models import Mailbox
from mailport.metrics import REGISTRY
from mailport.sync import WatcherOptions
from mailport.sync import repository as repo
from mailport.sync.watcher import Watcher
from tests.integration.sync.conftest import Bed

OWNER = "host-a:1:aaaa"  # this test's watcher process
OTHER = "host-b:2:bbbb"  # the process that takes over

Step = Callable[[], Awaitable[None]]


def refused(what: str) -> float:
    """``mailport_fenced_writes_refused_total{what}`` in this process so far."""
    return REGISTRY.get_sample_value("mailport_fenced_writes_refused_total", {"what": what}) or 0.0


async def hold(bed: Bed, mailbox: Mailbox) -> leases.Lease:
    """This process takes the mailbox's watcher lease (for an hour: it never runs out here)."""
    async with bed.services.database.transaction() as conn:
        lease = await repo.acquire_lease(conn, mailbox.id, OWNER, now=utc_now(), ttl=timedelta(hours=1))
    assert lease is not None
    return lease


async def take_over(bed: Bed, mailbox: Mailbox) -> leases.Lease:
    """Another process takes the lease, as it would once this one's had run out (seen from two
    hours later: this process was paused past its expiry)."""
    later = utc_now() + timedelta(hours=2)
    async with bed.services.database.transaction() as conn:
        taken = await leases.acquire(
            conn, f"watcher:{mailbox.id}", OTHER, now=later, until=later + timedelta(hours=1)
        )
    assert taken is not None and taken.holder == OTHER
    return taken


class Interposed:
    """``real`` with ``before[name]`` run right before its call ``name`` and ``after[name]``
    right after it returns (for an async generator: after each item it yields, before the
    caller gets it). Each step runs once."""

    def __init__(
        self, real: Connector, *, before: dict[str, Step] | None = None, after: dict[str, Step] | None = None
    ) -> None:
        self._real = real
        self._before = dict(before or {})
        self._after = dict(after or {})

    async def _run(self, steps: dict[str, Step], name: str) -> None:
        step = steps.pop(name, None)
        if step is not None:
            await step()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._real, name)
        if name not in self._before and name not in self._after:
            return attr
        if inspect.isasyncgenfunction(attr):

            async def stream(*args: Any, **kw: Any) -> AsyncIterator[Any]:
                await self._run(self._before, name)
                async for item in attr(*args, **kw):
                    await self._run(self._after, name)
                    yield item

            return stream

        async def call(*args: Any, **kw: Any) -> Any:
            await self._run(self._before, name)
            result = await attr(*args, **kw)
            await self._run(self._after, name)
            return result

        return call


def watcher(bed: Bed, mailbox: Mailbox, connector: Any, lease: leases.Lease, **options: Any) -> Watcher:
    """The mailbox's watcher under ``lease``, as the orchestrator builds it."""
    base: dict[str, Any] = dict(backoff_base=0.2, backoff_cap=1.0, auth_retry_seconds=600, jitter=lambda: 1.0)
    return Watcher(
        mailbox,
        connector,
        log_=bed.services.events,
        mailboxes=bed.services.mailboxes,
        owner=OWNER,
        connect_slots=asyncio.Semaphore(1),
        options=WatcherOptions(**(base | options)),
        fence=leases.guard(lease),
    )
