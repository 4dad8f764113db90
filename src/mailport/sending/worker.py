"""The send worker: takes due rows of the outbound queue and sends them through their
mailbox's :class:`~mailport.sending.transport.Transport`, then files the Sent copy.

It runs in every process that runs background work (``mailport serve`` with its watchers,
``mailport worker``), several at once on one database. The rules (the states are drawn in
:mod:`mailport.sending.models`; docs/outbox.md says the same for users):

* **Claims.** A row is taken with one conditional ``UPDATE`` (``sending``, ``claimed_by``,
  ``claim_until``, one more attempt), so two processes never hold the same row; the claim is
  renewed while the message is on its way. A lane claims several rows at once
  (:data:`CLAIM_AHEAD`) and renews the ones still waiting; ``committing`` and ``sent`` of
  messages at the same point share one transaction (:class:`~mailport.sending.batching.Batched`).
  A ``sending`` row whose claim ran out (its process died before the end of DATA) is due again:
  at least once up to DATA.
* **The end of DATA.** The transport awaits ``committing`` just before the final dot; the row
  is committed as ``committing`` there. A ``committing`` row whose claim ran out becomes
  ``sent`` with ``confirmed = False`` and gets its ``message.sent``: never sent twice. When the
  claim was lost before the dot (another process took the row), ``committing`` raises and the
  transport never sends the dot. A claim is a tenure: each step names the owner *and* the
  attempt it claimed (:class:`~mailport.sending.repository.Tenure`), so a process paused past
  its claim (GC, SIGSTOP, a partition) neither sends the dot nor records an outcome once the
  row moved on, even when it claimed the row again meanwhile; such refusals are counted in
  ``mailport_fenced_writes_refused_total{what="send"|"send_result"|"sent_copy"}``.
* **Per mailbox.** One lane per mailbox in this process: up to ``connections`` messages in
  flight, taken oldest first, under the mailbox's rate limit (:mod:`mailport.sending.limits`;
  a limited mailbox's rows wait). One mailbox's failures never hold up another's.
* **Failures.** Temporary ones (4xx, lost connections, timeouts:
  :func:`~mailport.sending.smtp_transport.is_temporary_send_error`) go back to ``queued`` with an
  exponential backoff; permanent ones (5xx, refused sender, too large …), and a send that ran out
  of attempts or time, are ``failed`` with ``message.send_failed`` carrying the server's words.
* **After sending.** The Sent copy (its own retries, never holding up sending) and the deletion
  of a sent draft; then the bytes are dropped.
* **Waking.** :meth:`SendWorker.wake` (the process's :class:`SendService` calls it on every
  insert) looks at once; other processes' rows and due times are found by a poll every
  ``poll_seconds``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, Protocol

from mailport import leases
from mailport.clock import Clock, utc_now
from mailport.connectors.base import Connector, Feature
from mailport.errors import MailportError, NotFoundError, SendRefusedError, SMTPRejectedError
from mailport.events import EventType, NewEvent
from mailport.events import append as append_event
from mailport.events import append_many as append_events
from mailport.mailboxes.models import Mailbox
from mailport.metrics import FENCED_WRITES_REFUSED
from mailport.retry import RetryPolicy
from mailport.sending import limits
from mailport.sending import repository as repo
from mailport.sending.batching import Batched
from mailport.sending.models import OutboundMessage, SendError, SentCopyMode, SentCopyState
from mailport.sending.sent_copy import store_sent_copy
from mailport.sending.smtp_transport import is_temporary_send_error
from mailport.sending.transport import Accepted, Outgoing, Transport
from mailport.services import Services
from mailport.tasks import cancel_and_wait, poll, stop_if_cancelled

log = logging.getLogger(__name__)


class StoreCopy(Protocol):
    """Stores the Sent copy once (:func:`mailport.sending.sent_copy.store_sent_copy`)."""

    def __call__(
        self, connector: Connector, raw: bytes, message_id: str, *, search: bool = True
    ) -> Awaitable[str | None]: ...


COPY_ATTEMPTS = 6  # Sent copy tries (1 min, 2, 4, 8, 16 apart), then sent_copy = failed
COPY_POLICY = RetryPolicy(first_delay=60, multiplier=2, max_delay=1800, jitter=0.2)
AFTER_SEND_CONCURRENCY = 4  # batches of Sent copies (each over its own IMAP connection) at once
COPY_BATCH = 32  # Sent copies of one mailbox stored over one borrowed connection
RECOVERY_SECONDS = 1.0  # how often a worker looks for sends whose process died at the end of DATA
MAILBOX_CACHE_SECONDS = 5.0
CLAIM_AHEAD = 16  # a lane claims this many due rows at once (at least twice its connections)


def retry_policy(*, first_seconds: float, max_attempts: int, give_up_hours: float) -> RetryPolicy:
    """Temporary failures: ``first_seconds``, doubled per failure, at most an hour, 20 % jitter;
    at most ``max_attempts`` attempts and ``give_up_hours`` after the send was queued."""
    return RetryPolicy(
        first_delay=first_seconds,
        multiplier=2,
        max_delay=max(3600.0, first_seconds),
        jitter=0.2,
        max_attempts=max_attempts,
        give_up_after=give_up_hours * 3600,
    )


_CopyOutcome = tuple[SentCopyState | None, str | None, int]
"""A Sent copy's new state (None: failed, try again), its ref and its attempts."""


