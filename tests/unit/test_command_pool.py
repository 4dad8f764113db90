"""The command pool over the fake connector: a bound per mailbox, FIFO waiting with a deadline
(503 ``mailbox_busy`` with ``retry_after``), idle connections reaped and checked, failed ones
discarded, fresh connections after the credentials changed, "too many connections" shrinking
the pool and regrowing it, provider caps, metrics."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from mailport import metrics
from mailport.connectors.base import Connector
from mailport.crypto import Secret
from mailport.errors import (
    CommandError,
    ConnectionLostError,
    MailboxBusyError,
    NotFoundError,
    TooManyConnectionsError,
)
from mailport.mailboxes.models import (
    AuthMethod,
    Health,
    Mailbox,
    OAuthGrant,
    ProcessingSettings,
    Security,
    ServerSettings,
)
from mailport.mailboxes.pool import CHECK_AFTER, CommandPool
from tests.connectors.fake import FakeConnector, FakeMail


def make_mailbox(mailbox_id: str = "mbx_1", **changes: object) -> Mailbox:
    now = datetime.now(UTC)
    mailbox = Mailbox(
        id=mailbox_id,
        tenant_id="ten_1",
        email=f"{mailbox_id}@example.test",
        auth_method=AuthMethod.PASSWORD,
        imap=ServerSettings("imap.example.test", 993, Security.SSL),
        smtp=None,
        label=None,
        purpose=None,
        provider_id=None,
        password=Secret("pw"),
        oauth=None,
        token_version=0,
        settings=ProcessingSettings(),
        health=Health(),
        created_at=now,
        updated_at=now,
        connector="fake",
    )
    return dataclasses.replace(mailbox, **changes)  # type: ignore[arg-type]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Bed:
    """A pool over fake remote mailboxes that records every connector it made."""

    def __init__(self, **options: object) -> None:
        self.remote = FakeMail()
        self.made: list[FakeConnector] = []
        self.clock = Clock()
        self.pool = CommandPool(self.connect, clock=self.clock, **options)  # type: ignore[arg-type]

    def connect(self, mailbox: Mailbox) -> Connector:
        connector = FakeConnector(self.remote)
        self.made.append(connector)
        return connector

    @property
    def open(self) -> int:
        return sum(1 for c in self.made if c.connected)


@pytest.fixture
async def bed() -> AsyncIterator[Bed]:
    made = Bed(size=2, wait=0.3, idle_timeout=60.0)
    yield made
    await made.pool.aclose()


async def settle() -> None:
    """Let the pool's background closes run."""
    for _ in range(5):
        await asyncio.sleep(0)


class Holder:
    """Borrows a connection in a task and keeps it until released."""

    def __init__(self, pool: CommandPool, mailbox: Mailbox, order: list[int] | None = None, n: int = 0):
        self.got: asyncio.Future[Connector] = asyncio.get_running_loop().create_future()
        self.done = asyncio.Event()
        self.task = asyncio.create_task(self._run(pool, mailbox, order, n))

    async def _run(self, pool: CommandPool, mailbox: Mailbox, order: list[int] | None, n: int) -> None:
        async with pool.borrow(mailbox) as connector:
            if order is not None:
                order.append(n)
            self.got.set_result(connector)
            await self.done.wait()

    async def release(self) -> None:
        self.done.set()
        await self.task


async def test_at_most_size_connections_and_they_are_reused(bed: Bed) -> None:
    mailbox = make_mailbox()
    first, second = Holder(bed.pool, mailbox), Holder(bed.pool, mailbox)
    a, b = await first.got, await second.got
    assert a is not b and a.is_connected and b.is_connected
    third = Holder(bed.pool, mailbox)
    await asyncio.sleep(0.05)
    assert not third.got.done() and bed.pool.sizes(mailbox.id)["waiting"] == 1
    await first.release()
    assert await third.got is a  # handed over, not a third connection
    await second.release()
    await third.release()
    assert len(bed.made) == 2 and bed.pool.sizes(mailbox.id) | {} == {
        "idle": 2,
        "in_use": 0,
        "connecting": 0,
        "waiting": 0,
        "limit": 2,
    }
    # another mailbox has its own bound
    other = make_mailbox("mbx_2")
    async with bed.pool.borrow(other) as connector:
        assert connector not in (a, b)


