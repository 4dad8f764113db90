"""The webhook dispatcher: fan events out into per-endpoint queues and work each queue on its own.

Shape (all state is in the database, so a crash loses nothing):

* **Supervisor** (one task): holds the lease ``dispatcher`` (:mod:`mailport.leases`: one
  dispatching process per database; the workers record results fenced with its token, so a
  process that lost it records nothing more and its deliveries go out again from the new holder),
  reads events after the fan-out cursor and inserts one delivery row per subscribed active
  endpoint (``webhook_deliveries``, the outbox), and keeps one worker per active endpoint. It
  wakes when this process appends events (:meth:`mailport.events.EventLog.wait`), on PostgreSQL
  when another process commits some (its ``NOTIFY``, e.g. from a worker whose
  ``MAILPORT_WORKER_PARTS`` leave delivery to this one), and polls every ``poll_interval``
  seconds whatever happened.
* **Endpoint worker** (one task per endpoint, its own HTTP connection pool): sends the
  endpoint's pending deliveries in event order, **one at a time per mailbox** (order per
  mailbox) and up to ``concurrency`` mailboxes at once; a failed delivery blocks only the later
  deliveries of its own mailbox on that endpoint until it succeeds or becomes a dead letter. A
  slow or dead endpoint therefore never delays another endpoint, and each request has a timeout.
  An endpoint with ``batch_size`` > 1 sends up to that many consecutive deliveries of one
  mailbox in one request, delivered or retried together (:mod:`mailport.delivery.batches`);
  the order and blocking rules are the same, per request instead of per delivery.
* Results are written in batches (attempt rows, delivery state, the endpoint's failing streak)
  and the delivered events that every consumer owing them has now accepted are marked accepted
  in the same transaction (:mod:`mailport.events.acceptance`). A dead letter on an endpoint
  failing for ``policy.disable_after`` disables it and appends ``webhook.disabled``.

A process killed between a 2xx and the write of its result sends that delivery again after the
restart, with the same ``webhook-id``: at least once, with a stable idempotency key.

Fast path (latency)
-------------------
Measured on SQLite, an event waited ~15-25 ms for five database round trips in a row before its
request left (endpoints, "anything to fan out?", the fan-out, "anything due?", the worker's read
of its queue); the request itself took ~1.4 ms. Now:

* A cycle woken because this process appended events (:attr:`EventLog.appended_version`) fans
  out at once with the cached active endpoints; the fan-out checks them in its transaction
  (:meth:`Outbox.fanout`: stale -> read them again). Reading the endpoints, asking whether there
  is anything to fan out, and looking for due deliveries (retries, replays, other processes)
  happen in the cycles that run at least every ``poll_interval``.
* Such a cycle fans out the events this process has just committed (:meth:`EventLog.take_committed`)
  without reading them back, when they follow the fan-out cursor as this dispatcher last left
  it without a gap: one ``UPDATE`` moves the cursor only if it still stands there and the active
  endpoints are still the cached ones (:meth:`Outbox.fanout_committed`), then the deliveries'
  ``INSERT`` and the commit: two statements instead of five. Anything else (another process's
  events, a changed endpoint, a cursor moved by another holder) falls back to reading, in the
  same transaction.
* Inside the appending transaction (:class:`mailport.events.InlineFanout`): while this process
  holds the lease and knows the cursor, every transaction of its event log that appends events
  fans them out itself, just before it commits, with the same conditional ``UPDATE`` and
  ``INSERT``; its deliveries are offered right after the commit, in ``seq`` order (one that
  commits ahead of an earlier one not reported yet waits for it). A backlog's events then reach
  the workers chunk by chunk, instead of in fan-out transactions that on SQLite each waited
  for a turn behind every watcher's (0.2-0.4 s, while the workers had nothing to send). On
  PostgreSQL it never waits for the state row (``SKIP LOCKED``): the cycle does it then.
* The supervisor wakes within one loop iteration of the commit (:meth:`EventLog.notify`), and
  the ``min_cycle`` coalescing counts only cycles that wake-ups asked work of: a poll or an
  acceptance just before an event no longer holds it back. Full cycles run on their own clock.
* The fan-out returns the delivery rows it committed, with their bodies, and offers them to the
  endpoint's worker (:meth:`EndpointWorker.offer`). A worker is *clean* when its last complete
  read of the queue was all delivered and no offer was ignored since: then the offers are its
  whole queue and it sends them from memory, in event order, without reading them back. Any
  failure, postponed mailbox or lost result sends it back to reading the database, after
  writing every result it holds (no resend); so does a due-check wake-up, but only once the
  in-memory queue is out or after :data:`DUE_GRACE` (the due deliveries it finds during a
  backlog are that queue). An overflow (more than :data:`QUEUE_BYTES` of bodies queued, a
  backlog) keeps the queue: it goes out first, then the rest is read back (dropping it cost a
  read of the same rows again).
* Reads of the queue take up to ``4 x batch`` deliveries:
  each read, and the write of results before it, is a pause in sending, so a backlog pauses
  a quarter as often. A fan-out transaction likewise moves up to ``4 x batch`` events: on
  SQLite each waits for its turn behind the watchers' transactions, and 500 a turn left the
  fan-out thousands of events behind ingestion in ``bench/ingest_backlog.py``.
  When a round empties the queue its results are written in the background, so the next
  offer goes out without waiting for that write (a SQLite turn behind the watchers'); a read
  of the queue from the database still writes every result first.
  The rows are committed before any send, and results are still written in fenced batches, so
  a crash or a lost lease re-sends with the same ``webhook-id`` exactly as before.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from mailport import leases
from mailport.clock import Clock, utc_now
from mailport.delivery.batches import batch_body, batch_webhook_id, take_batch
from mailport.delivery.metrics import DELIVERY_LATENCY, QUEUE_SIZE, WEBHOOK_ATTEMPTS
from mailport.delivery.models import DeliveryStatus, WebhookEndpoint
from mailport.delivery.outbox import AttemptRecord, Fanout, PendingDelivery
from mailport.delivery.repository import WebhookRepository
from mailport.delivery.retry import RetryPolicy
from mailport.delivery.sender import Outcome, WebhookSender
from mailport.delivery.signing import Signer
from mailport.errors import LeaseLostError
from mailport.events import COMMITTED_CHANNEL, CommittedEvent, EventLog
from mailport.fleet.listen import Listener
from mailport.net.guard import HostGuard
from mailport.store.sqlite_watch import CommitWatch, sqlite_path
from mailport.tasks import cancel_and_wait, stop_if_cancelled

log = logging.getLogger(__name__)

SenderFactory = Callable[[WebhookEndpoint], WebhookSender]
KEEP_COMMITTED = 4000  # events this process committed, kept for the next fan-out (memory bound)
QUEUE_BATCHES = 4  # a read of a worker's queue takes this many batches; a fan-out moves as many
# A worker's in-memory queue holds up to this many bytes of request bodies: during a backlog
# it is what lets deliveries go out without being read back from the database (a read of
# 2,000 waiting deliveries with their bodies took ~50 ms of the webhook worker's time on SQLite)
QUEUE_BYTES = 16 * 1024 * 1024
DUE_GRACE = 5.0  # seconds a clean worker's queue goes first before a due-check's read (wake)
# SQLite: the newest event, read when another connection committed (Dispatcher._listen)
NEWEST_EVENT = "SELECT coalesce(max(seq), 0) FROM events"  # (mailport.store.tables.events)
EARLY_LIMIT = 64  # inline fan-outs held back for an earlier one before giving up (Dispatcher.committed)


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
    queue_bytes: int = QUEUE_BYTES  # the in-memory queue's bound (request bodies)
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
    # The in-memory queue (see "Fast path" in the module docstring).
    _queue: deque[PendingDelivery] = field(default_factory=deque, init=False)
    _clean: bool = field(default=False, init=False)  # the database holds nothing pending beyond _queue
    _missed: bool = field(default=False, init=False)  # an offer was ignored since the last read
    _recheck: bool = field(default=False, init=False)  # read the database before sending more
    _due_since: float | None = field(default=None, init=False)  # a due-check's recheck held back since
    _queued_bytes: int = field(default=0, init=False)  # the bodies in _queue
    _seen_seq: int = field(default=0, init=False)  # the highest event seq read or queued
    _round_ok: bool = field(default=True, init=False)  # every send of this round was delivered
    _flushing: set[asyncio.Task[None]] = field(default_factory=set, init=False)  # see _flush_soon

    def __post_init__(self) -> None:
        self._endpoints = self.repository.endpoints
        self._outbox = self.repository.outbox
        self.max_queued = self.batch * QUEUE_BATCHES  # a read of the queue from the database

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"webhook-{self.endpoint.id}")

    def wake(self, *, recheck: bool = False, due: bool = False) -> None:
        """Look at the queue; ``recheck``: read it from the database first (deliveries were
        committed that it may not hold). ``due``: the supervisor found due deliveries (a retry
        came due, a replay, another process's change): a clean worker still sending its
        in-memory queue reads the database when that queue is empty, or after
        :data:`DUE_GRACE` seconds. Those due deliveries are mostly the queue itself, during a
        backlog: read at once, every full cycle dropped the queue and read it back, and the
        worker never became clean again until the backlog was over."""
        if recheck:
            self._recheck = True
        elif due and not self._recheck:
            if self._clean and self._queue:
                if self._due_since is None:
                    self._due_since = time.monotonic()
                elif time.monotonic() - self._due_since >= DUE_GRACE:
                    self._recheck = True
            else:
                self._recheck = True
        self._wakeup.set()

    def offer(self, items: list[PendingDelivery]) -> None:
        """New deliveries, just committed by the fan-out (event order). A worker that knows the
        rest of its queue is empty sends them from memory; otherwise it reads them back."""
        if self._clean and not self._missed:
            fresh = [item for item in items if item.event_seq > self._seen_seq]
            size = sum(len(item.body) for item in fresh)
            if self._queued_bytes + size > self.queue_bytes:  # memory stays bounded:
                self._missed = True  # the queue goes out first, then the rest is read back
            elif fresh:
                self._queue.extend(fresh)
                self._queued_bytes += size
                self._seen_seq = fresh[-1].event_seq
        else:
            self._missed = True
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
                self._forget_queue()
                log.exception("webhook worker %s failed; retrying", self.endpoint.id)
                next_due = self.clock() + timedelta(seconds=1)
            if self._stopping or self._disabled:
                break
            timeout = self.idle_poll
            if self._queue and self._clean:
                timeout = 0.0
            elif next_due is not None:
                timeout = min(timeout, max((next_due - self.clock()).total_seconds(), 0.0))
            if timeout > 0:
                try:
                    await asyncio.wait_for(self._wakeup.wait(), timeout)
                except TimeoutError:
                    pass
            self._wakeup.clear()
        await asyncio.gather(*self._flushing)  # (they log their own failures)
        try:
            await self._flush()  # a clean round may have left its last results for the next one
        except Exception:  # lost: those deliveries go out again after a restart (same ids)
            log.exception("writing webhook results failed")
        await self.sender.aclose()

    def _forget_queue(self) -> None:
        """Back to reading the queue from the database (after a failure, a retry, a lost result)."""
        self._clean = False
        self._queue.clear()
        self._queued_bytes = 0

    async def _drain(self) -> datetime | None:
        """Send what is due; returns when to look again (None: when woken or at the idle poll)."""
        if self._clean and not self._queue and self._due_since is not None:
            self._recheck = True  # the due-check held back: the queue is out now
        if self._clean and not self._recheck and self._queue:
            taken = [self._queue.popleft() for _ in range(min(self.batch, len(self._queue)))]
            self._queued_bytes -= sum(len(item.body) for item in taken)
            await self._send_round(taken, self.clock(), final_flush=False)
            if not self._queue:
                self._flush_soon()  # the next offer goes out without waiting for this write
            if not self._round_ok:
                self._forget_queue()
            return self.clock() if self._queue or self._missed else None
        if self._clean and not self._recheck and not self._missed:
            return None  # the queue is empty and so is the database
        await self._flush()  # nothing sent stays unrecorded before a read: no resend
        self._forget_queue()
        self._recheck = self._missed = False
        self._due_since = None
        items = await self._outbox.pending(self.endpoint.id, limit=self.max_queued)
        complete = len(items) < self.max_queued
        if not items:
            self._clean = complete and not self._missed
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
            await self._send_round([item for group in due for item in group], now, final_flush=True)
            if complete and not postponed and self._round_ok and not self._missed:
                # everything pending was read and delivered: what the fan-out offers from now
                # on is the whole queue
                self._clean = True
                self._seen_seq = max(self._seen_seq, max(item.event_seq for item in items))
        if not complete or due:
            return self.clock()  # more may be waiting (or a retry became due meanwhile)
        return next_due

    async def _send_round(
        self, items: list[PendingDelivery], started: datetime, *, final_flush: bool
    ) -> None:
        """Send ``items`` (event order), each mailbox's one after another, up to ``concurrency``
        mailboxes at once, writing results in the background. ``final_flush``: write the last
        results before returning (always before the queue is read from the database again)."""
        groups: dict[str | None, list[PendingDelivery]] = {}
        for item in items:
            groups.setdefault(item.mailbox_id, []).append(item)
        self._round_ok = True
        semaphore = asyncio.Semaphore(self.concurrency)
        done = asyncio.Event()
        flusher = asyncio.create_task(self._flush_periodically(done))
        try:
            if len(groups) == 1:
                await self._send_group(items, semaphore, started)
            else:
                await asyncio.gather(
                    *(self._send_group(group, semaphore, started) for group in groups.values())
                )
        finally:
            done.set()
            self._flush_wanted.set()
            await flusher  # never cancelled mid-transaction
            if final_flush or self._stopping or self._disabled:
                await self._flush()

    async def _flush_periodically(self, done: asyncio.Event) -> None:
        """Write results in the background while the groups keep sending."""
        while True:
            try:
                await asyncio.wait_for(self._flush_wanted.wait(), self.flush_interval)
            except TimeoutError:
                pass
            self._flush_wanted.clear()
            if done.is_set():
                return  # the round's last results: its caller writes them, or the next round
            await self._flush_or_forget()

    def _flush_soon(self) -> None:
        """Write the results held in the background (a clean round that emptied the queue):
        awaiting that write held back the next offer by a SQLite turn (~0.8 s behind the
        watchers' transactions in the backlog bench). Every read of the queue from the database
        still writes first (:meth:`_flush` waits for this one's lock)."""
        task = asyncio.create_task(self._flush_or_forget())
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)

    async def _flush_or_forget(self) -> None:
        try:
            await self._flush()
        except Exception:  # the results are lost: those deliveries go out again (same id)
            self._forget_queue()
            log.exception("writing webhook results failed")

    async def _send_group(
        self, group: list[PendingDelivery], semaphore: asyncio.Semaphore, started: datetime
    ) -> None:
        """One mailbox's deliveries, strictly one request after another; a request carries up to
        the endpoint's ``batch_size`` consecutive ones (:mod:`mailport.delivery.batches`)."""
        async with semaphore:
            position = 0
            while position < len(group):
                if self._stopping or self._disabled:
                    self._round_ok = False
                    return
                size = self.endpoint.batch_size  # read each time: a PATCH applies from the next request
                count = take_batch(group, start=position, size=size, due_at=started)
                if count == 0:  # its retry is not due: nothing after it goes either
                    self._round_ok = False
                    return
                taken = group[position : position + count]
                position += count
                records = [await self._attempt(taken[0])] if size == 1 else await self._attempt_batch(taken)
                self._buffer.extend(records)
                if len(self._buffer) >= self.flush_size:
                    self._flush_wanted.set()
                if any(record.new_status is not DeliveryStatus.DELIVERED for record in records):
                    self._round_ok = False
                if any(record.new_status is DeliveryStatus.PENDING for record in records):
                    return  # a retry is scheduled: later mail of this mailbox waits for it

    def _signer(self) -> Signer:
        """The endpoint's signer, made again when the endpoint (its secret) was replaced."""
        if self._signing is None or self._signing[0] is not self.endpoint:
            self._signing = (self.endpoint, Signer(self.endpoint.secret))
        return self._signing[1]

    async def _attempt(self, item: PendingDelivery) -> AttemptRecord:
        """One event in one request, as its own body (``batch_size`` 1)."""
        attempted_at = self.clock()
        headers = self._signer().headers(message_id=item.event_id, timestamp=attempted_at, body=item.body)
        outcome: Outcome = await self.sender.post(self.endpoint.url, item.body, headers)
        return self._results([item], outcome, attempted_at)[0]

    async def _attempt_batch(self, items: list[PendingDelivery]) -> list[AttemptRecord]:
        """Consecutive deliveries of one mailbox in one request, delivered or retried together."""
        attempted_at = self.clock()
        body = batch_body(items)
        headers = self._signer().headers(
            message_id=batch_webhook_id(items), timestamp=attempted_at, body=body
        )
        outcome: Outcome = await self.sender.post(self.endpoint.url, body, headers)
        return self._results(items, outcome, attempted_at)

    def _results(
        self, items: list[PendingDelivery], outcome: Outcome, attempted_at: datetime
    ) -> list[AttemptRecord]:
        """One attempt record per delivery of a request. After a failure each delivery follows
        its own retry window (dead letter when it is over), and those still retried share the
        earliest of their next times, so the batch goes out again together."""
        WEBHOOK_ATTEMPTS.labels(result=outcome.result).inc()
        finished = self.clock()
        if outcome.ok:
            for item in items:
                DELIVERY_LATENCY.observe(max((finished - item.event_created_at).total_seconds(), 0.0))
            outcomes: list[tuple[DeliveryStatus, datetime | None]] = [
                (DeliveryStatus.DELIVERED, None) for _ in items
            ]
        else:
            retry_at = [
                self.policy.next_attempt(
                    item.attempts + 1, window_started=item.window_started_at, now=finished, rand=self.rand
                )
                for item in items
            ]
            together = min((at for at in retry_at if at is not None), default=None)
            outcomes = [
                (DeliveryStatus.PENDING, together) if at is not None else (DeliveryStatus.DEAD, None)
                for at in retry_at
            ]
            log.info(
                "webhook %s delivery %s failed (%s%s); %s",
                self.endpoint.id,
                items[0].id
                if len(items) == 1
                else f"{items[0].id}..{items[-1].id} ({len(items)} in a batch)",
                outcome.result,
                f" {outcome.status_code}" if outcome.status_code else "",
                f"retry at {together.isoformat()}" if together else "dead letter",
            )
        return [
            AttemptRecord(
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
            for item, (status, next_at) in zip(items, outcomes, strict=True)
        ]

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
        queue_bytes: int = QUEUE_BYTES,
        commit_poll: float = 0.0,
    ) -> None:
        self._repository = repository
        self._endpoints = repository.endpoints
        self._outbox = repository.outbox
        self._min_cycle = min_cycle
        self._queue_bytes = queue_bytes
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
        # events per fan-out transaction: each one waits for its turn among the watchers' SQLite
        # transactions (~0.8 s in the backlog bench), so one turn moves as many as a worker
        # may queue in memory (500 a turn left the fan-out ~6,000 events behind ingestion)
        self._fanout_batch = batch * QUEUE_BATCHES
        self.owner = owner or leases.new_holder()
        self._leases = leases.Leases(event_log.database, clock=clock)
        self._lease: leases.Lease | None = None
        self._sender_factory = sender_factory or self._default_sender
        self._workers: dict[str, EndpointWorker] = {}
        self._task: asyncio.Task[None] | None = None
        self._lease_renew_at: float = 0.0
        self._gauge_at: float = 0.0
        self._active: list[WebhookEndpoint] | None = None  # cached; checked by every fan-out
        self._fanout_seq: int | None = None  # the fan-out cursor as this process last left it
        # inline fan-outs committed ahead of one not reported yet (PostgreSQL), by their start
        self._early: dict[int, Fanout] = {}
        self._full_at: float = 0.0  # the next cycle that reads everything (see run_once)
        # other processes' commits of events wake the supervisor: their NOTIFY on PostgreSQL,
        # on SQLite a look at PRAGMA data_version every commit_poll seconds (0: none). A wake-up
        # costs ~150 us of CPU on the benchmark VM, 50 a second ~1 % of a core even when idle,
        # so only a process whose events come from others looks (Runtime: no watchers here)
        self._listener: Listener | None = None
        self._commit_watch: CommitWatch | None = None
        self._commit_poll = commit_poll

    def _default_sender(self, endpoint: WebhookEndpoint) -> WebhookSender:
        return WebhookSender(self._guard, timeout=self._timeout, max_connections=self._concurrency)

    async def start(self) -> asyncio.Task[None]:
        if self._task is None or self._task.done():
            self._event_log.keep_committed(KEEP_COMMITTED)
            self._listen()
            self._task = asyncio.create_task(self._supervise(), name="webhook-dispatcher")
        return self._task

    def _listen(self) -> None:
        """Wake on the events other processes commit (watchers in a worker that runs no
        dispatcher, an API-only process) instead of finding them at the next poll. PostgreSQL:
        their ``NOTIFY``; when the LISTEN connection is (re)made, look once for what came
        meanwhile. SQLite (a file), when ``commit_poll`` > 0: :class:`CommitWatch` asks every
        ``commit_poll`` seconds whether another connection committed, and wakes the supervisor
        when the newest event is past the fan-out cursor as this process left it (its own
        commits, fanned out in their transactions, are not)."""
        database = self._event_log.database
        if database.dialect == "postgresql" and self._listener is None:
            self._listener = Listener(database)
            self._listener.subscribe(COMMITTED_CHANNEL, lambda _payload: self._event_log.foreign_commit())
            self._listener.on_connect(self._event_log.foreign_commit)
            self._listener.start()
        path = sqlite_path(database.engine.url) if database.dialect == "sqlite" else None
        if path is not None and self._commit_watch is None and self._commit_poll > 0:
            self._commit_watch = CommitWatch(
                path, NEWEST_EVENT, self._newest_event, interval=self._commit_poll
            )
            self._commit_watch.start()

    def _newest_event(self, seq: int) -> None:
        """:class:`CommitWatch`: another connection committed; ``seq`` is the newest event's."""
        if self._lease is not None and (self._fanout_seq is None or seq > self._fanout_seq):
            self._event_log.foreign_commit()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def stop(self, timeout: float = 5.0) -> None:
        """Stop taking work, let sends in flight finish and record (up to ``timeout``), release the lease."""
        if self._task is not None:
            await cancel_and_wait(self._task, timeout=timeout)  # bounded: never hang shutdown
            self._task = None
        if self._listener is not None:
            await self._listener.stop()
            self._listener = None
        if self._commit_watch is not None:
            await self._commit_watch.stop()
            self._commit_watch = None
        await self._stop_workers(list(self._workers), timeout)
        self._event_log.keep_committed(None)
        self._stop_inline()
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
        log_ = self._event_log
        seen = (-1, -1, -1)  # version, appended_version, accepted_version at the last cycle
        woken = False
        busy_at = -math.inf  # when the last cycle that wake-ups asked work of (appends, a kick) began
        while True:
            started = loop.time()
            now = (log_.version, log_.appended_version, log_.accepted_version)
            appended = now[1] != seen[1]
            # woken by something else than appends and acceptances: a replay, a new endpoint
            kicked = woken and now[0] - seen[0] > (now[1] - seen[1]) + (now[2] - seen[2])
            try:
                await self.run_once(appended=appended, full=not woken or kicked)
            except asyncio.CancelledError:
                raise
            except Exception:
                stop_if_cancelled()
                log.exception("webhook dispatcher cycle failed; retrying")
            if appended or kicked:
                busy_at = started
            seen = now
            # appends during the cycle wake the next one
            woken = await log_.wait(self._idle_wait(), since=now[0])
            # Coalesce bursts of wake-ups (at most one working cycle per ``min_cycle``) without
            # delaying a lone event: a wake-up after a quiet spell runs at once. Only cycles
            # that wake-ups asked work of count: a poll or an acceptance-only cycle just before
            # an event held that event back by up to ``min_cycle`` (issue 21: ~10 ms p50 in
            # bench/ingest_latency.py, whose messages came as often as the polls).
            pause = self._min_cycle - (loop.time() - busy_at)
            if pause > 0:
                await asyncio.sleep(pause)

    def _idle_wait(self) -> float:
        """How long to wait for a wake-up: until the next full cycle is due, on its own clock
        (every ``poll_interval`` whatever the wake-ups did meanwhile). Counted from the last
        cycle instead, it fell in step with events arriving about once per ``poll_interval``,
        and every event then waited for a full cycle started just before it."""
        left = self._full_at - time.monotonic()
        return left if 0 < left < self._poll_interval else self._poll_interval

    async def run_once(self, *, appended: bool = False, full: bool = True) -> None:
        """One supervisor cycle: lease, workers, fan-out.

        ``appended``: woken because this process appended events: fan out at once (no read to
        ask whether there is anything), with the cached endpoints (the fan-out checks them in its
        transaction). ``full``: also read the endpoints, ask whether other processes appended
        anything, and look for due deliveries (retries, replays); that happens at least every
        ``poll_interval`` whatever ``full`` says."""
        lease = await self._renew_lease()
        committed = self._event_log.take_committed() if appended else []
        if lease is None:
            self._stop_inline()
            await self._stop_workers(list(self._workers), 0)
            self._active = None
            return
        now_mono = time.monotonic()
        full = full or self._active is None or now_mono >= self._full_at
        if full or self._active is None:  # (None: for the type checker)
            self._active = await self._endpoints.active_endpoints()
            self._full_at = now_mono + self._poll_interval
        endpoints = self._active
        self._sync_workers(endpoints, lease)
        if self._event_log.inline_fanout is None:
            self._event_log.inline_fanout = self
        if not appended and not full:
            return  # only acceptances since the last cycle: nothing to do
        seen = self._fanout_seq
        if not full and committed and seen is not None and committed[-1].seq <= seen:
            return  # what this process appended was fanned out in its own transactions
        look_first = not appended
        retries = 3  # a fan-out that finds the endpoints out of date
        while not look_first or await self._outbox.fanout_pending():
            look_first = True
            async with self._event_log.transaction() as conn:
                done = await self._fanout(conn, endpoints, committed)
                committed = []
            if done.stale:  # an endpoint was added, changed or removed: read them, then again
                endpoints = self._active = await self._endpoints.active_endpoints()
                self._sync_workers(endpoints, lease)
                retries -= 1
                look_first = retries <= 0
                if retries < 0:
                    break  # the next cycle tries again
                continue
            self._fanout_seq = done.through
            self._offer(done)
            self._offer_early()
            if done.count < self._fanout_batch:
                break
        if full:
            for endpoint_id in await self._outbox.endpoints_with_due_deliveries(now=self._clock()):
                worker = self._workers.get(endpoint_id)
                if worker is not None:
                    worker.wake(due=True)
        if full and time.monotonic() >= self._gauge_at:
            # on full cycles only (at least every poll_interval): a fan-out cycle's count(*)
            # ran while its deliveries were being sent, on the loop and the database they need
            QUEUE_SIZE.labels(queue="webhook_pending").set(await self._outbox.pending_count())
            self._gauge_at = time.monotonic() + 1.0

    def _offer(self, done: Fanout) -> None:
        for endpoint_id, items in done.queued.items():
            worker = self._workers.get(endpoint_id)
            if worker is not None:
                worker.offer(items)

    # ------------------------------------------------------------ inline fan-out (InlineFanout)

    async def fanout(self, conn: AsyncConnection, appended: list[CommittedEvent]) -> Fanout | None:
        """:class:`mailport.events.InlineFanout`: the events a transaction of this process
        appended, fanned out in that transaction when they directly follow the fan-out cursor
        as this dispatcher knows it (:meth:`Outbox.fanout_committed`: one conditional
        ``UPDATE`` and the deliveries' ``INSERT``). Anything else is left to the cycle."""
        endpoints, after = self._active, self._fanout_seq
        if endpoints is None or after is None or self._lease is None or not self.running:
            return None
        fresh = sorted(appended, key=lambda event: event.seq)
        if len(fresh) > self._fanout_batch or fresh[0].seq <= after:
            return None
        return await self._outbox.fanout_committed(
            conn, endpoints, fresh, after=fresh[0].seq - 1, now=self._clock(), skip_locked=True
        )

    def committed(self, done: object) -> None:
        """Offer an inline fan-out's deliveries once it committed, in ``seq`` order: one that
        committed ahead of another not reported yet waits for it (see :data:`EARLY_LIMIT`)."""
        assert isinstance(done, Fanout) and done.through is not None
        self._early[done.through - done.count] = done
        self._offer_early()

    def _offer_early(self) -> None:
        while self._fanout_seq is not None and self._fanout_seq in self._early:
            done = self._early.pop(self._fanout_seq)
            self._fanout_seq = done.through
            self._offer(done)
        if self._fanout_seq is not None:
            for start in [start for start in self._early if start < self._fanout_seq]:
                del self._early[start]  # (the cursor went past it: nothing of it is offered)
                self._missed_all()
        if len(self._early) > EARLY_LIMIT:  # a gap that does not fill: read from the database
            self._early.clear()
            self._fanout_seq = None
            self._missed_all()

    def _missed_all(self) -> None:
        """Every worker reads its queue from the database before sending more."""
        for worker in self._workers.values():
            worker.wake(recheck=True)

    def _stop_inline(self) -> None:
        if self._event_log.inline_fanout is self:
            self._event_log.inline_fanout = None
        self._fanout_seq = None
        self._early.clear()

    async def _fanout(
        self, conn: AsyncConnection, endpoints: list[WebhookEndpoint], committed: list[CommittedEvent]
    ) -> Fanout:
        """The events this process just committed, when they follow the cursor as this process
        left it (:meth:`Outbox.fanout_committed`: one statement instead of three); else, or when
        the cursor or the endpoints changed meanwhile, whatever follows the cursor."""
        now = self._clock()
        after = self._fanout_seq
        if after is not None:
            fresh = [event for event in committed if event.seq > after]
            if 0 < len(fresh) <= self._fanout_batch:
                done = await self._outbox.fanout_committed(conn, endpoints, fresh, after=after, now=now)
                if done is not None:
                    return done
        return await self._outbox.fanout(conn, endpoints, batch=self._fanout_batch, now=now)

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
                queue_bytes=self._queue_bytes,
                fence=leases.guard(lease),
            )
            self._workers[endpoint_id] = worker
            worker.start()
