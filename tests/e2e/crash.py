"""What the kill -9 tests of ``mailport serve`` share (IMAP, Gmail API, Graph): read the event
log of the killed process's database, SIGKILL ``serve`` as soon as the webhook receiver got the
first message of a backlog, wait until a restarted ``serve`` delivered everything, and check that
every message is in the log exactly once and reached the receiver, a redelivery only ever with
the same ``webhook-id``."""

from __future__ import annotations

import contextlib
import json
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

from tests.e2e.test_serve import start_serve, stop, wait_healthy

Delivered = Callable[[], list[tuple[str, bytes]]]  # (webhook-id, body) of every accepted request


def received(db: Path) -> list[tuple[str, str]]:
    """(idempotency key, payload) of every ``message.received`` event, in log order."""
    if not db.exists():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute(
            "SELECT idempotency_key, payload FROM events WHERE type = 'message.received' ORDER BY seq"
        ).fetchall()
    except sqlite3.OperationalError:  # tables not there yet
        return []
    finally:
        conn.close()


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """``pid`` runs (a zombie does not)."""
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def delivered_keys(receiver_requests: list[tuple[str, bytes]]) -> dict[str, set[str]]:
    """idempotency key -> the webhook-ids it was delivered with (``message.received`` only)."""
    seen: dict[str, set[str]] = {}
    for webhook_id, body in receiver_requests:
        event = json.loads(body)
        if event["type"] == "message.received":
            seen.setdefault(event["idempotency_key"], set()).add(webhook_id)
    return seen


def tenant_with_webhook(url: str, admin_key: str, receiver_url: str, name: str) -> tuple[str, str]:
    """A tenant of the running ``serve`` with a webhook to the receiver; its id and API key."""
    admin = {"Authorization": f"Bearer {admin_key}"}
    tenant = httpx.post(f"{url}/v1/tenants", json={"name": name}, headers=admin)
    assert tenant.status_code == 201, tenant.text
    key = str(tenant.json()["api_key"])
    hook = httpx.post(
        f"{url}/v1/webhooks", json={"url": receiver_url}, headers={"Authorization": f"Bearer {key}"}
    )
    assert hook.status_code == 201, hook.text
    return str(tenant.json()["id"]), key


def kill_mid_backlog(
    tmp_path: Path,
    env: dict[str, str],
    delivered: Delivered,
    setup: Callable[[str], None],
    *,
    url: str = "",
    set_up: Callable[[int], None] | None = None,
) -> int:
    """Start ``serve``, ``setup(url)`` (a tenant, a webhook, the mailbox with its backlog), and
    SIGKILL it at the first delivery; how many deliveries the receiver had then. ``url``: where
    serve listens when ``env`` pins ``MAILPORT_PORT``. ``set_up(pid)``: told serve's pid after
    ``setup``."""
    proc, started_at, log_path = start_serve(tmp_path, **env)
    try:
        wait_healthy(proc, url or started_at, log_path)
        setup(url or started_at)
        if set_up is not None:
            set_up(proc.pid)
        killed_at = kill_at_first_delivery(proc, delivered)
        assert killed_at > 0, log_path.read_text()[-3000:]
        return killed_at
    finally:
        if proc.poll() is None:
            stop(proc)


@contextlib.contextmanager
def restarted(tmp_path: Path, env: dict[str, str], *, url: str = "") -> Iterator[str]:
    """``serve`` started again on the same data directory, healthy; its URL. Stopped after."""
    proc, started_at, log_path = start_serve(tmp_path, **env)
    try:
        wait_healthy(proc, url or started_at, log_path)
        yield url or started_at
    finally:
        stop(proc)


def kill_at_first_delivery(
    proc: subprocess.Popen[bytes], delivered: Delivered, *, timeout: float = 30.0
) -> int:
    """SIGKILL ``proc`` as soon as the receiver accepted something; how many it had (0: never)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        count = len(delivered())
        if count > 0:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            return count
        time.sleep(0.002)
    return 0


def wait_all(
    db: Path, delivered: Delivered, total: int, *, timeout: float = 60.0, settle: float = 1.0
) -> list[tuple[str, str]]:
    """Wait until ``total`` messages are in the log and at the receiver, then ``settle`` seconds
    more (a duplicate would show up then); the log's rows."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (
        len(received(db)) < total or len(delivered_keys(delivered())) < total
    ):
        time.sleep(0.1)
    time.sleep(settle)
    return received(db)


def assert_exactly_once(
    rows: list[tuple[str, str]], delivered: Delivered, subjects: list[str], killed_at: int
) -> None:
    """Each subject once in the log, each key at the receiver under one webhook-id, and the kill
    came in the middle of the backlog."""
    keys = [k for k, _ in rows]
    assert len(keys) == len(subjects), (killed_at, len(keys))
    assert len(set(keys)) == len(subjects)
    assert sorted(json.loads(p)["subject"] for _, p in rows) == sorted(subjects)
    assert 0 < killed_at < len(subjects), f"the kill did not come mid-backlog ({killed_at})"
    by_key = delivered_keys(delivered())
    assert set(by_key) == set(keys)
    assert all(len(ids) == 1 for ids in by_key.values()), [k for k, v in by_key.items() if len(v) > 1]
