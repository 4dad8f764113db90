"""The webhook dispatcher: fan events out into per-endpoint queues and work each queue on its own.

Shape (all state is in the database, so a crash loses nothing):

* **Supervisor** (one task): holds the lease ``dispatcher`` (:mod:`mailport.leases`: one
  dispatching process per database; the workers record results fenced with its token, so a
  process that lost it records nothing more and its deliveries go out again from the new holder),
  reads events after the fan-out cursor and inserts one delivery row per subscribed active
  endpoint (``webhook_deliveries``, the outbox), and keeps one worker per active endpoint. It
  wakes when this process appends events (:meth:`mailport.events.EventLog.wait`) and polls every
  ``poll_interval`` seconds for other processes' events.
* **Endpoint worker** (one task per endpoint, its own HTTP connection pool): sends the
  endpoint's pending deliveries in event order, **one at a time per mailbox** (order per
  mailbox) and up to ``concurrency`` mailboxes at once; a failed delivery blocks only the later
  deliveries of its own mailbox on that endpoint until it succeeds or becomes a dead letter. A
  slow or dead endpoint therefore never delays another endpoint, and each request has a timeout.
* Results are written in batches (attempt rows, delivery state, the endpoint's failing streak)
  and the delivered events that every consumer owing them has now accepted are marked accepted
  in the same transaction (:mod:`mailport.events.acceptance`). A dead letter on an endpoint
  failing for ``policy.disable_after`` disables it and appends ``webhook.disabled``.

A process killed between a 2xx and the write of its result sends that delivery again after the
restart, with the same ``webhook-id``: at least once, with a stable idempotency key.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from datetime import datetime, timedelta

from mailport import leases
from mailport.clock import Clock, utc_now
from mailport.delivery.metrics import DELIVERY_LATENCY, QUEUE_SIZE, WEBHOOK_ATTEMPTS
from mailport.delivery.models import DeliveryStatus, WebhookEndpoint
from mailport.delivery.outbox import AttemptRecord, PendingDelivery
from mailport.delivery.repository import WebhookRepository
from mailport.delivery.retry import RetryPolicy
from mailport.delivery.sender import Outcome, WebhookSender
from mailport.delivery.signing import Signer
from mailport.errors import LeaseLostError
from mailport.events import EventLog
from mailport.net.guard import HostGuard
from mailport.tasks import cancel_and_wait, stop_if_cancelled

log = logging.getLogger(__name__)

SenderFactory = Callable[[WebhookEndpoint], WebhookSender]


@dataclass(eq=False, repr=False)
class EndpointWorker:
    """Works one endpoint's queue (see the module docstring)."""

    endpoint: WebhookEndpoint
    _: KW_ONLY
    repository: WebhookRepository
    event_log: EventLog
    sender: WebhookSender
    policy: RetryPolicy
    clock: Clock
    rand: Callable[[], float]
    concurrency: int
    batch: int
    fence: leases.Fence
    flush_size: int = 200
    flush_interval: float = 0.05
    idle_poll: float = 5.0
    task: asyncio.Task[None] | None = field(default=None, init=False)
    _wakeup: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _stopping: bool = field(default=False, init=False)
    _disabled: bool = field(default=False, init=False)
    _buffer: list[AttemptRecord] = field(default_factory=list, init=False)
    _flush_wanted: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _flush_lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)
    _signing: tuple[WebhookEndpoint, Signer] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self._endpoints = self.repository.endpoints
        self._outbox = self.repository.outbox

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"webhook-{self.endpoint.id}")

    def wake(self) -> None:
        self._wakeup.set()

    def stop(self) -> None:
        """Finish the sends in flight, write their results, then end."""
        self._stopping = True
        self._wakeup.set()

    @property
    def finished(self) -> bool:
        return self.task is not None and self.task.done()

    async def _run(self) -> None:
        while not self._stopping and not self._disabled:
            try:
                next_due = await self._drain()
            except asyncio.CancelledError:
                raise
            except Exception:  # a database hiccup must not end the worker
                stop_if_cancelled()
                log.exception("webhook worker %s failed; retrying", self.endpoint.id)
                next_due = self.clock() + timedelta(seconds=1)
            if self._stopping or self._disabled:
                break
            timeout = self.idle_poll
            if next_due is not None:
                timeout = min(timeout, max((next_due - self.clock()).total_seconds(), 0.0))
            if timeout > 0:
                try:
                    await asyncio.wait_for(self._wakeup.wait(), timeout)
                except TimeoutError:
                    pass
            self._wakeup.clear()
        await self.sender.aclose()

    async def _drain(self) -> datetime | None:
        """Send what is due; returns when to look again (None: when woken or at the idle poll)."""
        items = await self._outbox.pending(self.endpoint.id, limit=self.batch)
        if not items:
            return None
        now = self.clock()
        groups: dict[str | None, list[PendingDelivery]] = {}
        for item in items:
            groups.setdefault(item.mailbox_id, []).append(item)
        next_due: datetime | None = None
        due: list[list[PendingDelivery]] = []
        postponed: list[tuple[str | None, int, datetime]] = []
        for mailbox_id, group in groups.items():
            head = group[0]
            if head.next_attempt_at is not None and head.next_attempt_at > now:
                next_due = head.next_attempt_at if next_due is None else min(next_due, head.next_attempt_at)
                postponed.append((mailbox_id, head.event_seq, head.next_attempt_at))
            else:
                due.append(group)
        for mailbox_id, after_seq, until in postponed:
            await self._outbox.postpone(self.endpoint.id, mailbox_id, after_seq=after_seq, until=until)
        if due:
            semaphore = asyncio.Semaphore(self.concurrency)
            done = asyncio.Event()
            flusher = asyncio.create_task(self._flush_periodically(done))
            try:
                await asyncio.gather(*(self._send_group(group, semaphore, now) for group in due))
            finally:
                done.set()
                self._flush_wanted.set()
                await flusher  # never cancelled mid-transaction
                await self._flush()  # before the next read of the queue: no resend
        if len(items) >= self.batch or due:
            return self.clock()  # more may be waiting (or a retry became due meanwhile)
        return next_due

    async def _flush_periodically(self, done: asyncio.Event) -> None:
        """Write results in the background while the groups keep sending."""
        while not done.is_set():
            try:
                await asyncio.wait_for(self._flush_wanted.wait(), self.flush_interval)
            except TimeoutError:
                pass
            self._flush_wanted.clear()
            try:
                await self._flush()
            except Exception:  # the results are lost: those deliveries go out again (same id)
                log.exception("writing webhook results failed")

    async def _send_group(
        self, group: list[PendingDelivery], semaphore: asyncio.Semaphore, started: datetime
    ) -> None:
        """One mailbox's deliveries, strictly one after another."""
        async with semaphore:
            for item in group:
                if self._stopping or self._disabled:
                    return
                if item.next_attempt_at is not None and item.next_attempt_at > started:
                    return
                record = await self._attempt(item)
                self._buffer.append(record)
                if len(self._buffer) >= self.flush_size:
                    self._flush_wanted.set()
                if record.new_status is DeliveryStatus.PENDING:
                    return  # a retry is scheduled: later mail of this mailbox waits for it

    def _signer(self) -> Signer:
        """The endpoint's signer, made again when the endpoint (its secret) was replaced."""
        if self._signing is None or self._signing[0] is not self.endpoint:
            self._signing = (self.endpoint, Signer(self.endpoint.secret))
        return self._signing[1]

    async def _attempt(self, item: PendingDelivery) -> AttemptRecord:
        endpoint = self.endpoint
        attempted_at = self.clock()
        headers = self._signer().headers(message_id=item.event_id, timestamp=attempted_at, body=item.body)
        outcome: Outcome = await self.sender.post(endpoint.url, item.body, headers)
        WEBHOOK_ATTEMPTS.labels(result=outcome.result).inc()
        finished = self.clock()
        if outcome.ok:
            DELIVERY_LATENCY.observe(max((finished - item.event_created_at).total_seconds(), 0.0))
            status, next_at = DeliveryStatus.DELIVERED, None
        else:
            next_at = self.policy.next_attempt(
                item.attempts + 1, window_started=item.window_started_at, now=finished, rand=self.rand
            )
            status = DeliveryStatus.PENDING if next_at is not None else DeliveryStatus.DEAD
            log.info(
                "webhook %s delivery %s failed (%s%s); %s",
                endpoint.id,
                item.id,
                outcome.result,
                f" {outcome.status_code}" if outcome.status_code else "",
                f"retry at {next_at.isoformat()}" if next_at else "dead letter",
            )
        return AttemptRecord(
            delivery_id=item.id,
            event_seq=item.event_seq,
            attempted_at=attempted_at,
            result=outcome.result,
            status_code=outcome.status_code,
            error=outcome.error,
            duration_ms=outcome.duration_ms,
            new_status=status,
            next_attempt_at=next_at,
            window_started_at=item.window_started_at,
        )

    async def _flush(self) -> None:
        async with self._flush_lock:
            if not self._buffer:
                return
            records, self._buffer = self._buffer, []
            try:
                await self._record(records)
            except LeaseLostError:  # another dispatcher sends these deliveries again (same ids)
                log.warning(
                    "webhook %s: dispatcher lease lost; %d results dropped", self.endpoint.id, len(records)
                )
                self._stopping = True

    async def _record(self, records: list[AttemptRecord]) -> None:
        """Write ``records`` in one transaction, fenced with the dispatcher's lease."""
        now = self.clock()
        async with self.event_log.transaction() as conn:
            if not await self._outbox.lock_endpoint(conn, self.endpoint.id):
                self._disabled = True  # deleted: its deliveries and their attempts went with it
                return
            last_success = await self._outbox.record(conn, self.endpoint.id, records)
            delivered = [r.event_seq for r in records if r.new_status is DeliveryStatus.DELIVERED]
            if delivered:
                await self._outbox.accept_completed(conn, delivered, now=now)
            await self.fence(conn)  # LeaseLostError rolls it all back
            if any(
                r.new_status is DeliveryStatus.DEAD
                and self.policy.should_disable(
                    last_success_at=last_success, dead_window_started=r.window_started_at
                )
                for r in records
            ):
                hours = self.policy.give_up_after / 3600
                reason = f"no 2xx answer for {hours:g} h: a delivery became a dead letter after retries"
                if await self._endpoints.disable(conn, self.endpoint, reason=reason, now=now):
                    log.warning("webhook %s disabled: %s", self.endpoint.id, reason)
                    self._disabled = True