def _one_batch(rows: list[repo.AfterSend]) -> tuple[list[repo.AfterSend], list[repo.AfterSend]]:
    """Up to :data:`COPY_BATCH` rows of the first row's mailbox, and the rest."""
    mailbox_id = rows[0].message.mailbox_id
    batch: list[repo.AfterSend] = []
    rest: list[repo.AfterSend] = []
    for row in rows:
        (batch if row.message.mailbox_id == mailbox_id and len(batch) < COPY_BATCH else rest).append(row)
    return batch, rest


class _ClaimLost(Exception):
    """Another process took the row (this one's claim ran out): stop before the final dot."""


class SendWorker:
    """``start()`` / ``wake()`` / ``stop()``; :meth:`run_once` is one pass (tests)."""

    def __init__(
        self,
        services: Services,
        *,
        owner: str | None = None,
        wakeup: asyncio.Event | None = None,
        poll_seconds: float | None = None,
        claim_seconds: float | None = None,
        connections: int | None = None,
        retry: RetryPolicy | None = None,
        store_copy: StoreCopy = store_sent_copy,
        transport: Callable[[Mailbox], Transport] | None = None,
        clock: Clock = utc_now,
    ) -> None:
        settings = services.settings
        self.services = services
        self.owner = owner or leases.new_holder()
        self.wakeup = wakeup if wakeup is not None else services.send_wakeup
        self.poll_seconds = poll_seconds if poll_seconds is not None else settings.send_poll_seconds
        self.claim = timedelta(
            seconds=claim_seconds if claim_seconds is not None else settings.send_claim_seconds
        )
        self.connections = connections if connections is not None else settings.send_connections
        self.retry = retry or retry_policy(
            first_seconds=settings.send_retry_seconds,
            max_attempts=settings.send_max_attempts,
            give_up_hours=settings.send_give_up_hours,
        )
        self.store_copy = store_copy
        self._make_transport = transport or services.transport
        self.clock = clock
        self._transports: dict[str, tuple[datetime, Transport]] = {}
        self._lanes: dict[str, asyncio.Task[None]] = {}
        self._copier: asyncio.Task[None] | None = None
        self._committing: Batched[repo.Tenure, bool] = Batched(self._commit_many)
        self._record_sent = Batched(self._sent_many)
        self._handed: list[repo.AfterSend] = []  # sent rows whose after-send steps are this worker's
        self._copy_wake = asyncio.Event()
        self._copies_claimed_at = -RECOVERY_SECONDS  # the last look for due after-send steps
        self._recovered_at = -RECOVERY_SECONDS
        self._mailboxes: dict[str, tuple[float, Mailbox]] = {}
        self._task: asyncio.Task[None] | None = None

    # --- lifecycle

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._loop(), name="send-worker")

    def wake(self) -> None:
        self.wakeup.set()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        """Stop the loop and every lane (a send not yet at the end of DATA is given back),
        then close the transports."""
        if self._task is not None:
            await cancel_and_wait(self._task, timeout=10)
            self._task = None
        for task in [*self._lanes.values(), *([self._copier] if self._copier else [])]:
            await cancel_and_wait(task, timeout=10)
        self._lanes.clear()
        self._copier = None
        transports, self._transports = self._transports, {}
        for _, transport in transports.values():
            try:
                await transport.aclose()
            except Exception:
                log.warning("closing a transport failed", exc_info=True)

    async def _loop(self) -> None:
        await poll(self.run_once, self.wakeup, self.poll_seconds, "send worker")

    async def run_once(self) -> None:
        """Recover sends whose process died at the end of DATA, start a lane for every mailbox
        with due sends, and start the after-send steps when none are running."""
        now = self.clock()
        loop_time = asyncio.get_running_loop().time()
        if loop_time - self._recovered_at >= RECOVERY_SECONDS:
            self._recovered_at = loop_time
            async with self.services.events.transaction() as conn:
                for message in await repo.unconfirmed(conn, now=now):
                    log.warning(
                        "send %s: its process stopped at the end of DATA; recorded as sent, unconfirmed",
                        message.id,
                    )
                    await _sent_event(conn, message)
        async with self.services.database.connect() as conn:
            due = await repo.due_mailboxes(conn, now=now)
        for mailbox_id in due:
            if mailbox_id not in self._lanes or self._lanes[mailbox_id].done():
                self._lanes[mailbox_id] = asyncio.create_task(
                    self._lane(mailbox_id), name=f"send-lane-{mailbox_id}"
                )
        self._lanes = {k: t for k, t in self._lanes.items() if not t.done()}
        self._copies_claimed_at = -RECOVERY_SECONDS  # every pass looks for due after-send steps
        self._start_copier()

    def _start_copier(self) -> None:
        if self._copier is None or self._copier.done():
            self._copier = asyncio.create_task(self._after_sends(), name="send-after")

    def _hand_over(self, row: repo.AfterSend) -> None:
        """A row this worker just sent (its claim kept): its Sent copy starts without a claim."""
        self._handed.append(row)
        self._copy_wake.set()
        self._start_copier()

    async def _after_sends(self) -> None:
        """Sent copies and draft deletions until none is due: the rows this worker just sent
        and the due rows of the database (claimed about once a second), in batches of one
        mailbox, each batch over one borrowed IMAP connection, a few batches at once."""
        running: set[asyncio.Task[None]] = set()
        pending: list[repo.AfterSend] = []
        waiter: asyncio.Task[bool] | None = None
        try:
            while True:
                pending.extend(self._handed)
                self._handed.clear()
                self._copy_wake.clear()
                loop_time = asyncio.get_running_loop().time()
                if loop_time - self._copies_claimed_at >= RECOVERY_SECONDS:
                    self._copies_claimed_at = loop_time
                    now = self.clock()
                    async with self.services.database.transaction() as conn:
                        rows = await repo.claim_after_send(
                            conn, owner=self.owner, now=now, until=now + self.claim, limit=COPY_BATCH
                        )
                    pending.extend(rows)
                    if len(rows) == COPY_BATCH:
                        self._copies_claimed_at = -RECOVERY_SECONDS  # more are due: look again soon
                while pending and len(running) < AFTER_SEND_CONCURRENCY:
                    batch, pending = _one_batch(pending)
                    running.add(asyncio.create_task(self._after_send(batch), name="send-copies"))
                if not running and not pending and not self._handed:
                    # nothing awaited since the check: a new hand-over (or the next pass) restarts it
                    return
                if waiter is None or waiter.done():
                    waiter = asyncio.create_task(self._copy_wake.wait())
                done, _ = await asyncio.wait(
                    [*running, waiter], timeout=RECOVERY_SECONDS, return_when=asyncio.FIRST_COMPLETED
                )
                running -= done
        except Exception:
            stop_if_cancelled()
            log.exception("the after-send steps failed; the next pass starts them again")
        finally:
            if waiter is not None:
                waiter.cancel()
            for task in running:
                await cancel_and_wait(task, timeout=10)

    async def idle(self, timeout: float = 30.0) -> None:
        """Wait until this worker's lanes and after-send steps have finished (tests)."""
        pending = [*self._lanes.values(), *([self._copier] if self._copier else [])]
        if pending:
            await asyncio.wait(pending, timeout=timeout)

    # --- one mailbox

    async def _lane(self, mailbox_id: str) -> None:
        try:
            await self._run_lane(mailbox_id)
        except Exception:
            stop_if_cancelled()
            log.exception("send lane of mailbox %s failed; the next pass starts it again", mailbox_id)

    async def _run_lane(self, mailbox_id: str) -> None:
        mailbox = await self._mailbox(mailbox_id)
        if mailbox is None:
            return
        try:
            transport = await self._transport(mailbox)
        except MailportError as exc:  # e.g. its SMTP settings were removed
            await self._fail_all(mailbox, exc)
            return
        in_flight: set[asyncio.Task[asyncio.Task[None] | None]] = set()
        recording: set[asyncio.Task[None]] = set()  # accepted messages' sent records being written
        ahead: deque[repo.Claimed] = deque()  # claimed, waiting for a free connection (in order)
        claimed_at = 0.0
        ahead_limit = max(CLAIM_AHEAD, 2 * self.connections)
        try:
            while True:
                free = self.connections - len(in_flight)
                loop_time = asyncio.get_running_loop().time()
                if free > 0 and not ahead:
                    now = self.clock()
                    async with self.services.database.transaction() as conn:
                        allowed = await limits.allowance(conn, mailbox, now=now)
                        count = ahead_limit if allowed.count is None else min(ahead_limit, allowed.count)
                        claimed = await repo.claim(
                            conn, mailbox.id, owner=self.owner, now=now, until=now + self.claim, limit=count
                        )
                        if not claimed and not in_flight and allowed.wait_until is not None:
                            moved = await repo.defer(conn, mailbox.id, until=allowed.wait_until, now=now)
                            if moved:
                                log.info(
                                    "mailbox %s: rate limit reached; %d sends wait until %s",
                                    mailbox.id,
                                    moved,
                                    allowed.wait_until.isoformat(),
                                )
                    ahead.extend(claimed)
                    claimed_at = loop_time
                elif ahead and loop_time - claimed_at > self.claim.total_seconds() / 3:
                    now = self.clock()
                    async with self.services.database.transaction() as conn:
                        await repo.renew(
                            conn, [i.message.id for i in ahead], owner=self.owner, until=now + self.claim
                        )
                    claimed_at = loop_time
                while free > 0 and ahead:
                    item = ahead.popleft()
                    free -= 1
                    in_flight.add(
                        asyncio.create_task(
                            self._send(mailbox, transport, item), name=f"send-{item.message.id}"
                        )
                    )
                if not in_flight:
                    if recording:
                        await asyncio.wait(recording)
                    return
                done, in_flight = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if not task.cancelled() and task.exception() is not None:
                        log.error("%s failed", task.get_name(), exc_info=task.exception())
                    elif not task.cancelled() and (sent := task.result()) is not None:
                        recording.add(sent)
                        sent.add_done_callback(recording.discard)
        finally:
            for task in in_flight:
                await cancel_and_wait(task, timeout=10)
            if recording:  # accepted by the server: let the records finish
                await asyncio.wait(recording, timeout=10)
            for item in ahead:  # never started: given back at once (the attempt is not counted)
                await self._release(item.tenure(self.owner))

    async def _mailbox(self, mailbox_id: str) -> Mailbox | None:
        async with self.services.database.connect() as conn:
            tenant_id = await repo.tenant_of(conn, mailbox_id)
        if tenant_id is None:
            return None
        try:
            return await self.services.mailboxes.get(tenant_id, mailbox_id)
        except NotFoundError:
            return None

    async def _recent_mailbox(self, mailbox_id: str) -> Mailbox | None:
        """The mailbox as read at most a few seconds ago (the after-send steps of a burst)."""
        now = asyncio.get_running_loop().time()
        kept = self._mailboxes.get(mailbox_id)
        if kept is not None and now - kept[0] < MAILBOX_CACHE_SECONDS:
            return kept[1]
        mailbox = await self._mailbox(mailbox_id)
        if mailbox is None:
            self._mailboxes.pop(mailbox_id, None)
        else:
            self._mailboxes[mailbox_id] = (now, mailbox)
        return mailbox

    async def _transport(self, mailbox: Mailbox) -> Transport:
        """The mailbox's transport, kept between passes; built again when the mailbox changed."""
        kept = self._transports.get(mailbox.id)
        if kept is not None and kept[0] == mailbox.updated_at:
            return kept[1]
        transport = self._make_transport(mailbox)
        self._transports[mailbox.id] = (mailbox.updated_at, transport)
        if kept is not None:
            with contextlib.suppress(Exception):
                await kept[1].aclose()
        return transport

    async def _fail_all(self, mailbox: Mailbox, exc: MailportError) -> None:
        error = send_error(exc, temporary=False)
        now = self.clock()
        async with self.services.events.transaction() as conn:
            claimed = await repo.claim(
                conn, mailbox.id, owner=self.owner, now=now, until=now + self.claim, limit=100
            )
            for item in claimed:
                failed = await repo.mark_failed(
                    conn, item.message.id, tenure=item.tenure(self.owner), error=error, now=now
                )
                if failed is not None:
                    await _failed_event(conn, failed, error)

    # --- one message

    async def _send(
        self, mailbox: Mailbox, transport: Transport, item: repo.Claimed
    ) -> asyncio.Task[None] | None:
        message = item.message
        if message.attempts > 1 and self.retry.exhausted(message.attempts - 1, elapsed=self._age(message)):
            # claimed again after crashes (or after the last retry was due): no more tries
            await self._fail(item.tenure(self.owner), message, message.last_error or _gave_up(message))
            return None
        committed = False
        tenure = item.tenure(self.owner)

        async def committing() -> None:
            nonlocal committed
            if not await self._committing(tenure):
                FENCED_WRITES_REFUSED.labels(what="send").inc()
                raise _ClaimLost(message.id)
            committed = True

        renewer = asyncio.create_task(self._renew(message.id), name=f"send-renew-{message.id}")
        try:
            outgoing = Outgoing(
                raw=item.raw,
                sender=message.sender,
                recipients=message.recipients,
                eight_bit=item.eight_bit,
                smtputf8=item.smtputf8,
            )
            accepted = await transport.transmit(outgoing, committing=committing)
        except asyncio.CancelledError:
            if not committed:  # stopping: give the row back at once (the attempt is not counted)
                await asyncio.shield(self._release(tenure))
            raise
        except _ClaimLost:
            log.warning(
                "send %s: the claim was lost before the end of DATA; another process has it", message.id
            )
            return None
        except Exception as exc:
            await self._attempt_failed(tenure, message, exc, committed=committed)
            return None
        finally:
            renewer.cancel()
        # recorded apart: the lane starts its next message on the freed connection meanwhile
        return asyncio.create_task(self._sent(item, accepted), name=f"send-sent-{message.id}")

    async def _renew(self, send_id: str) -> None:
        interval = max(0.5, self.claim.total_seconds() / 3)
        while True:
            await asyncio.sleep(interval)
            try:
                now = self.clock()
                async with self.services.database.transaction() as conn:
                    await repo.renew(conn, [send_id], owner=self.owner, until=now + self.claim)
            except Exception:
                stop_if_cancelled()
                log.warning("send %s: renewing the claim failed", send_id, exc_info=True)

    async def _release(self, tenure: repo.Tenure) -> None:
        try:
            async with self.services.database.transaction() as conn:
                await repo.release(conn, tenure, now=self.clock())
        except Exception:
            log.warning("send %s: could not give the claim back; it runs out by itself", tenure.send_id)

    async def _commit_many(self, tenures: list[repo.Tenure]) -> list[bool]:
        """``committing`` for every message now at its final dot, in one transaction (group
        commit); False where the claim was lost."""
        now = self.clock()
        async with self.services.database.transaction() as conn:
            moved = await repo.committing_many(conn, tenures, now=now, until=now + self.claim)
        return [t.send_id in moved for t in tenures]

    async def _sent(self, item: repo.Claimed, accepted: Accepted) -> None:
        message = item.message
        sent = await self._record_sent((item, accepted))
        if sent is None:
            FENCED_WRITES_REFUSED.labels(what="send_result").inc()
            log.warning(
                "send %s: accepted (%s) after another process recorded it", message.id, accepted.reply
            )
            return
        log.info("send %s: accepted: %s", message.id, accepted.reply)
        if message.sent_copy is SentCopyState.PENDING or item.draft_ref is not None:
            self._hand_over(
                repo.AfterSend(
                    message=sent,
                    raw=item.raw if message.sent_copy is SentCopyState.PENDING else None,
                    draft_ref=item.draft_ref,
                    sent_copy_attempts=0,
                    search=False,
                )
            )

    async def _sent_many(self, done: list[tuple[repo.Claimed, Accepted]]) -> list[OutboundMessage | None]:
        """``sent`` and ``message.sent`` for every message the server just accepted, in one
        transaction. A row with after-send steps stays claimed: this worker does them at once."""
        now = self.clock()
        found: list[OutboundMessage | None] = []
        async with self.services.events.transaction() as conn:
            for item, accepted in done:
                keep_raw = item.message.sent_copy is SentCopyState.PENDING
                found.append(
                    await repo.mark_sent(
                        conn,
                        item.tenure(self.owner),
                        accepted=accepted,
                        now=now,
                        keep_raw=keep_raw,
                        keep_until=now + self.claim if keep_raw or item.draft_ref is not None else None,
                    )
                )
            await append_events(conn, [_sent_new_event(sent) for sent in found if sent is not None])
        return found

    async def _attempt_failed(
        self, tenure: repo.Tenure, message: OutboundMessage, exc: Exception, *, committed: bool
    ) -> None:
        # not a mail error (the database, a bug): retried like a lost connection, within the bounds
        temporary = is_temporary_send_error(exc) or not isinstance(exc, MailportError)
        error = send_error(exc, temporary=temporary)
        now = self.clock()
        refused = isinstance(exc, SendRefusedError) or (isinstance(exc, SMTPRejectedError) and exc.smtp_code)
        if committed and not refused:
            # the final dot (a mail API's send request) was sent and no reply came: the server
            # may have the message
            async with self.services.events.transaction() as conn:
                sent = await repo.mark_unconfirmed(conn, tenure, now=now)
                if sent is not None:
                    await _sent_event(conn, sent)
            if sent is None:
                FENCED_WRITES_REFUSED.labels(what="send_result").inc()
            log.warning(
                "send %s: no answer after the end of DATA (%s); sent, unconfirmed", message.id, error.code
            )
            return
        if temporary:
            at = self.retry.next_attempt(message.attempts, window_started=_due_since(message), now=now)
            if at is not None:
                async with self.services.database.transaction() as conn:
                    kept = await repo.retry_later(conn, tenure, error=error, at=at, now=now)
                if not kept:
                    FENCED_WRITES_REFUSED.labels(what="send_result").inc()
                log.info(
                    "send %s: attempt %d failed (%s); next at %s",
                    message.id,
                    message.attempts,
                    error.message,
                    at,
                )
                return
            error = SendError(
                code=error.code,
                message=f"gave up after {message.attempts} attempts: {error.message}",
                smtp_code=error.smtp_code,
                server_said=error.server_said,
                temporary=False,
            )
        await self._fail(tenure, message, error)

    async def _fail(self, tenure: repo.Tenure, message: OutboundMessage, error: SendError) -> None:
        async with self.services.events.transaction() as conn:
            failed = await repo.mark_failed(conn, message.id, tenure=tenure, error=error, now=self.clock())
            if failed is not None:
                await _failed_event(conn, failed, error)
        if failed is None:
            FENCED_WRITES_REFUSED.labels(what="send_result").inc()
            return
        log.info("send %s: failed: %s", message.id, error.message)

    def _age(self, message: OutboundMessage) -> float:
        return (self.clock() - _due_since(message)).total_seconds()

    # --- after sending

    async def _after_send(self, rows: list[repo.AfterSend]) -> None:
        try:
            await self._copies_and_drafts(rows)
        except Exception:
            stop_if_cancelled()
            log.exception("sends %s: the after-send step failed", ", ".join(r.message.id for r in rows))

    async def _copies_and_drafts(self, rows: list[repo.AfterSend]) -> None:
        """One mailbox's rows: their Sent copies over one connection, then one transaction."""
        mailbox = await self._recent_mailbox(rows[0].message.mailbox_id)
        if mailbox is None:
            return
        rows = await self._still_mine(rows)
        if not rows:
            return
        outcomes = [await self._copy_plan(mailbox, row) for row in rows]
        to_store = [i for i, (state, _, _) in enumerate(outcomes) if state is None]
        if to_store:
            try:
                async with self.services.mail.session(mailbox.tenant_id, mailbox.id, Feature.FOLDERS) as conn:
                    for i in to_store:
                        outcomes[i] = await self._store_one(conn, mailbox, rows[i])
            except Exception as exc:  # no connection (or it broke): every copy not yet stored
                stop_if_cancelled()
                for i in to_store:
                    if outcomes[i][0] is None:
                        outcomes[i] = self._copy_failed(rows[i], exc)
        for row in rows:
            if row.draft_ref:
                try:
                    await self.services.mail.delete(
                        mailbox.tenant_id, mailbox.id, [row.draft_ref], permanent=True
                    )
                except Exception as exc:
                    stop_if_cancelled()
                    log.warning(
                        "send %s: the sent draft could not be deleted (%s)", row.message.id, _name(exc)
                    )
        now = self.clock()
        async with self.services.database.transaction() as conn:
            for row, (state, ref, attempts) in zip(rows, outcomes, strict=True):
                if state is None:  # the copy failed: again later
                    at = now + timedelta(seconds=COPY_POLICY.delay(attempts))
                    recorded = await repo.copy_retry(
                        conn, row.message.id, owner=self.owner, attempts=attempts, at=at, now=now
                    )
                    log.info("send %s: the Sent copy failed; again at %s", row.message.id, at)
                else:
                    recorded = await repo.after_send_done(
                        conn,
                        row.message.id,
                        owner=self.owner,
                        state=state,
                        ref=ref,
                        attempts=attempts,
                        now=now,
                    )
                if not recorded:
                    FENCED_WRITES_REFUSED.labels(what="sent_copy").inc()
                    log.warning(
                        "send %s: the after-send claim moved on; outcome not recorded", row.message.id
                    )

    async def _still_mine(self, rows: list[repo.AfterSend]) -> list[repo.AfterSend]:
        """The rows whose after-send claim is still this worker's, asked right before the Sent
        copies are stored and drafts deleted (no rollback undoes those): a row whose claim ran
        out while this process was paused may be another worker's already."""
        async with self.services.database.connect() as conn:
            mine = await repo.still_claimed(
                conn, [r.message.id for r in rows], owner=self.owner, now=self.clock()
            )
        for row in rows:
            if row.message.id not in mine:
                FENCED_WRITES_REFUSED.labels(what="sent_copy").inc()
                log.warning("send %s: the after-send claim moved on; another worker files it", row.message.id)
        return [r for r in rows if r.message.id in mine]

    async def _copy_plan(self, mailbox: Mailbox, row: repo.AfterSend) -> _CopyOutcome:
        """What to do with a row's copy: its final state when nothing is to store (state None:
        store it)."""
        message = row.message
        state, ref, attempts = message.sent_copy, message.sent_copy_ref, row.sent_copy_attempts
        if state is not SentCopyState.PENDING:
            return state, ref, attempts
        mode = mailbox.settings.sending.sent_copy
        if mode is SentCopyMode.NEVER or (mode is SentCopyMode.AUTO and await self._files_copy(mailbox)):
            return SentCopyState.SKIPPED, ref, attempts
        if row.raw is None:
            return SentCopyState.FAILED, ref, attempts
        return None, ref, attempts

    async def _store_one(self, conn: Connector, mailbox: Mailbox, row: repo.AfterSend) -> _CopyOutcome:
        message = row.message
        assert row.raw is not None
        # no search only on the first try right after sending (nothing can have stored it yet),
        # and never where the provider may file copies itself (``auto``)
        search = row.search or mailbox.settings.sending.sent_copy is not SentCopyMode.ALWAYS
        try:
            ref = await self.store_copy(conn, row.raw, message.message_id, search=search)
        except Exception as exc:
            stop_if_cancelled()
            return self._copy_failed(row, exc)
        return SentCopyState.STORED, ref, row.sent_copy_attempts

    def _copy_failed(self, row: repo.AfterSend, exc: BaseException) -> _CopyOutcome:
        attempts = row.sent_copy_attempts + 1
        if attempts < COPY_ATTEMPTS:
            log.info("send %s: the Sent copy failed (%s)", row.message.id, _name(exc))
            return None, row.message.sent_copy_ref, attempts
        log.warning(
            "send %s: the Sent copy failed %d times (%s); given up", row.message.id, attempts, _name(exc)
        )
        return SentCopyState.FAILED, row.message.sent_copy_ref, attempts

    async def _files_copy(self, mailbox: Mailbox) -> bool:
        try:
            return (await self._transport(mailbox)).files_sent_copy
        except MailportError:
            return False


