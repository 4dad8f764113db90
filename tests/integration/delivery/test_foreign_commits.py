"""Events committed by another process wake the webhook dispatcher on PostgreSQL (``NOTIFY
mailport_events``), so a dispatcher in a process of its own (``MAILPORT_WORKER_PARTS``) sends
them within milliseconds instead of at its next poll; the process that holds the dispatcher's
lease fans out inline and sends no NOTIFY."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest

from mailport.bootstrap import Services
from mailport.config import Settings
from mailport.delivery import dispatcher as dispatching
from mailport.delivery.schemas import WebhookCreate
from mailport.events import COMMITTED_CHANNEL, NewEvent
from tests.fixtures.schema import build_migrated
from tests.fixtures.webhook_receiver import MakeDispatcher, WebhookReceiver

POLL = 30.0  # far longer than any wait below: only the NOTIFY can make it in time


@pytest.fixture
def database_url(postgres_url: str) -> str:
    """PostgreSQL only: SQLite has no NOTIFY (its commit watch: test_foreign_commits_sqlite.py)."""
    return postgres_url


def _event(tenant_id: str, n: int) -> NewEvent:
    return NewEvent(tenant_id, "mbx_foreign", "message.received", {"n": n}, f"foreign:{n}")


async def _idle(dispatcher: dispatching.Dispatcher, endpoint_id: str) -> None:
    """The dispatcher has run its first full cycle and now waits for wake-ups (or ``POLL``)."""
    listener = dispatcher._listener
    assert listener is not None
    await asyncio.wait_for(listener.connected.wait(), 10)
    for _ in range(500):
        if endpoint_id in dispatcher._workers and dispatcher._active is not None:
            await asyncio.sleep(0.2)  # the cycle that the LISTEN connection's first look ran
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the dispatcher did not start")


async def _idle_dispatcher(
    services: Services, receiver: WebhookReceiver, make_dispatcher: MakeDispatcher
) -> tuple[str, dispatching.Dispatcher]:
    """A tenant with an endpoint at ``receiver``, and a dispatcher (polling every ``POLL``)
    waiting for wake-ups."""
    tenant, _key = await services.tenants.create_tenant("foreign")
    endpoint, _secret = await services.webhooks.create(tenant.id, WebhookCreate(url=receiver.url))
    dispatcher = await make_dispatcher(poll_interval=POLL)
    await _idle(dispatcher, endpoint.id)
    return tenant.id, dispatcher


async def test_another_processs_events_are_sent_at_once(
    delivery_services: Services,
    delivery_settings: Settings,
    webhook_receiver: WebhookReceiver,
    make_dispatcher: MakeDispatcher,
) -> None:
    tenant_id, _dispatcher = await _idle_dispatcher(delivery_services, webhook_receiver, make_dispatcher)
    await sent_at_once(delivery_settings, tenant_id, webhook_receiver, within=POLL / 3)


async def sent_at_once(
    settings: Settings, tenant_id: str, receiver: WebhookReceiver, *, within: float
) -> None:
    """Three events appended one by one by another process (its own services: no dispatcher,
    no shared event log) each reach ``receiver`` within ``within`` seconds, in order, once."""
    other = await build_migrated(settings)
    try:
        for n in range(3):
            started = time.monotonic()
            assert await other.events.append(_event(tenant_id, n)) is not None
            got = await receiver.wait_for(n + 1, timeout=POLL / 3)
            assert time.monotonic() - started < within
            assert [r.json()["data"]["n"] for r in got] == list(range(n + 1))
    finally:
        await other.aclose()
    await asyncio.sleep(0.2)
    assert len(receiver.requests) == 3  # each once


async def test_the_lease_holders_own_events_send_no_notify(
    delivery_services: Services,
    webhook_receiver: WebhookReceiver,
    make_dispatcher: MakeDispatcher,
    postgres_url: str,
) -> None:
    tenant_id, dispatcher = await _idle_dispatcher(delivery_services, webhook_receiver, make_dispatcher)
    assert delivery_services.events.inline_fanout is dispatcher  # it holds the lease
    heard: list[str] = []
    listening = await asyncpg.connect(postgres_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await listening.add_listener(COMMITTED_CHANNEL, lambda *args: heard.append(args[-1]))
        for n in range(3):
            await delivery_services.events.append(_event(tenant_id, n))
        await webhook_receiver.wait_for(3)
        await asyncio.sleep(0.3)  # a NOTIFY would have arrived by now
        assert heard == []
    finally:
        await listening.close()
