"""`mailport serve` SIGKILLed in the middle of a 500-message backlog, then restarted: every
message is in the event log exactly once (idempotency keys) and reaches the webhook receiver,
a duplicate only ever with the same ``webhook-id`` and idempotency key; none lost. Also with
``MAILPORT_DELIVERY_PROCESS=true``: the webhooks then go out from serve's child (``/readyz``
says so), which stops by itself when serve is SIGKILLed."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.crash import (
    alive,
    assert_exactly_once,
    children,
    kill_mid_backlog,
    restarted,
    tenant_with_webhook,
    wait_all,
)
from tests.fixtures.webhook_receiver import MakeReceiver
from tests.integration.sync.conftest import make_message
from tests.mailstack.dovecot import Dovecot

ADMIN = "admin-key-for-ingest-e2e-0123456789"
TOTAL = 500


async def _append_backlog(dovecot: Dovecot, user: str, password: str) -> None:
    client = await dovecot.client(user, password, command_timeout=60)
    try:
        for start in range(0, TOTAL, 50):
            await client.append_many(
                "INBOX", [make_message(f"backlog {i}") for i in range(start, start + 50)]
            )
    finally:
        await client.logout()


@pytest.mark.slow
@pytest.mark.parametrize("delivery_process", [False, True], ids=["one-process", "delivery-process"])
def test_sigkill_mid_backlog_then_restart_delivers_every_message_once(
    tmp_path: Path,
    dovecot: Dovecot,
    password_user: tuple[str, str],
    make_receiver: MakeReceiver,
    delivery_process: bool,
) -> None:
    user, password = password_user
    receiver = make_receiver(delay_seconds=0.005)  # slow enough to be killed mid-way

    def delivered() -> list[tuple[str, bytes]]:
        return [(r.headers["webhook-id"], r.body) for r in receiver.succeeded()]

    env = {
        "MAILPORT_ADMIN_KEY": ADMIN,
        "MAILPORT_ALLOW_PRIVATE_HOSTS": "true",
        "MAILPORT_LOG_LEVEL": "WARNING",
        "MAILPORT_DELIVERY_PROCESS": "true" if delivery_process else "false",
    }
    db = tmp_path / "var" / "mailport.db"
    child: list[int] = []

    def setup(url: str) -> None:
        if delivery_process:
            deadline = time.monotonic() + 60
            while (ready := httpx.get(f"{url}/readyz")).status_code != 200:
                assert time.monotonic() < deadline, ready.text
                time.sleep(0.1)
            assert ready.json()["checks"]["delivery"] is True
        _, key = tenant_with_webhook(url, ADMIN, receiver.url, "crash")
        # the backlog is waiting when the mailbox is added: the first catch-up ingests it
        asyncio.run(_append_backlog(dovecot, user, password))
        body = {
            "email": user,
            "auth_method": "password",
            "password": password,
            "imap": {"host": "127.0.0.1", "port": dovecot.imap_port, "security": "none"},
        }
        created = httpx.post(f"{url}/v1/mailboxes", json=body, headers={"Authorization": f"Bearer {key}"})
        assert created.status_code == 201, created.text

    killed_at = kill_mid_backlog(
        tmp_path, env, delivered, setup, set_up=lambda pid: child.extend(children(pid))
    )
    assert len(child) == (1 if delivery_process else 0), child
    deadline = time.monotonic() + 20
    while child and alive(child[0]):  # the parent's end of the wake pipe closed: the child stops
        assert time.monotonic() < deadline, "the delivery process outlived serve"
        time.sleep(0.05)
    with restarted(tmp_path, env):
        rows = wait_all(db, delivered, TOTAL)
    assert_exactly_once(rows, delivered, [f"backlog {i}" for i in range(TOTAL)], killed_at)
    ids = {i for i, body in delivered() if json.loads(body)["type"] == "message.received"}
    assert len(ids) == TOTAL