class Dispatcher:
    """Runs the supervisor and the endpoint workers; ``start()`` / ``stop()``."""

    def __init__(
        self,
        *,
        repository: WebhookRepository,
        event_log: EventLog,
        guard: HostGuard,
        policy: RetryPolicy | None = None,
        clock: Clock = utc_now,
        rand: Callable[[], float] = random.random,
        request_timeout: float = 10.0,
        concurrency: int = 16,
        poll_interval: float = 1.0,
        lease_ttl: float = 15.0,
        batch: int = 500,
        owner: str | None = None,
        sender_factory: SenderFactory | None = None,
        min_cycle: float = 0.02,
    ) -> None:
        self._repository = repository
        self._endpoints = repository.endpoints
        self._outbox = repository.outbox
        self._min_cycle = min_cycle
        self._event_log = event_log
        self._guard = guard
        self.policy = policy or RetryPolicy()
        self._clock = clock
        self._rand = rand
        self._timeout = request_timeout
        self._concurrency = concurrency
        self._poll_interval = poll_interval
        self._lease_ttl = lease_ttl
        self._batch = batch
        self.owner = owner or leases.new_holder()
        self._leases = leases.Leases(event_log.database, clock=clock)
        self._lease: leases.Lease | None = None
        self._sender_factory = sender_factory or self._default_sender
        self._workers: dict[str, EndpointWorker] = {}
        self._task: asyncio.Task[None] | None = None
        self._lease_renew_at: float = 0.0
        self._gauge_at: float = 0.0

    def _default_sender(self, endpoint: WebhookEndpoint) -> WebhookSender:
        return WebhookSender(self._guard, timeout=self._timeout, max_connections=self._concurrency)

    async def start(self) -> asyncio.Task[None]:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._supervise(), name="webhook-dispatcher")
        return self._task

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def stop(self, timeout: float = 5.0) -> None:
        """Stop taking work, let sends in flight finish and record (up to ``timeout``), release the lease."""
        if self._task is not None:
            await cancel_and_wait(self._task, timeout=timeout)  # bounded: never hang shutdown
            self._task = None
        await self._stop_workers(list(self._workers), timeout)
        if self._lease is not None:
            try:
                await self._leases.release(self._lease)
            except Exception:  # shutting down: the lease expires on its own
                log.exception("could not release the dispatcher lease")
            self._lease = None

    @property
    def has_lease(self) -> bool:
        return self._lease is not None

    async def _stop_workers(self, ids: list[str], timeout: float) -> None:
        workers = [self._workers.pop(i) for i in ids if i in self._workers]
        for worker in workers:
            worker.stop()
        tasks = [w.task for w in workers if w.task is not None]
        if not tasks:
            return
        done, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    async def _renew_lease(self) -> leases.Lease | None:
        """Take or keep the lease (every ``lease_ttl / 3``). Workers started under an earlier
        tenure fence with its token: they record nothing more, end and are replaced."""
        now_mono = time.monotonic()
        if self._lease is not None and now_mono < self._lease_renew_at:
            return self._lease
        ttl = timedelta(seconds=self._lease_ttl)
        lease = await self._leases.acquire(leases.DISPATCHER, self.owner, ttl=ttl)
        if lease is not None and (self._lease is None or lease.token != self._lease.token):
            log.info("webhook dispatcher %s took the lease (token %d)", self.owner, lease.token)
        self._lease = lease
        self._lease_renew_at = now_mono + self._lease_ttl / 3
        return lease

    async def _supervise(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            version = self._event_log.version  # appends during the cycle wake the next one
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                stop_if_cancelled()
                log.exception("webhook dispatcher cycle failed; retrying")
            await self._event_log.wait(self._poll_interval, since=version)
            # Coalesce bursts of wake-ups (at most one cycle per ``min_cycle``) without delaying
            # a lone event: a wake-up after a quiet spell runs at once.
            pause = self._min_cycle - (loop.time() - started)
            if pause > 0:
                await asyncio.sleep(pause)

    async def run_once(self) -> None:
        """One supervisor cycle: lease, workers, fan-out."""
        lease = await self._renew_lease()
        if lease is None:
            await self._stop_workers(list(self._workers), 0)
            return
        endpoints = await self._endpoints.active_endpoints()
        self._sync_workers(endpoints, lease)
        while await self._outbox.fanout_pending():
            async with self._event_log.transaction() as conn:
                count, touched = await self._outbox.fanout(
                    conn, endpoints, batch=self._batch, now=self._clock()
                )
            for endpoint_id in touched:
                worker = self._workers.get(endpoint_id)
                if worker is not None:
                    worker.wake()
            if count < self._batch:
                break
        for endpoint_id in await self._outbox.endpoints_with_due_deliveries(now=self._clock()):
            worker = self._workers.get(endpoint_id)
            if worker is not None:
                worker.wake()
        if time.monotonic() >= self._gauge_at:
            QUEUE_SIZE.labels(queue="webhook_pending").set(await self._outbox.pending_count())
            self._gauge_at = time.monotonic() + 1.0

    def _sync_workers(self, endpoints: list[WebhookEndpoint], lease: leases.Lease) -> None:
        active = {e.id: e for e in endpoints}
        for endpoint_id, worker in list(self._workers.items()):
            if endpoint_id not in active or worker.finished:
                worker.stop()
                del self._workers[endpoint_id]
        for endpoint_id, endpoint in active.items():
            existing = self._workers.get(endpoint_id)
            if existing is not None:
                if existing.endpoint.url != endpoint.url:
                    existing.stop()  # a new URL gets a new connection pool
                    del self._workers[endpoint_id]
                else:
                    existing.endpoint = endpoint  # secret or subscription changed
                    continue
            worker = EndpointWorker(
                endpoint,
                repository=self._repository,
                event_log=self._event_log,
                sender=self._sender_factory(endpoint),
                policy=self.policy,
                clock=self._clock,
                rand=self._rand,
                concurrency=self._concurrency,
                batch=self._batch,
                fence=leases.guard(lease),
            )
            self._workers[endpoint_id] = worker
            worker.start()
