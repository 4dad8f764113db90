"""The send worker end to end: the real store (SQLite and PostgreSQL), the aiosmtpd submission
bed with scripted replies (``tests/mailstack/smtp.py``), delivering into Dovecot."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from mailport.bootstrap import Services
from mailport.events import EventType
from mailport.sending.models import SendingSettings, SendRequest, SendState, SentCopyMode
from mailport.sending.worker import SendWorker, retry_policy
from mailport.store.tables import events
from tests.fixtures.api import TenantHandle
from tests.integration.sending.outbox_bed import Box, make_box, row
from tests.mailstack.dovecot import Dovecot
from tests.mailstack.smtp import SubmissionServer

NO_COPY = SendingSettings(sent_copy=SentCopyMode.NEVER)


def recipient() -> str:
    return f"r{uuid.uuid4().hex[:10]}@dyn.example.test"


def hello(to: str, **fields: Any) -> SendRequest:
    return SendRequest(to=(to,), subject="Hello", text="Hi there", **fields)


def worker_for(services: Services, **options: Any) -> SendWorker:
    options.setdefault("poll_seconds", 0.1)
    options.setdefault("claim_seconds", 5)
    options.setdefault("retry", retry_policy(first_seconds=0.2, max_attempts=5, give_up_hours=1))
    return SendWorker(services, **options)


@pytest.fixture
async def worker(services: Services) -> AsyncIterator[SendWorker]:
    running = worker_for(services)
    running.start()
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture
def bed(smtp: SubmissionServer) -> SubmissionServer:
    smtp.handler.reset()
    return smtp


@pytest.fixture
async def quiet_box(services: Services, tenant: TenantHandle, dovecot: Dovecot, bed: SubmissionServer) -> Box:
    """A mailbox that keeps no Sent copy (the Sent copy has its own tests)."""
    return await make_box(services, dovecot, bed.port, tenant_id=tenant.id, sending=NO_COPY)


async def settled(services: Services, box: Box, send_id: str, *, timeout: float = 20) -> Any:
    """The send once it is sent, failed or cancelled."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = await services.sending.get(box.tenant_id, box.mailbox_id, send_id)
        if found.state in (SendState.SENT, SendState.FAILED, SendState.CANCELLED):
            return found
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"send {send_id} still {found.state} after {timeout} s")
        await asyncio.sleep(0.05)


async def events_of(services: Services, send_id: str, type_: str) -> list[dict[str, Any]]:
    import json

    async with services.database.connect() as conn:
        rows = (await conn.execute(select(events).where(events.c.type == type_))).all()
    return [json.loads(r.payload) for r in rows if json.loads(r.payload).get("send_id") == send_id]


def arrived(bed: SubmissionServer, message_id: str) -> list[Any]:
    return [m for m in bed.handler.messages if f"<{message_id}>".encode() in m.data]


async def test_one_message_is_delivered_and_reported(
    services: Services, quiet_box: Box, bed: SubmissionServer, worker: SendWorker
) -> None:
    to = recipient()
    queued = (await services.sending.send(quiet_box.tenant_id, quiet_box.mailbox_id, hello(to))).send
    sent = await settled(services, quiet_box, queued.id)
    assert sent.state is SendState.SENT and sent.confirmed and sent.attempts == 1
    assert sent.smtp_reply is not None and sent.smtp_reply.startswith("250")
    assert sent.sent_at is not None and sent.last_error is None
    [got] = arrived(bed, queued.message_id)
    assert got.mail_from == quiet_box.email and got.rcpt_tos == [to]
    [event] = await events_of(services, queued.id, EventType.MESSAGE_SENT)
    assert event["message_id"] == queued.message_id and event["confirmed"] is True
    assert event["recipients"] == [to] and event["smtp_reply"] == sent.smtp_reply
    assert (await row(services, queued.id)).raw is None  # nothing needs the bytes any more


async def test_temporary_failure_then_success_sends_once(
    services: Services, quiet_box: Box, bed: SubmissionServer, worker: SendWorker
) -> None:
    bed.handler.script("DATA", "451 4.3.0 try again later")
    queued = (await services.sending.send(quiet_box.tenant_id, quiet_box.mailbox_id, hello(recipient()))).send
    sent = await settled(services, quiet_box, queued.id)
    assert sent.state is SendState.SENT and sent.attempts == 2
    assert len(arrived(bed, queued.message_id)) == 1
    assert len(await events_of(services, queued.id, EventType.MESSAGE_SENT)) == 1


