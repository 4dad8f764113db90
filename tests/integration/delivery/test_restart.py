"""`mailport serve` SIGKILLed while it delivers a backlog of webhooks, then restarted: every event
arrives, and a duplicate only ever carries the same ``webhook-id`` (the outbox is the database)."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import defaultdict
from pathlib import Path

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from mailport.bootstrap import build
from mailport.events import NewEvent, append_many
from tests.e2e.test_serve import start_serve, stop, wait_healthy
from tests.fixtures.api import make_settings
from tests.fixtures.webhook_receiver import MakeReceiver

ADMIN = "admin-key-for-delivery-restart-0123456789"
TOTAL = 300


@pytest.mark.slow
async def test_deliveries_survive_a_sigkill_of_serve(
    tmp_path: Path, fresh_database_url: str, secret_key: str, make_receiver: MakeReceiver
) -> None:
    receiver = make_receiver(delay_seconds=0.01)  # slow enough to kill it mid-way
    settings = make_settings(fresh_database_url, tmp_path / "var", secret_key, admin_key=ADMIN)
    services = await build(settings, migrate=True)
    env = {
        "MAILPORT_ADMIN_KEY": ADMIN,
        "MAILPORT_DATABASE_URL": fresh_database_url,
        "MAILPORT_SECRET_KEYS": secret_key,
        "MAILPORT_ALLOW_PRIVATE_HOSTS": "true",
        "MAILPORT_LOG_LEVEL": "WARNING",
    }
    proc, url, log_path = start_serve(tmp_path, **env)
    try:
        await asyncio.to_thread(wait_healthy, proc, url, log_path)
        async with httpx.AsyncClient(base_url=url) as client:
            admin = {"Authorization": f"Bearer {ADMIN}"}
            made = await client.post("/v1/tenants", json={"name": "restart"}, headers=admin)
            assert made.status_code == 201, made.text
            tenant_id, key = made.json()["id"], made.json()["api_key"]
            auth = {"Authorization": f"Bearer {key}"}
            hook = await client.post("/v1/webhooks", json={"url": receiver.url}, headers=auth)
            assert hook.status_code == 201, hook.text
            secret = hook.json()["secret"]
        ids: dict[str, list[str]] = defaultdict(list)
        for start in range(0, TOTAL, 50):
            async with services.events.transaction() as conn:
                got = await append_many(
                    conn,
                    [
                        NewEvent(tenant_id, f"mbx_{n % 3}", "message.received", {"n": n}, f"restart:{n}")
                        for n in range(start, start + 50)
                    ],
                )
            for event in got:
                ids[str(event.mailbox_id)].append(event.id)
        deadline = time.monotonic() + 30
        while len(receiver.succeeded()) < 40:
            assert time.monotonic() < deadline, log_path.read_text()
            await asyncio.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(proc.wait, 10)
        at_kill = len({r.headers["webhook-id"] for r in receiver.succeeded()})
        assert at_kill < TOTAL, "the kill came after the whole backlog"

        proc, url, log_path = start_serve(tmp_path, **env)
        await asyncio.to_thread(wait_healthy, proc, url, log_path)
        every = {i for group in ids.values() for i in group}
        deadline = time.monotonic() + 60
        while {r.headers["webhook-id"] for r in receiver.succeeded()} != every:
            assert time.monotonic() < deadline, (at_kill, log_path.read_text()[-3000:])
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # anything extra would show up now
    finally:
        if proc.poll() is None:
            await asyncio.to_thread(stop, proc)
        await services.aclose()
    received = receiver.succeeded()
    assert {r.headers["webhook-id"] for r in received} == every
    duplicates = len(received) - len(every)
    assert duplicates <= 60, duplicates  # at most what was in flight when the process died
    webhook = Webhook(secret)
    for r in received:  # every copy, duplicates included, is signed and carries its own event
        body = webhook.verify(r.body, r.headers)
        assert body["id"] == r.headers["webhook-id"]
    # in order per mailbox (first arrival of each event)
    first: dict[str, list[str]] = defaultdict(list)
    seen: set[str] = set()
    for r in received:
        event_id = r.headers["webhook-id"]
        if event_id not in seen:
            seen.add(event_id)
            first[r.json()["mailbox_id"]].append(event_id)
    assert first == ids
