"""A send claim is a tenure (the owner *and* the attempt it claimed): a process whose claim ran
out and was taken over sends no final dot and records no outcome, even when it claimed the
row again meanwhile (SQLite and PostgreSQL; the real SMTP transport against the aiosmtpd
submission bed). Refusals are counted in ``mailport_fenced_writes_refused_total{what}``."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from mailport.bootstrap import Services
from mailport.clock import utc_now
from mailport.events import EventType
from mailport.mailboxes.models import Mailbox
from mailport.sending import repository as repo
from mailport.sending.models import (
    SendError,
    SendingSettings,
    SendRequest,
    SendState,
    SentCopyMode,
    SentCopyState,
)
from mailport.sending.transport import Accepted, Committing, Outgoing, Transport
from mailport.sending.worker import SendWorker, retry_policy
from mailport.store.tables import events
from tests.fixtures.api import TenantHandle
from tests.integration.fleet.fencing_bed import refused
from tests.integration.sending.outbox_bed import Box, make_box, row, settings  # noqa: F401 (fixture)
from tests.mailstack.dovecot import Dovecot
from tests.mailstack.smtp import SubmissionServer

A = "host-a:1:aaaa"  # the process paused past its claim
B = "host-b:2:bbbb"  # the process that takes over
CLAIM = timedelta(seconds=5)


@pytest.fixture
def bed(smtp: SubmissionServer) -> SubmissionServer:
    smtp.handler.reset()
    return smtp


@pytest.fixture
async def quiet_box(services: Services, tenant: TenantHandle, dovecot: Dovecot, bed: SubmissionServer) -> Box:
    return await make_box(
        services,
        dovecot,
        bed.port,
        tenant_id=tenant.id,
        sending=SendingSettings(sent_copy=SentCopyMode.NEVER),
    )


async def queue_one(services: Services, box: Box) -> Any:
    to = f"r{uuid.uuid4().hex[:10]}@dyn.example.test"
    request = SendRequest(to=(to,), subject="Fenced", text="once")
    return (await services.sending.send(box.tenant_id, box.mailbox_id, request)).send


def arrived(bed: SubmissionServer, message_id: str) -> list[Any]:
    return [m for m in bed.handler.messages if f"<{message_id}>".encode() in m.data]


async def sent_events(services: Services, send_id: str) -> list[Any]:
    async with services.database.connect() as conn:
        rows = (await conn.execute(select(events).where(events.c.type == EventType.MESSAGE_SENT))).all()
    return [r for r in rows if send_id in r.payload]


class Interposed:
    """The mailbox's real transport with a step run right before ``transmit`` (``before``) or
    right after the server accepted (``after``): where the other process takes over."""

    def __init__(
        self,
        real: Transport,
        *,
        before: Callable[[], Awaitable[None]] | None = None,
        after: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._real = real
        self._before = before
        self._after = after
        self.files_sent_copy = real.files_sent_copy

    async def transmit(self, message: Outgoing, *, committing: Committing) -> Accepted:
        if self._before is not None:
            await self._before()
        accepted = await self._real.transmit(message, committing=committing)
        if self._after is not None:
            await self._after()
        return accepted

    async def aclose(self) -> None:
        await self._real.aclose()


def worker(services: Services, **hooks: Callable[[], Awaitable[None]]) -> SendWorker:
    def transport(mailbox: Mailbox) -> Transport:
        return Interposed(services.transport(mailbox), **hooks)  # type: ignore[return-value]

    return SendWorker(
        services,
        owner=A,
        poll_seconds=0.1,
        claim_seconds=CLAIM.total_seconds(),
        retry=retry_policy(first_seconds=3600, max_attempts=5, give_up_hours=1),
        transport=transport,
    )


@pytest.fixture
async def running() -> AsyncIterator[list[SendWorker]]:
    started: list[SendWorker] = []
    yield started
    for w in started:
        await w.stop()


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 15) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met"
        await asyncio.sleep(0.05)


async def test_a_claim_taken_over_before_the_dot_sends_nothing(
    services: Services, quiet_box: Box, bed: SubmissionServer, running: list[SendWorker]
) -> None:
    async def b_takes_it() -> None:  # A's claim ran out (A was paused): B claims the row
        later = utc_now() + CLAIM * 2
        async with services.database.transaction() as conn:
            [taken] = await repo.claim(
                conn, quiet_box.mailbox_id, owner=B, now=later, until=later + CLAIM, limit=1
            )
        assert taken.message.attempts == 2

    counted = refused("send")
    w = worker(services, before=b_takes_it)
    running.append(w)
    queued = await queue_one(services, quiet_box)
    w.start()

    async def counted_once() -> bool:
        return refused("send") == counted + 1

    await until(counted_once)
    await w.idle(timeout=10)
    assert arrived(bed, queued.message_id) == []  # no final dot: the server has nothing
    stored = await row(services, queued.id)
    assert (stored.state, stored.claimed_by, stored.attempts) == (SendState.SENDING.value, B, 2)
    assert await sent_events(services, queued.id) == []


async def test_an_outcome_is_not_recorded_once_another_process_recorded_it(
    services: Services, quiet_box: Box, bed: SubmissionServer, running: list[SendWorker]
) -> None:
    async def b_recovers_it() -> None:  # A paused right after the dot: B's recovery records it
        later = utc_now() + CLAIM * 2
        async with services.events.transaction() as conn:
            [recovered] = await repo.unconfirmed(conn, now=later)
        assert recovered.confirmed is False

    counted = refused("send_result")
    w = worker(services, after=b_recovers_it)
    running.append(w)
    queued = await queue_one(services, quiet_box)
    w.start()

    async def counted_once() -> bool:
        return refused("send_result") == counted + 1

    await until(counted_once)
    await w.idle(timeout=10)
    assert len(arrived(bed, queued.message_id)) == 1
    stored = await row(services, queued.id)
    assert (stored.state, stored.confirmed, stored.smtp_reply) == (SendState.SENT.value, False, None)


async def test_a_stale_claim_of_the_same_process_is_refused(services: Services, quiet_box: Box) -> None:
    """A claims, is paused past its claim; B takes the row and gives it back (a temporary
    failure); A, running again, claims it in another lane. A's first claim, resuming, names the
    same owner: the attempt it claimed with tells it apart."""
    queued = await queue_one(services, quiet_box)
    t0 = utc_now()
    mailbox = quiet_box.mailbox_id
    error = SendError(code="send_failed", message="try later", temporary=True)
    async with services.database.transaction() as conn:
        [first] = await repo.claim(conn, mailbox, owner=A, now=t0, until=t0 + CLAIM, limit=1)
    t1 = t0 + CLAIM * 2
    async with services.database.transaction() as conn:
        [b] = await repo.claim(conn, mailbox, owner=B, now=t1, until=t1 + CLAIM, limit=1)
        assert await repo.retry_later(conn, b.tenure(B), error=error, at=t1, now=t1)
    async with services.database.transaction() as conn:
        [again] = await repo.claim(conn, mailbox, owner=A, now=t1, until=t1 + CLAIM, limit=1)
    assert (first.message.attempts, again.message.attempts) == (1, 3)
    stale, current = first.tenure(A), again.tenure(A)
    async with services.database.transaction() as conn:
        assert not await repo.committing(conn, stale, now=t1, until=t1 + CLAIM)
        assert not await repo.release(conn, stale, now=t1)
        assert not await repo.retry_later(conn, stale, error=error, at=t1, now=t1)
        assert await repo.mark_failed(conn, queued.id, tenure=stale, error=error, now=t1) is None
        assert await repo.committing(conn, current, now=t1, until=t1 + CLAIM)
        accepted = Accepted("250 2.0.0 Ok")
        assert await repo.mark_sent(conn, stale, accepted=accepted, now=t1, keep_raw=False) is None
        assert await repo.mark_unconfirmed(conn, stale, now=t1) is None
        sent = await repo.mark_sent(conn, current, accepted=accepted, now=t1, keep_raw=False)
    assert sent is not None and sent.state is SendState.SENT and sent.attempts == 3


async def test_after_send_steps_are_not_done_nor_recorded_once_the_claim_moved_on(
    services: Services, tenant: TenantHandle, dovecot: Dovecot, bed: SubmissionServer
) -> None:
    copying = SendingSettings(sent_copy=SentCopyMode.ALWAYS)
    box = await make_box(services, dovecot, bed.port, tenant_id=tenant.id, sending=copying)
    queued = await queue_one(services, box)
    t0 = utc_now()
    mailbox = box.mailbox_id
    async with services.database.transaction() as conn:
        [claimed] = await repo.claim(conn, mailbox, owner=A, now=t0, until=t0 + CLAIM, limit=1)
        assert await repo.committing(conn, claimed.tenure(A), now=t0, until=t0 + CLAIM)
        await repo.mark_sent(
            conn, claimed.tenure(A), accepted=Accepted("250 ok"), now=t0, keep_raw=True, keep_until=t0 + CLAIM
        )
    async with services.database.connect() as conn:
        assert await repo.still_claimed(conn, [queued.id], owner=A, now=t0) == {queued.id}
    t1 = t0 + CLAIM * 2  # A was paused past its after-send claim; B claims the step
    async with services.database.transaction() as conn:
        [step] = await repo.claim_after_send(conn, owner=B, now=t1, until=t1 + CLAIM, limit=10)
    assert step.message.id == queued.id
    async with services.database.transaction() as conn:
        assert await repo.still_claimed(conn, [queued.id], owner=A, now=t1) == set()
        done = await repo.after_send_done(
            conn, queued.id, owner=A, state=SentCopyState.STORED, ref="x", attempts=0, now=t1
        )
        assert not done
        assert not await repo.copy_retry(conn, queued.id, owner=A, attempts=1, at=t1, now=t1)
    stored = await row(services, queued.id)
    assert (stored.claimed_by, stored.sent_copy, stored.sent_copy_ref) == (B, "pending", None)