async def test_retry_waits_for_next_attempt_with_the_servers_words(
    services: Services, quiet_box: Box, bed: SubmissionServer
) -> None:
    slow = worker_for(services, retry=retry_policy(first_seconds=3600, max_attempts=5, give_up_hours=24))
    bed.handler.script("RCPT", "450 4.2.0 mailbox busy")
    queued = (await services.sending.send(quiet_box.tenant_id, quiet_box.mailbox_id, hello(recipient()))).send
    slow.start()
    try:
        for _ in range(200):
            waiting = await services.sending.get(quiet_box.tenant_id, quiet_box.mailbox_id, queued.id)
            if waiting.last_error is not None:
                break
            await asyncio.sleep(0.05)
    finally:
        await slow.stop()
    assert waiting.state is SendState.QUEUED and waiting.attempts == 1
    assert waiting.last_error is not None and waiting.last_error.temporary
    assert waiting.last_error.smtp_code == 450 and "mailbox busy" in (waiting.last_error.server_said or "")
    assert waiting.next_attempt_at is not None
    assert waiting.next_attempt_at > datetime.now(UTC) + timedelta(minutes=40)  # 1 h, 20 % jitter
    assert not arrived(bed, queued.message_id)


async def test_permanent_failure_carries_the_servers_words(
    services: Services, quiet_box: Box, bed: SubmissionServer, worker: SendWorker
) -> None:
    bed.handler.script("DATA", "550 5.7.1 Message rejected by policy")
    queued = (await services.sending.send(quiet_box.tenant_id, quiet_box.mailbox_id, hello(recipient()))).send
    failed = await settled(services, quiet_box, queued.id)
    assert failed.state is SendState.FAILED and failed.attempts == 1
    assert failed.last_error is not None and not failed.last_error.temporary
    assert failed.last_error.smtp_code == 550
    [event] = await events_of(services, queued.id, EventType.MESSAGE_SEND_FAILED)
    assert event["error"]["smtp_code"] == 550 and "rejected by policy" in event["error"]["server_said"]
    assert event["attempts"] == 1 and event["message_id"] == queued.message_id
    assert not await events_of(services, queued.id, EventType.MESSAGE_SENT)
    assert (await row(services, queued.id)).raw is None


async def test_give_up_after_the_last_attempt(
    services: Services, quiet_box: Box, bed: SubmissionServer
) -> None:
    bed.handler.script("DATA", "421 4.3.2 shutting down", "451 4.3.0 later")
    short = worker_for(services, retry=retry_policy(first_seconds=0.1, max_attempts=2, give_up_hours=1))
    short.start()
    try:
        queued = (
            await services.sending.send(quiet_box.tenant_id, quiet_box.mailbox_id, hello(recipient()))
        ).send
        failed = await settled(services, quiet_box, queued.id)
    finally:
        await short.stop()
    assert failed.state is SendState.FAILED and failed.attempts == 2
    assert failed.last_error is not None and "gave up after 2 attempts" in failed.last_error.message
    [event] = await events_of(services, queued.id, EventType.MESSAGE_SEND_FAILED)
    assert event["error"]["smtp_code"] == 451
    assert not arrived(bed, queued.message_id)


async def test_the_same_idempotency_key_twice_sends_one_message(
    services: Services, quiet_box: Box, bed: SubmissionServer, worker: SendWorker
) -> None:
    request = hello(recipient())
    first = await services.sending.send(
        quiet_box.tenant_id, quiet_box.mailbox_id, request, idempotency_key="k-1"
    )
    await settled(services, quiet_box, first.send.id)
    again = await services.sending.send(
        quiet_box.tenant_id, quiet_box.mailbox_id, request, idempotency_key="k-1"
    )
    assert again.replayed and again.send.state is SendState.SENT
    await asyncio.sleep(0.5)
    assert len(arrived(bed, first.send.message_id)) == 1
    assert len(bed.handler.messages) == 1


