"""Events committed by another process wake the webhook dispatcher on SQLite too: it asks SQLite
every 20 ms whether another connection committed (``PRAGMA data_version``,
:mod:`mailport.store.sqlite_watch`), so a dispatcher in a process of its own
(``MAILPORT_WORKER_PARTS=delivery``) sends their webhooks at once instead of at its poll."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from mailport.bootstrap import Services
from mailport.config import Settings
from mailport.delivery import dispatcher as dispatching
from mailport.delivery.schemas import WebhookCreate
from mailport.runtime import Runtime
from mailport.store.sqlite_watch import DEFAULT_INTERVAL as COMMIT_POLL
from mailport.store.sqlite_watch import CommitWatch, sqlite_path
from tests.fixtures.webhook_receiver import MakeDispatcher, WebhookReceiver
from tests.integration.delivery.test_foreign_commits import _event, sent_at_once

POLL = 30.0  # far longer than any wait below: only the commit watch can make it in time


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    return sqlite_url


async def _idle_dispatcher(
    services: Services, receiver: WebhookReceiver, make_dispatcher: MakeDispatcher
) -> tuple[str, dispatching.Dispatcher]:
    """A tenant with an endpoint at ``receiver``, and a dispatcher (polling every ``POLL``)
    that has run its first cycle and now waits for wake-ups."""
    tenant, _key = await services.tenants.create_tenant("foreign")
    endpoint, _secret = await services.webhooks.create(tenant.id, WebhookCreate(url=receiver.url))
    dispatcher = await make_dispatcher(poll_interval=POLL, commit_poll=COMMIT_POLL)
    for _ in range(500):
        if endpoint.id in dispatcher._workers and dispatcher._fanout_seq is not None:
            await asyncio.sleep(0.2)
            return tenant.id, dispatcher
        await asyncio.sleep(0.02)
    raise AssertionError("the dispatcher did not start")


async def test_another_processs_events_are_sent_at_once(
    delivery_services: Services,
    delivery_settings: Settings,
    webhook_receiver: WebhookReceiver,
    make_dispatcher: MakeDispatcher,
) -> None:
    tenant_id, dispatcher = await _idle_dispatcher(delivery_services, webhook_receiver, make_dispatcher)
    assert dispatcher._commit_watch is not None
    await sent_at_once(delivery_settings, tenant_id, webhook_receiver, within=2.0)  # not the 30 s poll


async def test_the_lease_holders_own_commits_rarely_wake_it(
    delivery_services: Services,
    webhook_receiver: WebhookReceiver,
    make_dispatcher: MakeDispatcher,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Its own commits change ``data_version`` too, but their events are fanned out in their
    own transactions: the watch sees the newest event at the cursor and does not wake it (a
    tick that falls between a commit and its fan-out's report may: at most one per tick)."""
    tenant_id, _dispatcher = await _idle_dispatcher(delivery_services, webhook_receiver, make_dispatcher)
    wakes: list[float] = []
    original = delivery_services.events.foreign_commit
    monkeypatch.setattr(delivery_services.events, "foreign_commit", lambda: (wakes.append(1), original()))
    for n in range(10):
        await delivery_services.events.append(_event(tenant_id, n))
        await asyncio.sleep(0.05)  # more than a tick: every commit is seen on its own
    await webhook_receiver.wait_for(10)
    assert len(wakes) < 5


@pytest.mark.parametrize("watchers", [False, True])
async def test_only_a_process_without_watchers_looks(delivery_services: Services, watchers: bool) -> None:
    """A process that runs the watchers appends its events itself (its own wake-up); the look,
    ~50 wake-ups a second, is for a delivery-only worker, whose events come from another."""
    runtime = Runtime(delivery_services, watchers=watchers, janitor=False, sending=False, contacts=False)
    await runtime.start()
    try:
        assert runtime.dispatcher is not None
        assert (runtime.dispatcher._commit_watch is None) is watchers
    finally:
        await runtime.stop()


async def test_the_watch_reports_other_connections_commits(tmp_path: Path) -> None:
    path = tmp_path / "watched.db"
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("CREATE TABLE t (n INTEGER PRIMARY KEY)")
    seen: list[int] = []
    watch = CommitWatch(str(path), "SELECT coalesce(max(n), 0) FROM t", seen.append, interval=0.01)
    watch.start()
    try:
        await _until(lambda: seen == [0])  # the first look: what came before
        for n in (1, 2, 3):
            writer.execute("INSERT INTO t (n) VALUES (?)", (n,))
            await _until(lambda n=n: seen[-1:] == [n])
        await asyncio.sleep(0.1)
        assert seen == [0, 1, 2, 3]  # nothing without a commit
    finally:
        await watch.stop()
        writer.close()


async def test_a_missing_table_or_a_locked_file_is_looked_at_again(tmp_path: Path) -> None:
    """A probe that fails (the schema not migrated yet) costs nothing but a later look."""
    path = tmp_path / "early.db"
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    seen: list[int] = []
    watch = CommitWatch(str(path), "SELECT coalesce(max(n), 0) FROM t", seen.append, interval=0.01)
    watch.start()
    try:
        await asyncio.sleep(0.1)
        assert seen == []
        writer.execute("CREATE TABLE t (n INTEGER PRIMARY KEY)")
        writer.execute("INSERT INTO t (n) VALUES (7)")
        await _until(lambda: seen[-1:] == [7])
    finally:
        await watch.stop()
        writer.close()


def test_only_a_file_is_watched(tmp_path: Path) -> None:
    assert sqlite_path(make_url(f"sqlite+aiosqlite:///{tmp_path}/a.db")) == f"{tmp_path}/a.db"
    assert sqlite_path(make_url("sqlite+aiosqlite:///:memory:")) is None
    assert sqlite_path(make_url("sqlite+aiosqlite://")) is None
    assert sqlite_path(make_url("postgresql+asyncpg://u@h/db")) is None
    assert sqlite_path(make_url("sqlite+aiosqlite:///file:x.db?uri=true")) == "file:x.db"


async def _until(check: object, timeout: float = 5.0) -> None:
    assert callable(check)
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not seen in time"
        await asyncio.sleep(0.01)