async def test_waiters_are_served_in_arrival_order(bed: Bed) -> None:
    pool = CommandPool(bed.connect, size=1, wait=5.0)
    mailbox = make_mailbox()
    try:
        order: list[int] = []
        holder = Holder(pool, mailbox, order, 0)
        await holder.got
        waiters = []
        for n in range(1, 8):
            waiters.append(Holder(pool, mailbox, order, n))
            await asyncio.sleep(0.01)  # each is queued before the next arrives
        assert pool.sizes(mailbox.id)["waiting"] == 7
        await holder.release()
        for waiter in waiters:
            await waiter.got
            await waiter.release()
        assert order == list(range(8)) and len(bed.made) == 1
    finally:
        await pool.aclose()


async def test_the_deadline_answers_mailbox_busy_with_retry_after(bed: Bed) -> None:
    mailbox = make_mailbox()
    holders = [Holder(bed.pool, mailbox), Holder(bed.pool, mailbox)]
    for holder in holders:
        await holder.got
    refused_before = _sample_value("mailport_command_busy_total")
    started = asyncio.get_running_loop().time()
    with pytest.raises(MailboxBusyError) as caught:
        async with bed.pool.borrow(mailbox):
            pytest.fail("lent a third connection")
    waited = asyncio.get_running_loop().time() - started
    assert waited >= 0.25
    error = caught.value
    assert error.code == "mailbox_busy" and error.http_status == 503
    assert error.details["retry_after"] >= 1 and "busy" in error.message
    assert _sample_value("mailport_command_busy_total") == refused_before + 1
    assert bed.pool.sizes(mailbox.id)["waiting"] == 0  # it left the queue
    for holder in holders:
        await holder.release()
    async with bed.pool.borrow(mailbox):  # and the pool still lends
        pass


async def test_a_cancelled_waiter_leaves_the_queue_without_losing_a_connection(bed: Bed) -> None:
    mailbox = make_mailbox()
    holders = [Holder(bed.pool, mailbox), Holder(bed.pool, mailbox)]
    for holder in holders:
        await holder.got
    waiter = Holder(bed.pool, mailbox)
    await asyncio.sleep(0.02)
    waiter.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter.task
    for holder in holders:
        await holder.release()
    assert bed.pool.sizes(mailbox.id) == {"idle": 2, "in_use": 0, "connecting": 0, "waiting": 0, "limit": 2}


async def test_idle_connections_are_reaped(bed: Bed) -> None:
    mailbox = make_mailbox()
    async with bed.pool.borrow(mailbox) as first:
        pass
    bed.clock.now += 30
    assert bed.pool.reap() == 0 and first.is_connected
    bed.clock.now += 31
    assert bed.pool.reap() == 1
    await settle()
    assert not first.is_connected and bed.open == 0
    assert bed.pool.sizes(mailbox.id)["idle"] == 0
    async with bed.pool.borrow(mailbox) as second:
        assert second is not first and second.is_connected


async def test_the_reaper_runs_by_itself() -> None:
    made = Bed(size=2, wait=1.0, idle_timeout=0.2)
    made.pool.clock = asyncio.get_running_loop().time  # real time for the reaper task
    try:
        async with made.pool.borrow(make_mailbox()) as connector:
            pass
        for _ in range(40):
            if not connector.is_connected:
                break
            await asyncio.sleep(0.05)
        assert not connector.is_connected
    finally:
        await made.pool.aclose()


async def test_a_connection_idle_for_a_while_is_checked_before_reuse(bed: Bed) -> None:
    mailbox = make_mailbox()
    async with bed.pool.borrow(mailbox) as first:
        pass
    async with bed.pool.borrow(mailbox) as again:  # just used: no round trip
        assert again is first and bed.remote.pings == 0
    bed.clock.now += CHECK_AFTER + 1
    async with bed.pool.borrow(mailbox) as checked:
        assert checked is first and bed.remote.pings == 1
    bed.clock.now += CHECK_AFTER + 1
    bed.remote.fail_next("ping", ConnectionLostError("gone"))
    async with bed.pool.borrow(mailbox) as replaced:
        assert replaced is not first and replaced.is_connected
    assert bed.remote.pings == 2 and len(bed.made) == 2