async def test_scheduled_send_waits_for_its_time(
    services: Services, quiet_box: Box, bed: SubmissionServer
) -> None:
    offset = [timedelta(0)]
    clock: Callable[[], datetime] = lambda: datetime.now(UTC) + offset[0]  # noqa: E731
    later = worker_for(services, clock=clock)
    at = datetime.now(UTC) + timedelta(hours=1)
    queued = (
        await services.sending.send(quiet_box.tenant_id, quiet_box.mailbox_id, hello(recipient(), send_at=at))
    ).send
    later.start()
    try:
        await asyncio.sleep(0.5)
        assert (await row(services, queued.id)).state == "scheduled" and not bed.handler.messages
        offset[0] = timedelta(hours=1, seconds=1)
        sent = await settled(services, quiet_box, queued.id)
    finally:
        await later.stop()
    assert sent.state is SendState.SENT and len(arrived(bed, queued.message_id)) == 1


async def test_rate_limit_spreads_sends(
    services: Services, tenant: TenantHandle, dovecot: Dovecot, bed: SubmissionServer
) -> None:
    limited = await make_box(
        services,
        dovecot,
        bed.port,
        tenant_id=tenant.id,
        sending=SendingSettings(sent_copy=SentCopyMode.NEVER, rate_per_minute=2),
    )
    offset = [timedelta(0)]
    clock: Callable[[], datetime] = lambda: datetime.now(UTC) + offset[0]  # noqa: E731
    spread = worker_for(services, clock=clock)
    ids = [
        (await services.sending.send(tenant.id, limited.mailbox_id, hello(recipient()))).send.id
        for _ in range(3)
    ]
    spread.start()
    try:
        first, second = await settled(services, limited, ids[0]), await settled(services, limited, ids[1])
        await asyncio.sleep(0.5)
        third = await services.sending.get(tenant.id, limited.mailbox_id, ids[2])
        assert third.state is SendState.QUEUED and third.attempts == 0 and third.last_error is None
        assert third.next_attempt_at is not None
        assert third.next_attempt_at >= min(first.sent_at, second.sent_at) + timedelta(seconds=59)
        assert len(bed.handler.messages) == 2
        offset[0] = timedelta(seconds=61)  # the minute has passed
        spread.wake()
        done = await settled(services, limited, ids[2])
    finally:
        await spread.stop()
    assert done.state is SendState.SENT and len(bed.handler.messages) == 3


async def test_mailboxes_do_not_hold_each_other_up(
    services: Services, tenant: TenantHandle, dovecot: Dovecot, bed: SubmissionServer, worker: SendWorker
) -> None:
    refused = await make_box(services, dovecot, bed.port, tenant_id=tenant.id, sending=NO_COPY)
    fine = await make_box(services, dovecot, bed.port, tenant_id=tenant.id, sending=NO_COPY)
    bed.handler.refuse["nobody@dyn.example.test"] = "550 5.1.1 no such user"
    bad = (await services.sending.send(tenant.id, refused.mailbox_id, hello("nobody@dyn.example.test"))).send
    good = [
        (await services.sending.send(tenant.id, fine.mailbox_id, hello(recipient()))).send for _ in range(4)
    ]
    assert (await settled(services, refused, bad.id)).state is SendState.FAILED
    for send in good:
        assert (await settled(services, fine, send.id)).state is SendState.SENT
    assert not arrived(bed, bad.message_id)


async def test_one_mailbox_sends_in_the_order_queued(
    services: Services, quiet_box: Box, bed: SubmissionServer
) -> None:
    single = worker_for(services, connections=1)
    sends = [
        (await services.sending.send(quiet_box.tenant_id, quiet_box.mailbox_id, hello(recipient()))).send
        for _ in range(5)
    ]
    single.start()
    try:
        for send in sends:
            await settled(services, quiet_box, send.id)
    finally:
        await single.stop()
    order = [m.data for m in bed.handler.messages]
    positions = [next(i for i, d in enumerate(order) if f"<{s.message_id}>".encode() in d) for s in sends]
    assert positions == sorted(positions) and len(order) == 5


async def test_two_workers_never_send_one_message_twice(
    services: Services, quiet_box: Box, bed: SubmissionServer
) -> None:
    a, b = worker_for(services), worker_for(services)
    ids = [
        (await services.sending.send(quiet_box.tenant_id, quiet_box.mailbox_id, hello(recipient()))).send.id
        for _ in range(10)
    ]
    a.start()
    b.start()
    try:
        sent = [await settled(services, quiet_box, i) for i in ids]
    finally:
        await a.stop()
        await b.stop()
    assert all(s.state is SendState.SENT and s.attempts == 1 for s in sent)
    assert len(bed.handler.messages) == 10
    assert all(len(arrived(bed, s.message_id)) == 1 for s in sent)
