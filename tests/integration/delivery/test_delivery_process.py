"""Webhook delivery in a child process of serve (``MAILPORT_DELIVERY_PROCESS``,
:mod:`mailport.delivery.process`): the parent's commits wake the child at once through a pipe
(SQLite has no NOTIFY, and the child does not poll for commits), ``/readyz``'s ``delivery``
follows the child, and a child that dies is started again and delivers the rest, each event
once, in order. Here this test process is the parent: it runs the Runtime that ``serve`` runs
and appends the events; the child is a real ``mailport worker``."""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import time
from collections.abc import AsyncIterator

import pytest

from mailport.bootstrap import Services
from mailport.config import Settings
from mailport.delivery.process import DeliveryProcess
from mailport.delivery.schemas import WebhookCreate
from mailport.events import NewEvent
from mailport.runtime import Runtime
from tests.fixtures.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.xdist_group("delivery-process")


def _event(tenant_id: str, n: int) -> NewEvent:
    return NewEvent(tenant_id, "mbx_child", "message.received", {"n": n}, f"child:{n}")


@pytest.fixture
async def parent(
    delivery_services: Services, delivery_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Runtime]:
    """The background work of ``serve`` with ``MAILPORT_DELIVERY_PROCESS=true`` and no
    watchers: the child gets this process's environment, so the settings go there."""
    settings = delivery_settings
    for name in [n for n in os.environ if n.startswith("MAILPORT_")]:
        monkeypatch.delenv(name)
    assert settings.secret_keys is not None
    monkeypatch.setenv("MAILPORT_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("MAILPORT_SECRET_KEYS", settings.secret_keys.get_secret_value())
    monkeypatch.setenv("MAILPORT_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("MAILPORT_ALLOW_PRIVATE_HOSTS", "true")
    monkeypatch.setenv("MAILPORT_LOG_LEVEL", "WARNING")
    runtime = Runtime(
        delivery_services,
        watchers=False,
        delivery=False,
        janitor=False,
        sending=False,
        contacts=False,
        delivery_process=True,
    )
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.stop()


async def _ready(runtime: Runtime, timeout: float = 60.0) -> DeliveryProcess:
    child = runtime.delivery_process
    assert child is not None
    deadline = time.monotonic() + timeout
    while not runtime.delivering:
        assert time.monotonic() < deadline, "the delivery process did not become ready"
        await asyncio.sleep(0.05)
    return child


async def test_the_parents_commits_wake_the_child_at_once(
    parent: Runtime, delivery_services: Services, webhook_receiver: WebhookReceiver
) -> None:
    assert parent.dispatcher is None  # not in this process
    tenant, _key = await delivery_services.tenants.create_tenant("child")
    await delivery_services.webhooks.create(tenant.id, WebhookCreate(url=webhook_receiver.url))
    child = await _ready(parent)
    # a delivery-only worker runs on uvloop (MAILPORT_EVENT_LOOP=auto, mailport.event_loop)
    assert child.pid is not None
    with open(f"/proc/{child.pid}/maps") as maps:
        assert "/uvloop/loop." in maps.read()
    await delivery_services.events.append(_event(tenant.id, 0))
    await webhook_receiver.wait_for(1, timeout=30)  # the child's first cycle has run
    waits = []
    for n in range(1, 11):
        await asyncio.sleep(0.05 + 0.037 * n)  # out of step with the child's 1 s poll
        started = time.monotonic()
        await delivery_services.events.append(_event(tenant.id, n))
        got = await webhook_receiver.wait_for(n + 1, timeout=10)
        waits.append(got[-1].at - started)
    # the dispatcher's poll is 1 s: found by it, the median wait would be ~0.5 s
    assert statistics.median(waits) < 0.25, waits
    assert [r.json()["data"]["n"] for r in webhook_receiver.succeeded()] == list(range(11))


async def test_a_killed_child_is_started_again_and_delivers_the_rest_once_in_order(
    parent: Runtime, delivery_services: Services, webhook_receiver: WebhookReceiver
) -> None:
    tenant, _key = await delivery_services.tenants.create_tenant("child")
    await delivery_services.webhooks.create(tenant.id, WebhookCreate(url=webhook_receiver.url))
    child = await _ready(parent)
    first = child.pid
    assert first is not None
    for n in range(20):
        await delivery_services.events.append(_event(tenant.id, n))
    await webhook_receiver.wait_for(20, timeout=30)
    os.kill(first, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while parent.delivering:
        assert time.monotonic() < deadline, "readiness did not notice the dead child"
        await asyncio.sleep(0.02)
    for n in range(20, 40):  # committed while no child runs: found by the next one
        await delivery_services.events.append(_event(tenant.id, n))
    await _ready(parent)  # restarted after 1 s; it takes the lease over once the old one expires
    assert child.pid not in (None, first) and child.restarts == 1
    deadline = time.monotonic() + 60
    while len({r.headers["webhook-id"] for r in webhook_receiver.succeeded()}) < 40:
        assert time.monotonic() < deadline, "the restarted child did not deliver the rest"
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # a late duplicate would show up now
    got = webhook_receiver.succeeded()
    numbers = [r.json()["data"]["n"] for r in got]
    assert sorted(set(numbers)) == list(range(40))
    ids = [r.headers["webhook-id"] for r in got]
    # a redelivery (the killed child may have sent one whose result it had not recorded) keeps
    # its webhook-id; the first sending of each event is in order
    assert len(set(ids)) == 40
    firsts = list(dict.fromkeys(numbers))
    assert firsts == list(range(40))


async def test_stopping_the_parent_stops_the_child(parent: Runtime, delivery_services: Services) -> None:
    child = await _ready(parent)
    pid = child.pid
    assert pid is not None
    await parent.stop()
    assert not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
