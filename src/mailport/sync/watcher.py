"""One mailbox's watcher: connect, catch up from the cursor, watch, apply accepted actions; and
again after every failure, with jittered exponential backoff.

* **Catch-up** runs after every (re)connect, at every IDLE renewal / poll tick and on every
  new-mail notification; it fetches every UID above the cursor (never by ``\\Seen``) with no
  time limit, chunk by chunk, each chunk one transaction (events + cursor together).
* **First connection** (no cursor): messages that arrived since the mailbox was created in
  mailport (INTERNALDATE, with a minute of slack) are ingested; older mail is not.
* **UIDVALIDITY change**: ``mailbox.reset`` is emitted and the folder re-read; a message whose
  content hash or Message-ID was delivered under the old UIDVALIDITY is recorded under its
  new UID without a new event.
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
  ``message.action_failed`` event each, counted in ``failed_24h``.
* **A host the SSRF guard refuses** (vetted again at every connect: DNS may have changed since
  the mailbox was saved) is never contacted: the mailbox goes to ``error`` with
  ``[host_not_allowed]`` in ``last_error`` and the watcher waits ``host_retry_seconds`` (or a
  change of the mailbox, which restarts it).
* Each watcher is its own task; connects are bounded by a shared semaphore, and nothing a
  watcher does blocks another (big messages are parsed in a thread).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from mailport import retry
from mailport.clock import Clock, utc_now
from mailport.connectors.base import ChangeKind, Connector, Cursor, FolderState
from mailport.errors import (
    CommandError,
    HostNotAllowedError,
    LeaseLostError,
    MailportError,
    UnsupportedFeatureError,
)
from mailport.events import EventLog, EventType, NewEvent, append_many
from mailport.failures import Verdict, classify
from mailport.leases import Fence
from mailport.mailboxes.models import Mailbox, MailboxStatus
from mailport.mailboxes.service import HealthSink
from mailport.metrics import CONNECTIONS, INGEST_LATENCY, RECONNECTS
from mailport.sync import repository as repo
from mailport.sync.pipeline import parse_chunk, store_chunk
from mailport.tasks import cancel_and_wait, stop_if_cancelled

log = logging.getLogger(__name__)

FIRST_SYNC_SLACK = timedelta(minutes=1)
BASELINE_PAGE = 2000  # INTERNALDATEs fetched per round trip when the first cursor is placed


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

    def action_retries(self) -> retry.RetryPolicy:
        """The schedule of a refused after-processing action (no jitter: retried per batch)."""
        return retry.RetryPolicy(
            first_delay=self.action_retry_base,
            max_delay=self.action_retry_cap,
            max_attempts=self.action_max_attempts,
        )


@dataclass
class WatcherStatus:
    state: str = "starting"  # starting | connecting | connected | disconnected | error | reauth_required
    last_connected_at: datetime | None = None
    last_error: str | None = None
    consecutive_failures: int = 0
    push: bool = False
    processed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class Watcher:
    def __init__(
        self,
        mailbox: Mailbox,
        connector: Connector,
        *,
        log_: EventLog,
        mailboxes: HealthSink,
        owner: str,
        connect_slots: asyncio.Semaphore,
        options: WatcherOptions | None = None,
        clock: Clock = utc_now,
        fence: Fence | None = None,
    ) -> None:
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
        self._stop_event = asyncio.Event()
        self._state_gauge: str | None = None
        self._task: asyncio.Task[None] | None = None
        self.folder = mailbox.settings.folder or "INBOX"
        self._actions_cancelled = False

    # ----------------------------------------------------------------- lifecycle

    def start(self, delay: float = 0.0) -> asyncio.Task[None]:
        self._task = asyncio.create_task(self._run(delay), name=f"watcher:{self.mailbox.id}")
        return self._task

    async def stop(self, timeout: float = 10.0) -> None:
        """Finish the chunk in progress (its transaction), then disconnect.

        If the caller is cancelled meanwhile, the watcher is cancelled too and the cancellation
        goes on up (swallowing it would keep the caller — the orchestrator's loop — running)."""
        self._stopping = True
        self._stop_event.set()
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

    async def _sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` unless stopped first."""
        try:
            await asyncio.wait_for(self._stop_event.wait(), seconds)
        except TimeoutError:
            pass

    async def _run(self, delay: float) -> None:
        if delay:
            await self._sleep(delay)
        backoff = Backoff(self.options.backoff_base, self.options.backoff_cap, rand=self.options.jitter)
        loop = asyncio.get_running_loop()
        while not self._stopping:
            connected_at: float | None = None
            try:
                self._set_state("connecting")
                async with self.connect_slots:
                    if self._stopping:
                        break
                    await self.connector.connect()
                    folder = await self.connector.open_folder(self.folder)
                await self._connected()
                connected_at = loop.time()
                await self.catch_up(folder)
                await self.apply_actions(folder)
                async for change in self.connector.watch(
                    interval=float(self.mailbox.settings.check_interval)
                ):
                    if self._stopping:
                        break
                    appended = await self.catch_up(folder)
                    if appended and change.kind is ChangeKind.NEW_MAIL:
                        INGEST_LATENCY.observe(asyncio.get_running_loop().time() - change.at)
                    await self.apply_actions(folder)
            except asyncio.CancelledError:
                raise
            except LeaseLostError as exc:  # another process watches the mailbox now
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
        self.status.push = self.connector.supports_push
        self.status.consecutive_failures = 0
        self._set_state("connected")
        async with self.events.transaction() as conn:
            await repo.set_watcher_state(
                conn, self.mailbox.id, self.owner, state="connected", now=now, connected=True
            )
            if was is not MailboxStatus.CONNECTED or self.status.last_error is not None:
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
        self.status.last_error = None
        self.mailbox = await self.mailboxes.record_health(
            self.mailbox.tenant_id, self.mailbox.id, status=MailboxStatus.CONNECTED, error=None, at=now
        )

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
                                    "error": getattr(exc, "code", type(exc).__name__),
                                    "detail": message,
                                    "hint": getattr(exc, "hint", None),
                                    "at": now.isoformat(),
                                },
                                f"{event_type.value}:{self.mailbox.id}:{now.isoformat()}",
                            )
                        ],
                        now=now,
                    )
            self.mailbox = await self.mailboxes.record_health(
                self.mailbox.tenant_id, self.mailbox.id, status=status, error=message, at=now
            )
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

    async def _baseline(self, folder: FolderState) -> Cursor:
        """The first cursor: just before the first message that arrived after the mailbox was
        created in mailport (so mail delivered while the watcher was starting is not missed)."""
        since = self.mailbox.created_at - FIRST_SYNC_SLACK
        last_uid = max(folder.uidnext - 1, 0)
        if folder.exists:
            candidates = await self.connector.list_uids(1)
            # Newest first, a page at a time, until a page holds mail older than the creation
            # time: a large backlog that arrived since then is ingested whole, while an old
            # mailbox costs one page of INTERNALDATEs.
            end = len(candidates)
            while end > 0:
                page = candidates[max(0, end - BASELINE_PAGE) : end]
                dated = await self._internaldates(page)
                after = [uid for uid, when in dated if when is None or when >= since]
                if after:
                    last_uid = min(after) - 1
                if len(after) < len(page):
                    break
                end -= len(page)
        return Cursor(folder.folder, folder.uidvalidity, last_uid, folder.highestmodseq)

    async def _internaldates(self, uids: list[int]) -> list[tuple[int, datetime | None]]:
        fetch = getattr(self.connector, "internaldates", None)
        if fetch is not None:
            result: list[tuple[int, datetime | None]] = await fetch(uids)
            return result
        return [(m.uid, m.internaldate) for m in await self.connector.fetch_uids(uids)]

    async def catch_up(self, folder: FolderState) -> int:
        """Ingest everything above the cursor; returns how many events were appended."""
        async with self.database.connect() as conn:
            cursor = await repo.get_cursor(conn, self.mailbox.id, folder.folder)
        if cursor is None:
            cursor = await self._baseline(folder)
            async with self.database.transaction() as conn:
                await repo.save_cursor(conn, self.mailbox.id, cursor, now=self.clock())
        elif cursor.uidvalidity != folder.uidvalidity:
            cursor = await self._reset(cursor, folder)
        async with self.database.connect() as conn:
            check_known = await repo.has_other_epochs(
                conn, self.mailbox.id, folder.folder, folder.uidvalidity
            )
        appended = 0
        async for chunk in self.connector.fetch_since(cursor, chunk=self.options.chunk):
            if not chunk:
                continue
            started = time.perf_counter()
            parsed = await parse_chunk(self.mailbox.id, folder.folder, cursor.uidvalidity, chunk)
            async with self.events.transaction() as conn:
                result = await store_chunk(
                    conn,
                    self.mailbox,
                    cursor,
                    parsed,
                    now=self.clock(),
                    check_known=check_known,
                    started=started,
                )
                if self.fence is not None:
                    await self.fence(conn)
            cursor = Cursor(cursor.folder, cursor.uidvalidity, result.last_uid, cursor.highestmodseq)
            appended += result.delivered
            self.status.processed += result.delivered
            if self._stopping:
                break
        return appended

    async def _reset(self, old: Cursor, folder: FolderState) -> Cursor:
        now = self.clock()
        cursor = Cursor(folder.folder, folder.uidvalidity, 0, folder.highestmodseq)
        log.warning(
            "mailbox %s: UIDVALIDITY of %s changed %d -> %d; resynchronising",
            self.mailbox.id,
            folder.folder,
            old.uidvalidity,
            folder.uidvalidity,
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
                            "folder": folder.folder,
                            "old_uidvalidity": old.uidvalidity,
                            "new_uidvalidity": folder.uidvalidity,
                            "at": now.isoformat(),
                        },
                        f"reset:{self.mailbox.id}:{folder.folder}:{old.uidvalidity}:{folder.uidvalidity}",
                    )
                ],
                now=now,
            )
            await repo.save_cursor(conn, self.mailbox.id, cursor, now=now)
        return cursor

    # ----------------------------------------------------------------- after-processing

    async def apply_actions(self, folder: FolderState) -> int:
        """Apply the current ``mark_read`` / ``move:<folder>`` / ``delete`` setting to accepted
        messages whose action is due; returns how many were done."""
        action = self.mailbox.settings.after_processing or "none"
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
                self._actions_cancelled = True
            return 0
        async with self.database.connect() as conn:
            pending = await repo.accepted_actions(conn, self.mailbox.id, now=self.clock())
        if not pending:
            return 0
        current = [a for a in pending if (a.folder, a.uidvalidity) == (folder.folder, folder.uidvalidity)]
        stale = [a for a in pending if (a.folder, a.uidvalidity) != (folder.folder, folder.uidvalidity)]
        if stale:
            await self._actions_failed(
                stale, action, "the message's folder or UIDVALIDITY changed", final=True
            )
        if not current:
            return 0
        uids = sorted({a.uid for a in current})
        try:
            if action == "mark_read":
                await self.connector.mark_read(uids)
            elif action == "delete":
                await self.connector.delete(uids)
            elif action.startswith("move:"):
                await self.connector.move(uids, action.split(":", 1)[1])
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
            if not give_up:
                return
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
                            "folder": a.folder,
                            "uidvalidity": a.uidvalidity,
                            "uid": a.uid,
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


def _describe(exc: BaseException) -> str:
    if isinstance(exc, MailportError):
        return f"[{exc.code}] {exc.message}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