@pytest.mark.parametrize(
    "error",
    [ConnectionLostError("dropped"), TimeoutError(), asyncio.CancelledError(), RuntimeError("bug")],
    ids=["connection_lost", "timeout", "cancelled", "bug"],
)
async def test_a_connection_that_failed_is_discarded(bed: Bed, error: BaseException) -> None:
    mailbox = make_mailbox()
    with pytest.raises(type(error)):
        async with bed.pool.borrow(mailbox) as failed:
            raise error
    await settle()
    assert not failed.is_connected and bed.pool.sizes(mailbox.id)["idle"] == 0
    async with bed.pool.borrow(mailbox) as fresh:
        assert fresh is not failed


@pytest.mark.parametrize(
    "error", [CommandError("NO no such folder"), NotFoundError("gone")], ids=["command", "not_found"]
)
async def test_a_refused_command_keeps_the_connection(bed: Bed, error: Exception) -> None:
    mailbox = make_mailbox()
    with pytest.raises(type(error)):
        async with bed.pool.borrow(mailbox) as used:
            raise error
    async with bed.pool.borrow(mailbox) as again:
        assert again is used


async def test_a_connection_the_connector_closed_is_not_lent_again(bed: Bed) -> None:
    mailbox = make_mailbox()
    async with bed.pool.borrow(mailbox) as closed:
        await closed.disconnect()  # e.g. the IMAP client closed a desynced session
    async with bed.pool.borrow(mailbox) as fresh:
        assert fresh is not closed


async def test_changed_credentials_get_fresh_connections(bed: Bed) -> None:
    mailbox = make_mailbox()
    holder = Holder(bed.pool, mailbox)
    in_use = await holder.got
    async with bed.pool.borrow(mailbox) as idle:
        pass
    # what does not touch the connection keeps it
    renamed = dataclasses.replace(mailbox, label="renamed", settings=ProcessingSettings(folder="Work"))
    async with bed.pool.borrow(renamed) as same:
        assert same is idle
    changed = dataclasses.replace(mailbox, password=Secret("new-password"))
    async with bed.pool.borrow(changed) as fresh:
        assert fresh not in (idle, in_use)
    await settle()
    assert not idle.is_connected
    await holder.release()  # the one lent before the change is closed when it comes back
    await settle()
    assert not in_use.is_connected and bed.pool.sizes(mailbox.id)["idle"] == 1
    moved = dataclasses.replace(changed, imap=ServerSettings("imap2.example.test", 993, Security.SSL))
    async with bed.pool.borrow(moved) as elsewhere:
        assert elsewhere is not fresh


async def test_too_many_connections_shrinks_the_pool_and_the_request_waits(bed: Bed) -> None:
    pool = CommandPool(bed.connect, size=3, wait=5.0, regrow_after=100.0, clock=bed.clock)
    mailbox = make_mailbox()
    try:
        first = Holder(pool, mailbox)
        held = await first.got
        shrinks = _sample_value("mailport_command_pool_shrinks_total")
        bed.remote.fail_next("connect", TooManyConnectionsError("too many", server_said="NO [LIMIT]"))
        second = Holder(pool, mailbox)
        await asyncio.sleep(0.05)
        assert not second.got.done()  # refused by the server, it waits for the open one
        assert pool.sizes(mailbox.id)["limit"] == 1 and pool.sizes(mailbox.id)["waiting"] == 1
        assert _sample_value("mailport_command_pool_shrinks_total") == shrinks + 1
        await first.release()
        assert await second.got is held
        await second.release()
        # quiet for a while: one more connection is tried, then the next
        bed.clock.now += 101
        holders = [Holder(pool, mailbox), Holder(pool, mailbox)]
        assert {await h.got for h in holders} >= {held} and pool.sizes(mailbox.id)["limit"] == 2
        for holder in holders:
            await holder.release()
        bed.clock.now += 101
        async with pool.borrow(mailbox):
            assert pool.sizes(mailbox.id)["limit"] == 3
    finally:
        await pool.aclose()