# --- errors and events -----------------------------------------------------------------------


def send_error(exc: BaseException, *, temporary: bool) -> SendError:
    """What the outbox and ``message.send_failed`` say about a failure: our code, the SMTP
    reply code and the server's own words."""
    if isinstance(exc, MailportError):
        return SendError(
            code=exc.code,
            message=exc.message,
            smtp_code=getattr(exc, "smtp_code", None),
            server_said=exc.server_said,
            temporary=temporary,
        )
    return SendError(code="send_failed", message=_name(exc), temporary=temporary)


def _due_since(message: OutboundMessage) -> datetime:
    """Where a send's time to give up starts: when it was due (a scheduled one at send_at)."""
    return message.send_at or message.created_at


def _gave_up(message: OutboundMessage) -> SendError:
    return SendError(code="send_failed", message=f"gave up after {message.attempts - 1} attempts")


def _name(exc: BaseException) -> str:
    return exc.message if isinstance(exc, MailportError) else type(exc).__name__


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


async def _sent_event(conn: Any, message: OutboundMessage) -> None:
    await append_events(conn, [_sent_new_event(message)])


def _sent_new_event(message: OutboundMessage) -> NewEvent:
    return NewEvent(
        tenant_id=message.tenant_id,
        mailbox_id=message.mailbox_id,
        type=EventType.MESSAGE_SENT,
        payload={
            "send_id": message.id,
            "message_id": message.message_id,
            "from": message.sender,
            "recipients": list(message.recipients),
            "refused": message.refused,
            "smtp_reply": message.smtp_reply,
            "confirmed": message.confirmed,
            "subject": message.subject,
            "in_reply_to": message.in_reply_to,
            "sent_at": _iso(message.sent_at),
        },
        idempotency_key=f"send:{message.id}:sent",
    )


async def _failed_event(conn: Any, message: OutboundMessage, error: SendError) -> None:
    await append_event(
        conn,
        tenant_id=message.tenant_id,
        mailbox_id=message.mailbox_id,
        type=EventType.MESSAGE_SEND_FAILED,
        payload={
            "send_id": message.id,
            "message_id": message.message_id,
            "from": message.sender,
            "recipients": list(message.recipients),
            "subject": message.subject,
            "error": error.to_json(),
            "attempts": message.attempts,
        },
        idempotency_key=f"send:{message.id}:failed",
    )


__all__ = ["SendWorker", "StoreCopy", "retry_policy", "send_error", "store_sent_copy"]
