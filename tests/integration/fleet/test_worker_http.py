"""``mailport worker`` with ``MAILPORT_WORKER_PORT``, as a process on a fresh database (SQLite and
PostgreSQL): ``/healthz``, ``/readyz`` once its parts run, ``/metrics`` naming the worker;
anything else 404; SIGTERM stops it and its port; a taken port or an unknown part is one line
and exit 1; a worker that runs delivery alone sends what another process appends."""

from __future__ import annotations

import asyncio
import re
import socket
import time
from pathlib import Path

import httpx
import pytest

from mailport.bootstrap import Services
from mailport.clock import utc_now
from mailport.delivery.schemas import WebhookCreate
from mailport.events import NewEvent
from mailport.fleet import registry
from tests.fixtures.process import clean_environment, run_mailport, start_mailport, wait_until_healthy
from tests.fixtures.webhook_receiver import WebhookReceiver
from tests.mailstack.dovecot import free_port

pytestmark = pytest.mark.slow  # a worker process per test (a few seconds)


def _env(services: Services, tmp_path: Path, port: int) -> dict[str, str]:
    settings = services.settings
    assert settings.secret_keys is not None
    env = clean_environment()
    env.update(
        {
            "MAILPORT_DATABASE_URL": settings.database_url,
            "MAILPORT_SECRET_KEYS": settings.secret_keys.get_secret_value(),
            "MAILPORT_DATA_DIR": str(tmp_path / "var"),
            "MAILPORT_HOST": "127.0.0.1",
            "MAILPORT_WORKER_PORT": str(port),
        }
    )
    return env


def test_a_worker_serves_health_readiness_and_metrics(services: Services, tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "worker.log"
    proc = start_mailport("worker", cwd=tmp_path, env=_env(services, tmp_path, port), log_path=log)
    try:
        wait_until_healthy(proc, url, log)
        health = httpx.get(f"{url}/healthz", timeout=5)
        assert health.json()["status"] == "ok" and health.json()["version"]
        deadline = time.monotonic() + 30
        while (ready := httpx.get(f"{url}/readyz", timeout=5)).status_code != 200:
            assert ready.status_code == 503 and ready.json()["status"] == "unavailable", ready.text
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        assert ready.json() == {
            "status": "ok",
            "checks": {"watchers": True, "delivery": True, "database": True},
        }
        metrics = httpx.get(f"{url}/metrics", timeout=5)
        assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
        info = re.search(
            r'^mailport_worker_info\{host="([^"]+)",worker_id="([^"]+)"\} 1\.0$', metrics.text, re.M
        )
        assert info is not None, metrics.text[:2000]
        assert info.group(1) == socket.gethostname()
        assert info.group(2).startswith(f"{socket.gethostname()}:{proc.pid}:")  # its lease holder id
        assert re.search(r"^mailport_worker_mailboxes 0\.0$", metrics.text, re.M)
        for name in ("mailport_connects_total", "mailport_lease_losses_total", "mailport_watchers"):
            assert re.search(rf"^{name} ", metrics.text, re.M), name
        missing = httpx.get(f"{url}/v1/mailboxes", timeout=5)
        assert missing.status_code == 404 and missing.json()["error"] == "not_found"
        posted = httpx.post(f"{url}/healthz", timeout=5)
        assert posted.status_code == 405 and posted.headers["allow"] == "GET, HEAD"
    finally:
        proc.terminate()
        code = proc.wait(20)
    assert code == 0, log.read_text()
    assert "Traceback" not in log.read_text()
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/healthz", timeout=2)


def test_a_taken_worker_port_is_one_line_and_exit_1(services: Services, tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        done = run_mailport("worker", env=_env(services, tmp_path, port))
    assert done.returncode == 1, done.stderr
    assert f"error [address_in_use]: 127.0.0.1:{port} is already in use" in done.stderr
    assert "Traceback" not in done.stderr


async def test_a_delivery_only_worker_sends_what_another_process_appends(
    delivery_services: Services, tmp_path: Path
) -> None:
    """``MAILPORT_WORKER_PARTS=delivery``: the worker runs the webhook dispatcher and nothing else
    (its ``/readyz`` checks delivery, not watchers), and sends the events this test's process
    (no dispatcher) commits: on PostgreSQL woken by their NOTIFY, on SQLite at its poll."""
    receiver = WebhookReceiver().start()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = _env(delivery_services, tmp_path, port)
    env.update({"MAILPORT_WORKER_PARTS": "delivery", "MAILPORT_ALLOW_PRIVATE_HOSTS": "true"})
    log = tmp_path / "worker.log"
    tenant, _key = await delivery_services.tenants.create_tenant("split")
    await delivery_services.webhooks.create(tenant.id, WebhookCreate(url=receiver.url))
    proc = start_mailport("worker", cwd=tmp_path, env=env, log_path=log)
    try:
        await asyncio.to_thread(wait_until_healthy, proc, url, log)
        deadline = time.monotonic() + 30
        async with httpx.AsyncClient(base_url=url, timeout=5) as client:
            while (ready := await client.get("/readyz")).status_code != 200:
                assert time.monotonic() < deadline, log.read_text()
                await asyncio.sleep(0.1)
        assert ready.json()["checks"] == {"delivery": True, "database": True}
        async with delivery_services.database.connect() as conn:
            listed = {w.id: w for w in await registry.live(conn, now=utc_now())}
        worker_id = next(i for i in listed if i.startswith(f"{socket.gethostname()}:{proc.pid}:"))
        assert listed[worker_id].roles == ("delivery",)  # listed by the fleet, given no mailboxes
        async with httpx.AsyncClient(base_url=url, timeout=5) as client:
            metrics = (await client.get("/metrics")).text
        assert f'worker_id="{worker_id}"' in metrics
        assert re.search(r"^mailport_worker_mailboxes 0\.0$", metrics, re.M)
        for n in range(3):
            event = NewEvent(tenant.id, "mbx_split", "message.received", {"n": n}, f"split:{n}")
            assert await delivery_services.events.append(event) is not None
        got = await receiver.wait_for(3, timeout=20)
        assert [r.json()["data"]["n"] for r in got] == [0, 1, 2]
        assert "running delivery" in log.read_text()
        assert "watching" not in log.read_text()
    finally:
        proc.terminate()
        code = await asyncio.to_thread(proc.wait, 20)
        receiver.stop()
    assert code == 0, log.read_text()
    assert "Traceback" not in log.read_text()


def test_an_unknown_worker_part_is_one_line_and_exit_1(services: Services, tmp_path: Path) -> None:
    env = _env(services, tmp_path, free_port())
    env["MAILPORT_WORKER_PARTS"] = "watchers,deliveries"
    done = run_mailport("worker", env=env)
    assert done.returncode == 1, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "MAILPORT_WORKER_PARTS" in lines[0], done.stderr
    assert "Traceback" not in done.stderr
