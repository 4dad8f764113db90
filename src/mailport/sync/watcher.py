"""One mailbox's watcher: connect, catch up from the cursor, watch, apply accepted actions; and
again after every failure, with jittered exponential backoff.

It drives any :class:`~mailport.connectors.base.Connector` through its hooks; cursors, epochs
and items are the connector's opaque strings (for IMAP: folder, UIDVALIDITY and UID).

* **Catch-up** runs after every (re)connect, at every push renewal / poll tick and on every
  new-mail notification; it fetches every message after the cursor (never by read state) with
  no time limit, batch by batch, each batch one transaction (events + its cursor together).
* **First connection** (no cursor): messages that arrived since the mailbox was created in
  mailport (with a minute of slack; the connector's :meth:`baseline`, IMAP by INTERNALDATE)
  are ingested; older mail is not.
* **Epoch change** (IMAP: UIDVALIDITY): ``mailbox.reset`` is emitted and the scope re-read from
  the connector's :meth:`restart` cursor; a message whose content hash or Message-ID was
  delivered under the old epoch is recorded under its new item without a new event.
* **Failures** are judged by the one rule (:func:`mailport.failures.classify`): temporary ones
  (the provider or the server's auth backend down: ``[UNAVAILABLE]``, 5xx, timeouts) put the
  mailbox in ``error`` and are retried with backoff; failures a person must fix are not retried
  in a loop: the mailbox goes to ``error`` (or ``reauth_required`` when the token endpoint
  refused the OAuth grant) with one ``mailbox.error`` / ``mailbox.reauth_required`` event, and
  the watcher waits ``auth_retry_seconds`` (or a configuration change, which restarts it).
* **Backoff** grows with every failed connection and resets only once a connection has stayed
  up ``healthy_after_seconds`` (a server that accepts the login and then fails must not be
  hammered with a TLS handshake and a LOGIN per second).
* **After-processing** runs the mailbox's *current* ``after_processing`` setting on each
  accepted message (a changed setting applies to actions still pending). A refusal of the
  server (a tagged NO/BAD, an unsupported command) is not a broken session: the actions are
  retried with backoff and, after ``action_max_attempts``, marked ``failed`` with one
  ``message.action_failed`` event each, counted in ``failed_24h``. An action the connector
  does not declare (:meth:`supports`) fails at once with ``unsupported_feature``.
* **A host the SSRF guard refuses** (vetted again at every connect: DNS may have changed since
  the mailbox was saved) is never contacted: the mailbox goes to ``error`` with
  ``[host_not_allowed]`` in ``last_error`` and the watcher waits ``host_retry_seconds`` (or a
  change of the mailbox, which restarts it).
* **Changes made on the server** (opt-in: ``message.updated``, ``message.deleted``,
  ``folder.created``, ``folder.deleted``) are looked for after connecting, at every change the
  watch reports (flags and expunges pushed by IDLE included) and, for folders, every
  ``folder_interval``; only for a tenant that asked (:mod:`mailport.sync.changes`).
* Each watcher is its own task; connects are bounded by a shared semaphore, and nothing a
  watcher does blocks another (big messages are parsed in a thread).
* **Fenced** (:mod:`mailport.leases`): every write — chunks, the first cursor, resets, action
  records, health and its events, change events, the connector's subscription row — commits
  only while the mailbox's lease is this watcher's tenure, and an after-processing action is
  checked right before it goes to the server. A process paused past its lease (GC, SIGSTOP, a
  partition) whose mailbox another took over writes nothing: ``LeaseLostError`` (counted in
  ``mailport_fenced_writes_refused_total{what}``) stops the watcher, logged in one line.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from mailport import retry
from mailport.clock import Clock, utc_now
from mailport.connectors.base import (
    Batch,
    ChangeKind,
    Connector,
    Cursor,
    Feature,
    ScopeState,
    action_feature,
)
from mailport.errors import (
    CommandError,
    HostNotAllowedError,
    LeaseLostError,
    MailportError,
    UnsupportedFeatureError,
)
from mailport.events import EventLog, EventType, NewEvent, append_many
from mailport.failures import Verdict, classify
from mailport.leases import Fence, Guard, Lease
from mailport.mailboxes.models import Mailbox, MailboxStatus
from mailport.mailboxes.service import HealthSink
from mailport.metrics import CONNECTIONS, CONNECTS, INGEST_LATENCY, LEASE_LOSSES, RECONNECTS
from mailport.sync import repository as repo
from mailport.sync.changes import FOLDER_INTERVAL, ChangeTracker
from mailport.sync.folders import resolve_watched
from mailport.sync.interest import ChangeInterest
from mailport.sync.pipeline import Parsed, chunk_rows, parse_chunk, store_chunk
from mailport.tasks import cancel_and_wait, stop_if_cancelled

log = logging.getLogger(__name__)

FIRST_SYNC_SLACK = timedelta(minutes=1)


class Backoff(retry.Backoff):
    """Reconnect delays: full jitter (AWS architecture blog), U(0, min(cap, base*2^n)), but never
    under 0.2 s (no busy loop). ``rand`` is the fraction of the nominal delay slept: tests pass
    ``lambda: 1.0`` for exact delays."""

    def __init__(self, base: float = 1.0, cap: float = 300.0, *, rand: retry.Rand = random.random) -> None:
        policy = retry.RetryPolicy(first_delay=base, max_delay=cap, jitter=1.0, min_delay=0.2)
        super().__init__(policy, rand=lambda: 1.0 - rand())


# A connection counts as healthy (and the reconnect backoff starts again from its base) once it
# has stayed up this long. A login alone proves little: a server may accept it and fail the next
# command every time, and resetting right after the login turned that into a reconnect storm
# (a TLS handshake and a LOGIN several times a second). 60 s is longer than any catch-up step
# that fails at once, and short enough that a real outage's recovery is not slowed down.
HEALTHY_AFTER_SECONDS = 60.0


@dataclass
class WatcherOptions:
    chunk: int = 200
    backoff_base: float = 1.0
    backoff_cap: float = 300.0
    auth_retry_seconds: float = 1800.0
    healthy_after_seconds: float = HEALTHY_AFTER_SECONDS
    # A refused after-processing action is retried after base, 2*base, 4*base … (capped), and
    # marked failed after max_attempts: 30 s .. 8 min covers a folder being created, a quota
    # being raised or a short server-side problem, without retrying a hopeless action forever.
    action_retry_base: float = 30.0
    action_retry_cap: float = 3600.0
    action_max_attempts: int = 5
    jitter: retry.Rand = random.random  # tests pass ``lambda: 1.0`` for exact delays
    host_retry_seconds: float = 1800.0  # a host the SSRF guard refused (a PATCH restarts sooner)
    folder_interval: float = FOLDER_INTERVAL  # between two folder diffs (opt-in folder events)

    def action_retries(self) -> retry.RetryPolicy:
        """The schedule of a refused after-processing action (no jitter: retried per batch)."""
        return retry.RetryPolicy(
            first_delay=self.action_retry_base,
            max_delay=self.action_retry_cap,
            max_attempts=self.action_max_attempts,
        )


@dataclass(slots=True)
class WatcherStatus:
    state: str = "starting"  # starting | connecting | connected | disconnected | error | reauth_required
    last_connected_at: datetime | None = None
    last_error: str | None = None
    consecutive_failures: int = 0
    push: bool = False
    processed: int = 0


class Watcher:
    """One watched folder of one mailbox, in one task.

    Memory matters here (thousands per process, issue 21): slots, no per-watcher Event (a stop
    resolves the one future :meth:`_sleep` waits on, if any), and the mailbox a health write
    returns is kept only where it differs from the one the watcher started with."""

    __slots__ = (
        "mailbox",
        "connector",
        "events",
        "database",
        "mailboxes",
        "owner",
        "connect_slots",
        "options",
        "clock",
        "fence",
        "status",
        "scope",
        "primary",
        "since",
        "changes",
        "_stopping",
        "_sleeper",
        "_state_gauge",
        "_task",
        "_since_checked",
        "_resolve",
        "_actions_cancelled",
        "_held",
    )

    def __init__(
        self,
        mailbox: Mailbox,
        connector: Connector,
        *,
        log_: EventLog,
        mailboxes: HealthSink,
        owner: str,
        connect_slots: contextlib.AbstractAsyncContextManager[object],
        options: WatcherOptions | None = None,
        clock: Clock = utc_now,
        fence: Fence | None = None,
        interest: ChangeInterest | None = None,
        folder: str | None = None,
        primary: bool = True,
        since: datetime | None = None,
        resolve: Callable[[Connector, str], Awaitable[str]] = resolve_watched,
    ) -> None:
        """``folder``: the watched folder (a path or ``role:<role>``; default the mailbox's
        ``folder``). Only the ``primary`` folder's messages get after-processing actions.
        ``since``: where a first sync starts (default the mailbox's creation). ``resolve``: the
        server path of ``folder``, asked at every connect (:mod:`mailport.sync.folders`)."""
        self.mailbox = mailbox
        self.connector = connector
        self.events = log_
        self.database = log_.database
        self.mailboxes = mailboxes
        self.owner = owner
        self.connect_slots = connect_slots
        self.options = options or WatcherOptions()
        self.clock = clock
        self.fence = fence  # the lease's check: a chunk commits only while the lease is this watcher's
        self.status = WatcherStatus()
        self._stopping = False
        self._sleeper: asyncio.Future[None] | None = None  # what _sleep waits on, while it does
        self._state_gauge: str | None = None
        self._task: asyncio.Task[None] | None = None
        self.scope = folder or mailbox.settings.folder or "INBOX"
        self.primary = primary
        self.since = since
        self._since_checked = False
        self._resolve = resolve
        self._actions_cancelled = False
        # (cursor, check_known) as this connection last committed them, so new mail costs no
        # read of either (only this watcher writes its cursor, under its lease); None after a
        # failure or a reconnect, which read them again
        self._held: tuple[Cursor, bool] | None = None
        # changes made on the server (opt-in events): mailport.sync.changes
        self.changes = ChangeTracker(
            connector,
            log_=log_,
            mailbox=lambda: self.mailbox,
            interest=interest,
            clock=clock,
            fence=fence,
            folder_interval=self.options.folder_interval,
            folders=primary,
        )
        connector.report_changes(self.changes.reporting)
        connector.under_lease(fence)  # its own writes (a provider subscription's row) too

    # ----------------------------------------------------------------- lifecycle

    def start(self, delay: float = 0.0) -> asyncio.Task[None]:
        self._task = asyncio.create_task(self._run(delay), name=f"watcher:{self.mailbox.id}")
        return self._task

    async def stop(self, timeout: float = 10.0) -> None:
        """Finish the chunk in progress (its transaction), then disconnect.

        If the caller is cancelled meanwhile, the watcher is cancelled too and the cancellation
        goes on up (swallowing it would keep the caller — the orchestrator's loop — running)."""
        self._stopping = True
        self._wake_sleeper()
        self.changes.stop()
        self.connector.wake()
        task = self._task
        if task is None:
            return
        try:
            done, _ = await asyncio.wait({task}, timeout=timeout)
        except asyncio.CancelledError:
            task.cancel()
            raise
        if not done:
            log.warning(
                "mailbox %s: watcher did not stop within %g s (state %s); cancelling",
                self.mailbox.id,
                timeout,
                self.status.state,
            )
            # Bounded: a task stuck in a cleanup that ignores cancellation must not hang shutdown.
            await cancel_and_wait(task, timeout=5)
        elif not task.cancelled() and task.exception() is not None:
            log.error("mailbox %s: watcher ended with an error", self.mailbox.id, exc_info=task.exception())
        self._set_state("stopped")

    def wake(self) -> None:
        """Apply accepted actions / catch up now."""
        self.connector.wake()

    def _set_state(self, state: str) -> None:
        if self._state_gauge is not None:
            CONNECTIONS.labels(state=self._state_gauge).dec()
        self._state_gauge = None if state == "stopped" else state
        if self._state_gauge is not None:
            CONNECTIONS.labels(state=self._state_gauge).inc()
        self.status.state = state

    async def _fence(self, conn: AsyncConnection, what: str) -> None:
        """Last in a write's transaction: it commits only while the lease is still this
        watcher's tenure (``LeaseLostError`` otherwise, counted under ``what``)."""
        if self.fence is not None:
            await self.fence(conn, what=what)

    def _fence_in_cursor(self, conn: AsyncConnection) -> Lease | None:
        """On SQLite, the lease whose guard becomes a condition of the chunk's cursor ``UPDATE``
        (:func:`mailport.leases.still_held`: the same guarantee as the fence, one round trip
        fewer). PostgreSQL fences last, locking the lease row, and any other fence (a test's)
        is called as it is."""
        if isinstance(self.fence, Guard) and conn.dialect.name == "sqlite":
            return self.fence.lease
        return None

    async def _lease_ready(self) -> bool:
        """Right before an action on the server (no rollback undoes it): is the lease still this
        tenure and unexpired? Raises ``LeaseLostError`` when another process took it; False
        when it ran out unrenewed (this process was paused): the actions wait for the renewal."""
        if self.fence is None:
            return True
        async with self.database.connect() as conn:
            return await self.fence.ready(conn, now=self.clock(), what="actions")

    async def _sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` unless stopped first: one future and one timer, and only while
        sleeping (no Event, no task of ``wait_for``)."""
        if self._stopping:
            return
        loop = asyncio.get_running_loop()
        sleeper: asyncio.Future[None] = loop.create_future()
        self._sleeper = sleeper
        timer = loop.call_later(seconds, _resolve, sleeper)
        try:
            await sleeper
        finally:
            timer.cancel()
            self._sleeper = None

    def _wake_sleeper(self) -> None:
        sleeper = self._sleeper
        if sleeper is not None:
            _resolve(sleeper)

    async def _run(self, delay: float) -> None:
        if delay:
            await self._sleep(delay)
        backoff = Backoff(self.options.backoff_base, self.options.backoff_cap, rand=self.options.jitter)
        loop = asyncio.get_running_loop()
        while not self._stopping:
            connected_at: float | None = None
            self._held = None
            try:
                self._set_state("connecting")
                async with self.connect_slots:
                    if self._stopping:
                        break
                    CONNECTS.inc()  # mailport_connects_total: a worker's connects per minute
                    await self.connector.connect()
                    scope = await self.connector.open(await self._resolve(self.connector, self.scope))
                await self._connected()
                connected_at = loop.time()
                await self.catch_up(scope)
                await self.apply_actions(scope)
                await self.changes.after_connect(scope)
                async for change in self.connector.watch(
                    interval=float(self.mailbox.settings.check_interval)
                ):
                    if self._stopping:
                        break
                    if change.kind in (ChangeKind.FLAGS, ChangeKind.EXPUNGED):
                        await self.changes.messages(scope)  # nothing new to ingest
                        continue
                    appended = await self.catch_up(scope)
                    if appended and change.kind is ChangeKind.NEW_MAIL:
                        INGEST_LATENCY.observe(asyncio.get_running_loop().time() - change.at)
                    await self.apply_actions(scope)
                    await self.changes.step(scope)
            except asyncio.CancelledError:
                raise
            except LeaseLostError as exc:  # another process watches the mailbox now
                LEASE_LOSSES.inc()
                log.warning("mailbox %s: %s; stopping", self.mailbox.id, exc)
                break
            except HostNotAllowedError as exc:
                # Refused before connecting: retrying soon cannot help (a PATCH that fixes the
                # host restarts the watcher), but DNS may change, so try again after a long pause.
                log.warning("mailbox %s: %s; not retrying for a while", self.mailbox.id, _describe(exc))
                await self._record_error(MailboxStatus.ERROR, EventType.MAILBOX_ERROR, exc)
                await self._sleep(self.options.host_retry_seconds)
            except Exception as exc:  # the one rule: back off and reconnect, or wait for a person
                stop_if_cancelled()
                verdict = classify(exc)
                if verdict is not Verdict.RETRY:
                    await self._auth_failed(exc, verdict)
                    await self._sleep(self.options.auth_retry_seconds)
                    continue
                if (
                    connected_at is not None
                    and loop.time() - connected_at >= self.options.healthy_after_seconds
                ):
                    backoff.reset()  # the connection had proven itself: this is a new problem
                await self._failed(exc)
                RECONNECTS.inc()
                await self._sleep(backoff.next())
            finally:
                with contextlib.suppress(Exception):  # best effort
                    await self.connector.disconnect()
        self._set_state("stopped")

    # ----------------------------------------------------------------- status

    async def _connected(self) -> None:
        now = self.clock()
        was = self.mailbox.health.status
        self.status.last_connected_at = now
        self.status.push = self.connector.supports(Feature.PUSH)
        self.status.consecutive_failures = 0
        self._set_state("connected")
        async with self.events.transaction() as conn:
            await repo.set_watcher_state(
                conn, self.mailbox.id, self.owner, state="connected", now=now, connected=True
            )
            if (was is not MailboxStatus.CONNECTED and self.primary) or self.status.last_error is not None:
                await append_many(
                    conn,
                    [
                        NewEvent(
                            self.mailbox.tenant_id,
                            self.mailbox.id,
                            EventType.MAILBOX_CONNECTED,
                            {"mailbox_id": self.mailbox.id, "push": self.status.push, "at": now.isoformat()},
                            f"connected:{self.mailbox.id}:{now.isoformat()}",
                        )
                    ],
                    now=now,
                )
            await self._fence(conn, "health")
        self.status.last_error = None
        self._keep(
            await self.mailboxes.record_health(
                self.mailbox.tenant_id,
                self.mailbox.id,
                status=MailboxStatus.CONNECTED,
                error=None,
                at=now,
                fence=self.fence,
            )
        )

    def _keep(self, fresh: Mailbox) -> None:
        """The mailbox as a health write returned it. When only its health changed, the one in
        hand gets the new health and keeps sharing its settings, server and secret objects with
        the connector's copy (two full copies per watcher cost ~2 KiB at 10,000 watchers each)."""
        held = self.mailbox
        if dataclasses.replace(fresh, health=held.health, updated_at=held.updated_at) == held:
            self.mailbox = dataclasses.replace(held, health=fresh.health, updated_at=fresh.updated_at)
        else:
            self.mailbox = fresh

    async def _record_error(self, status: MailboxStatus, event_type: EventType, exc: BaseException) -> None:
        now = self.clock()
        message = _describe(exc)
        first = self.status.consecutive_failures == 0
        self.status.consecutive_failures += 1
        self.status.last_error = message
        self._set_state(status.value if status is not MailboxStatus.CONNECTED else "disconnected")
        try:
            async with self.events.transaction() as conn:
                await repo.set_watcher_state(
                    conn, self.mailbox.id, self.owner, state=self.status.state, now=now
                )
                await repo.add_stats(conn, self.mailbox.id, at=now, errors=1)
                if first:
                    await append_many(
                        conn,
                        [
                            NewEvent(
                                self.mailbox.tenant_id,
                                self.mailbox.id,
                                event_type,
                                {
                                    "mailbox_id": self.mailbox.id,
                                    "folder": self.scope,  # the watched folder that failed
                                    "error": _code(exc),
                                    "detail": message,
                                    "hint": exc.hint if isinstance(exc, MailportError) else None,
                                    "at": now.isoformat(),
                                },
                                f"{event_type.value}:{self.mailbox.id}:{now.isoformat()}",
                            )
                        ],
                        now=now,
                    )
                await self._fence(conn, "health")
            self._keep(
                await self.mailboxes.record_health(
                    self.mailbox.tenant_id,
                    self.mailbox.id,
                    status=status,
                    error=message,
                    at=now,
                    fence=self.fence,
                )
            )
        except LeaseLostError as exc:  # another process watches the mailbox now: its health is its own
            LEASE_LOSSES.inc()
            log.warning("mailbox %s: %s; stopping", self.mailbox.id, exc)
            self._stopping = True
            self._wake_sleeper()
        except MailportError:  # the mailbox was deleted meanwhile
            self._stopping = True
        except Exception:
            log.exception("mailbox %s: could not record an error", self.mailbox.id)

    async def _auth_failed(self, exc: BaseException, verdict: Verdict) -> None:
        log.warning(
            "mailbox %s: authentication failed (%s); not retrying for a while",
            self.mailbox.id,
            _describe(exc),
        )
        if verdict is Verdict.REAUTH:
            await self._record_error(MailboxStatus.REAUTH_REQUIRED, EventType.MAILBOX_REAUTH_REQUIRED, exc)
        else:
            await self._record_error(MailboxStatus.ERROR, EventType.MAILBOX_ERROR, exc)

    async def _failed(self, exc: BaseException) -> None:
        if self._stopping:
            return
        log.info("mailbox %s: %s; reconnecting", self.mailbox.id, _describe(exc))
        await self._record_error(MailboxStatus.ERROR, EventType.MAILBOX_ERROR, exc)

    # ----------------------------------------------------------------- ingestion

    async def catch_up(self, scope: ScopeState) -> int:
        """Ingest everything after the cursor; returns how many events were appended."""
        held = self._held
        if held is not None and held[0].scope == scope.scope and held[0].epoch == scope.epoch:
            cursor, check_known = held
        else:
            cursor, check_known = await self._read_cursor(scope)
        self._held = None  # until this round's pages are committed
        appended = 0
        committing: asyncio.Task[int] | None = None  # the previous page's transaction
        try:
            async for batch in self.connector.fetch_since(cursor, chunk=self.options.chunk):
                if batch.messages or batch.cursor != cursor:
                    started = time.perf_counter()
                    # parsed while the previous page commits (its statements and fsync run
                    # outside the event loop): the pages of one mailbox still commit one
                    # after the other, in order, each with its own cursor
                    parsed = await parse_chunk(self.mailbox.id, batch.cursor.scope, batch.messages)
                    if committing is not None:
                        appended += await committing
                        committing = None
                        if self._stopping:
                            break
                    committing = asyncio.create_task(
                        self._store(batch, parsed, started=started, check_known=check_known)
                    )
                cursor = batch.cursor
                if self._stopping:
                    break
            if committing is not None:
                appended += await committing
        finally:
            if committing is not None and not committing.done():
                # left on an error (or cancelled) while a page was committing: it finishes or
                # fails on its own before the watcher goes on (a reconnect reads its cursor)
                await asyncio.wait({committing})
                if not committing.cancelled():
                    committing.exception()  # retrieved: the error that left is the one raised
        self._held = (cursor, check_known)  # every page of this round is committed
        return appended

    async def _read_cursor(self, scope: ScopeState) -> tuple[Cursor, bool]:
        """The folder's cursor from the database (a baseline on the first sync, a reset after an
        epoch change) and whether messages of other epochs exist (then known ones are matched)."""
        async with self.database.connect() as conn:
            cursor = await repo.get_cursor(conn, self.mailbox.id, scope.scope)
        if cursor is not None and self.since is not None and not self._since_checked:
            self._since_checked = True  # once per start: a folder watched again starts anew
            async with self.database.connect() as conn:
                if await repo.cursor_saved_before(conn, self.mailbox.id, scope.scope, self.since):
                    cursor = None
        if cursor is None:
            since = max(self.mailbox.created_at, self.since or self.mailbox.created_at) - FIRST_SYNC_SLACK
            cursor = await self.connector.baseline(scope, since=since)
            async with self.database.transaction() as conn:
                await repo.save_cursor(conn, self.mailbox.id, cursor, now=self.clock())
                await self._fence(conn, "cursor")
        elif cursor.epoch != scope.epoch:
            cursor = await self._reset(cursor, scope)
        async with self.database.connect() as conn:
            check_known = await repo.has_other_epochs(conn, self.mailbox.id, scope.scope, scope.epoch)
        return cursor, check_known

    async def _store(self, batch: Batch, parsed: list[Parsed], *, started: float, check_known: bool) -> int:
        now = self.clock()
        # the rows are built before the transaction: on SQLite, before this watcher's turn
        built = None if check_known else chunk_rows(self.mailbox, batch, parsed, now=now)
        async with self.events.transaction() as conn:
            result = await store_chunk(
                conn,
                self.mailbox,
                batch,
                parsed,
                now=now,
                check_known=check_known,
                started=started,
                actions=self.primary,
                fence_in_cursor=self._fence_in_cursor(conn),
                built=built,
            )
            if not result.fenced:
                await self._fence(conn, "events")  # last: the lease must still be ours when this commits
        self.status.processed += result.delivered
        return result.delivered

    async def _reset(self, old: Cursor, scope: ScopeState) -> Cursor:
        now = self.clock()
        cursor = await self.connector.restart(scope)
        log.warning(
            "mailbox %s: the epoch of %s changed %s -> %s; resynchronising",
            self.mailbox.id,
            scope.scope,
            old.epoch,
            scope.epoch,
        )
        async with self.events.transaction() as conn:
            await append_many(
                conn,
                [
                    NewEvent(
                        self.mailbox.tenant_id,
                        self.mailbox.id,
                        EventType.MAILBOX_RESET,
                        {
                            "mailbox_id": self.mailbox.id,
                            "connector": self.mailbox.connector,
                            "folder": scope.scope,
                            "old_epoch": old.epoch,
                            "new_epoch": scope.epoch,
                            "source": self.connector.epoch_source(scope.scope, old.epoch, scope.epoch),
                            "at": now.isoformat(),
                        },
                        f"reset:{self.mailbox.id}:{scope.scope}:{old.epoch}:{scope.epoch}",
                    )
                ],
                now=now,
            )
            await repo.save_cursor(conn, self.mailbox.id, cursor, now=now)
            await self._fence(conn, "events")
        return cursor

    # ----------------------------------------------------------------- after-processing

    async def apply_actions(self, scope: ScopeState) -> int:
        """Apply the current ``mark_read`` / ``move:<folder>`` / ``delete`` setting to accepted
        messages whose action is due; returns how many were done."""
        action = self.mailbox.settings.after_processing or "none"
        if not self.primary:  # the first folder's watcher acts (never on sent mail by default)
            return 0
        if action == "none":
            if not self._actions_cancelled:  # once per start: a changed setting restarts the watcher
                async with self.database.connect() as conn:
                    left = await repo.count_pending_actions(conn, self.mailbox.id)
                if left:
                    async with self.database.transaction() as conn:
                        await repo.cancel_pending_actions(
                            conn,
                            self.mailbox.id,
                            now=self.clock(),
                            why="after_processing was changed to none",
                        )
                        await self._fence(conn, "actions")
                self._actions_cancelled = True
            return 0
        async with self.database.connect() as conn:
            pending = await repo.accepted_actions(conn, self.mailbox.id, now=self.clock())
        if not pending:
            return 0
        here = (scope.scope, scope.epoch)
        current = [a for a in pending if (a.scope, a.epoch) == here]
        stale = [a for a in pending if (a.scope, a.epoch) != here]
        if stale:
            await self._actions_failed(stale, action, "the message's folder or its epoch changed", final=True)
        if not current:
            return 0
        needs = action_feature(action)
        if needs is not None and not self.connector.supports(needs):
            refused = UnsupportedFeatureError(
                f"the {self.mailbox.connector} connector cannot {needs.value} ({action})",
                hint="Change the mailbox's after_processing to an action its connector supports.",
            )
            await self._actions_failed(current, action, refused, final=True)
            return 0
        items = list(dict.fromkeys(a.item for a in current))
        if not await self._lease_ready():
            log.info("mailbox %s: the lease ran out unrenewed; after-processing waits", self.mailbox.id)
            return 0
        # The change stream first: a stream with no token yet starts at its first check, which
        # would otherwise take the state after this action as its starting point and never report
        # the action's own change (a consumer that accepts within the same wake as the ingestion).
        await self.changes.messages(scope)
        try:
            if action == "mark_read":
                await self.connector.mark_read(items)
            elif action == "delete":
                await self.connector.delete(items)
            elif action.startswith("move:"):
                await self.connector.move(items, action.split(":", 1)[1])
            else:
                raise UnsupportedFeatureError(f"unknown after-processing action {action!r}")
        except (CommandError, UnsupportedFeatureError) as exc:
            # The server refused (a tagged NO/BAD): the session is in step and stays up.
            log.warning(
                "mailbox %s: after-processing %s refused: %s", self.mailbox.id, action, _describe(exc)
            )
            await self._actions_failed(current, action, exc)
            return 0
        async with self.database.transaction() as conn:
            await repo.finish_actions(
                conn, [a.id for a in current], state="done", now=self.clock(), action=action
            )
            await self._fence(conn, "actions")
        return len(current)

    async def _actions_failed(
        self, items: list[repo.PendingAction], action: str, why: MailportError | str, *, final: bool = False
    ) -> None:
        """Retry ``items`` later with backoff, or, at the last attempt, mark them failed with one
        ``message.action_failed`` event each (counted in ``failed_24h``)."""
        now = self.clock()
        detail, code, said = (
            (why, "action_failed", None)
            if isinstance(why, str)
            else (_describe(why), why.code, why.server_said)
        )
        policy = self.options.action_retries()
        last = [final or policy.exhausted(a.attempts + 1) for a in items]
        again = [a for a, gone in zip(items, last, strict=True) if not gone]
        give_up = [a for a, gone in zip(items, last, strict=True) if gone]
        async with self.events.transaction() as conn:
            for attempts in sorted({a.attempts for a in again}):
                delay = policy.delay(attempts + 1)
                await repo.retry_actions_later(
                    conn,
                    [a.id for a in again if a.attempts == attempts],
                    at=now + timedelta(seconds=delay),
                    now=now,
                    error=detail,
                )
            if give_up:
                await self._give_up_actions(conn, give_up, action, detail, code, said, now=now)
            await self._fence(conn, "actions")

    async def _give_up_actions(
        self,
        conn: AsyncConnection,
        give_up: list[repo.PendingAction],
        action: str,
        detail: str,
        code: str,
        said: str | None,
        *,
        now: datetime,
    ) -> None:
        """Mark ``give_up`` failed, with one ``message.action_failed`` event each."""
        await repo.finish_actions(conn, [a.id for a in give_up], state="failed", now=now, error=detail)
        await append_many(
            conn,
            [
                NewEvent(
                    self.mailbox.tenant_id,
                    self.mailbox.id,
                    EventType.MESSAGE_ACTION_FAILED,
                    {
                        "mailbox_id": self.mailbox.id,
                        "message_id": a.message_id,
                        "event_id": a.event_id,
                        "connector": self.mailbox.connector,
                        "folder": a.scope,
                        "ref": a.ref.encode(),
                        "source": self.connector.item_source(a.ref),
                        "action": action,
                        "attempts": a.attempts + 1,
                        "error": code,
                        "detail": detail,
                        "server_said": said,
                        "at": now.isoformat(),
                    },
                    f"action_failed:{self.mailbox.id}:{a.id}",
                )
                for a in give_up
            ],
            now=now,
        )
        await repo.add_stats(conn, self.mailbox.id, at=now, failed=len(give_up))


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _code(exc: BaseException) -> str:
    return exc.code if isinstance(exc, MailportError) else type(exc).__name__


def _describe(exc: BaseException) -> str:
    if isinstance(exc, MailportError):
        return f"[{exc.code}] {exc.message}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
