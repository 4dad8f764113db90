"""A broker publisher: the event log, in seq order, to one broker, at least once.

Shape (the webhook dispatcher's, reused: :mod:`mailport.leases` and ``delivery_state``):

* One active publisher per broker across every process: the lease ``broker:<name>``. A process
  without it only tries to take it every ``poll_interval``.
* Its position is the ``delivery_state`` row ``broker:<name>`` (``fanout_seq``: every event
  through it was acknowledged). It reads the events after the position in seq order, publishes
  them and waits for the broker's acknowledgement, and only then moves the position, in a
  transaction fenced with its lease (a publisher that lost the lease moves nothing).
* **At least once**: a crash or an outage between the acknowledgement and the write of the
  position publishes those events again, with the same id (JetStream's duplicate window drops
  them; other consumers deduplicate on the id, as webhook receivers do on ``webhook-id``).
* **In order per mailbox**: every event goes out in seq order, one batch after the other, and a
  failed batch is published again from its first event, so no event overtakes an earlier one.
* **Broker down**: connect or publish fails → a log line, ``mailport_broker_failures`` and
  ``mailport_broker_up`` 0, close, wait (exponential backoff, up to ``max_delay``), reconnect
  through the host guard and publish again from the position. Nothing is skipped, ever.

A new broker starts at the beginning of the retained log. Retention (the janitor) purges only
accepted events, which knows nothing of brokers: a broker down for longer than
``MAILPORT_RETENTION_DAYS`` may miss events already purged.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import select, update

from mailport import leases
from mailport.brokers.messages import after, from_row
from mailport.brokers.targets import BrokerTarget, scrub
from mailport.brokers.transport import Transport
from mailport.clock import Clock, utc_now
from mailport.errors import LeaseLostError
from mailport.events import EventLog, last_seq
from mailport.metrics import BROKER_FAILURES, BROKER_LAG, BROKER_PUBLISHED, BROKER_UP
from mailport.retry import Backoff, RetryPolicy
from mailport.store.database import dialect_insert
from mailport.store.tables import delivery_state
from mailport.tasks import cancel_and_wait

log = logging.getLogger(__name__)

BROKER = "broker"
DEFAULT_RETRY = RetryPolicy(first_delay=0.5, multiplier=2.0, max_delay=30.0, jitter=0.5)


class Publisher:
    """Publishes the event log to one broker; ``start()`` / ``stop()`` (see the module docstring)."""

    def __init__(
        self,
        target: BrokerTarget,
        transport: Transport,
        *,
        event_log: EventLog,
        clock: Clock = utc_now,
        retry: RetryPolicy = DEFAULT_RETRY,
        rand: Callable[[], float] = random.random,
        poll_interval: float = 1.0,
        lease_ttl: float = 15.0,
        batch: int = 200,
        owner: str | None = None,
    ) -> None:
        self.target = target
        self.transport = transport
        self.event_log = event_log
        self.clock = clock
        self.poll_interval = poll_interval
        self.lease_ttl = lease_ttl
        self.batch = batch
        self.owner = owner or leases.new_holder()
        self.row = f"{BROKER}:{target.name}"  # lease and position
        self.position: int | None = None
        self.connected = False
        self.last_error: str | None = None
        self._backoff = Backoff(retry, rand=rand)
        self._leases = leases.Leases(event_log.database, clock=clock)
        self._lease: leases.Lease | None = None
        self._renew_at = 0.0
        self._task: asyncio.Task[None] | None = None
        self._label = target.name

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"broker-{self.target.name}")

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def stop(self, timeout: float = 5.0) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task, timeout=timeout)
        await self._disconnect()
        if self._lease is not None:
            try:
                await self._leases.release(self._lease)
            except Exception:  # it runs out by itself
                log.warning("broker %s: releasing the lease failed", self.target.shown, exc_info=True)
            self._lease = None

    async def _run(self) -> None:
        while True:
            try:
                if not await self._hold_lease():
                    await asyncio.sleep(self.poll_interval)
                    continue
                if not self.connected:
                    await self.transport.connect()
                    self.connected = True
                    log.info("broker %s: connected", self.target.shown)
                version = self.event_log.version
                if await self._publish_batch():
                    continue
                await self.event_log.wait(self.poll_interval, since=version)
            except asyncio.CancelledError:
                raise
            except LeaseLostError:
                log.warning("broker %s: lease lost; another process publishes", self.target.shown)
                self._lease = None
                await self._disconnect()
            except Exception as exc:  # broker down, refused, timed out, or a database hiccup
                await self._failed(exc)

    async def _failed(self, exc: Exception) -> None:
        BROKER_FAILURES.labels(broker=self._label).inc()
        BROKER_UP.labels(broker=self._label).set(0)
        await self._disconnect()
        delay = self._backoff.next()
        self.last_error = scrub(f"{type(exc).__name__}: {exc}", self.target)[:300]
        log.warning(
            "broker %s: %s; nothing skipped, retrying from seq %s in %.1f s",
            self.target.shown,
            self.last_error,
            (self.position or 0) + 1,
            delay,
        )
        await asyncio.sleep(delay)

    async def _disconnect(self) -> None:
        if self.connected:
            self.connected = False
            await self.transport.aclose()

    async def _hold_lease(self) -> bool:
        """Take or renew the lease (renewed every third of its time); load the position on taking it."""
        now = time.monotonic()
        if self._lease is not None and now < self._renew_at:
            return True
        ttl = timedelta(seconds=self.lease_ttl)
        if self._lease is not None:
            self._lease = await self._leases.renew(self._lease, ttl=ttl)
            if self._lease is None:
                raise LeaseLostError(f"the lease {self.row!r} changed hands")
        else:
            self._lease = await self._leases.acquire(self.row, self.owner, ttl=ttl)
            if self._lease is None:
                return False
            self.position = await self._load_position()
            log.info("broker %s: publishing from seq %d", self.target.shown, self.position + 1)
        self._renew_at = now + self.lease_ttl / 3
        return True

    async def _load_position(self) -> int:
        now = self.clock()
        async with self.event_log.database.transaction() as conn:
            await conn.execute(
                dialect_insert(conn, delivery_state)
                .values(name=self.row, fanout_seq=0, updated_at=now)
                .on_conflict_do_nothing(index_elements=["name"])
            )
            query = select(delivery_state.c.fanout_seq).where(delivery_state.c.name == self.row)
            return int((await conn.execute(query)).scalar_one())

    async def _publish_batch(self) -> bool:
        """Publish the next batch; True when there was one (more may wait)."""
        assert self._lease is not None and self.position is not None
        async with self.event_log.database.connect() as conn:
            rows = (await conn.execute(after(self.position, self.batch))).all()
            last = await last_seq(conn) if not rows else int(rows[-1].event_seq)
        if not rows:
            BROKER_LAG.labels(broker=self._label).set(max(last - self.position, 0))
            BROKER_UP.labels(broker=self._label).set(1)
            return False
        messages = [from_row(row) for row in rows]
        await self.transport.publish(messages)  # returns once the broker acknowledged them all
        through = messages[-1].seq
        async with self.event_log.database.transaction() as conn:
            await conn.execute(
                update(delivery_state)
                .where(delivery_state.c.name == self.row)
                .values(fanout_seq=through, updated_at=self.clock())
            )
            await leases.fence(conn, self._lease)  # LeaseLostError rolls the position back
        self.position = through
        BROKER_PUBLISHED.labels(broker=self._label).inc(len(messages))
        BROKER_UP.labels(broker=self._label).set(1)
        if self._backoff.failures:
            log.info("broker %s: publishing again (through seq %d)", self.target.shown, through)
        self._backoff.reset()
        self.last_error = None
        return True