async def test_too_many_connections_with_none_open_is_refused_with_retry_after(bed: Bed) -> None:
    mailbox = make_mailbox()
    bed.remote.fail_next("connect", TooManyConnectionsError("too many", server_said="NO [ALERT] Too many"))
    with pytest.raises(TooManyConnectionsError) as caught:
        async with bed.pool.borrow(mailbox):
            pytest.fail("lent a connection the server refused")
    assert caught.value.http_status == 503 and caught.value.details["retry_after"] >= 1
    assert caught.value.server_said == "NO [ALERT] Too many"
    assert bed.pool.sizes(mailbox.id)["limit"] == 1
    async with bed.pool.borrow(mailbox) as connector:  # the next request may try again
        assert connector.is_connected


async def test_a_failed_connect_lets_the_next_in_line_try(bed: Bed) -> None:
    pool = CommandPool(bed.connect, size=1, wait=2.0)
    mailbox = make_mailbox()
    try:
        bed.remote.fail_next("connect", ConnectionLostError("refused"))
        first = asyncio.create_task(_borrow_once(pool, mailbox))
        second = asyncio.create_task(_borrow_once(pool, mailbox))
        with pytest.raises(ConnectionLostError):
            await first
        assert await second is True
    finally:
        await pool.aclose()


async def _borrow_once(pool: CommandPool, mailbox: Mailbox) -> bool:
    async with pool.borrow(mailbox) as connector:
        await asyncio.sleep(0.01)
        return connector.is_connected


@pytest.mark.parametrize(
    "changes",
    [
        {"provider_id": "gmail"},
        {"imap": ServerSettings("imap.gmail.com", 993, Security.SSL)},
        {
            "auth_method": AuthMethod.OAUTH2,
            "password": None,
            "oauth": OAuthGrant("google", connected_email="a@gmail.com"),
        },
    ],
    ids=["detected", "host", "oauth"],
)
async def test_gmail_keeps_below_its_account_limit(changes: dict[str, object]) -> None:
    made = Bed(size=40, wait=0.2)
    mailbox = make_mailbox(**changes)
    try:
        holders = [Holder(made.pool, mailbox) for _ in range(12)]
        await asyncio.sleep(0.05)
        # 15 per account, the watcher's IDLE and the person's own programs included
        assert made.pool.sizes(mailbox.id)["limit"] == 10 and made.open == 10
        for holder in holders:
            holder.done.set()
        results = await asyncio.gather(*(h.task for h in holders), return_exceptions=True)
        assert all(r is None for r in results)
        other = make_mailbox("mbx_other")
        async with made.pool.borrow(other):
            assert made.pool.sizes(other.id)["limit"] == 40
    finally:
        await made.pool.aclose()


async def test_aclose_closes_everything_and_refuses_waiters() -> None:
    made = Bed(size=1, wait=5.0)
    mailbox = make_mailbox()
    holder = Holder(made.pool, mailbox)
    lent = await holder.got
    async with made.pool.borrow(make_mailbox("mbx_2")) as idle:
        pass
    waiter = asyncio.create_task(_borrow_once(made.pool, mailbox))
    await asyncio.sleep(0.02)
    await made.pool.aclose()
    assert not idle.is_connected
    with pytest.raises(MailboxBusyError):
        await waiter
    await holder.release()
    await settle()
    assert not lent.is_connected and made.open == 0
    with pytest.raises(MailboxBusyError):
        async with made.pool.borrow(mailbox):
            pass


async def test_metrics_show_the_pools(bed: Bed) -> None:
    mailbox = make_mailbox()
    holder = Holder(bed.pool, mailbox)
    await holder.got
    async with bed.pool.borrow(mailbox):
        pass
    text = metrics.render().decode()
    in_use = float(_sample(text, 'mailport_command_connections{state="in_use"}'))
    idle = float(_sample(text, 'mailport_command_connections{state="idle"}'))
    assert in_use >= 1 and idle >= 1
    assert float(_sample(text, "mailport_command_wait_seconds_count")) >= 2
    assert "mailport_command_busy_total" in text and "mailport_command_pool_shrinks_total" in text
    await holder.release()


def _sample(text: str, name: str) -> str:
    line = next(line for line in text.splitlines() if line.startswith(name + " "))
    return line.split()[-1]


def _sample_value(name: str) -> float:
    return metrics.REGISTRY.get_sample_value(name) or 0.0
