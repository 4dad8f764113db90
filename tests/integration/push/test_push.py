"""The push inbound path over real HTTP (uvicorn) on SQLite and PostgreSQL: the handshake is
echoed, an authenticated notification wakes the watcher of its mailbox in another orchestrator
(its own service graph in this process, and a worker in another OS process, sharing only the
database), bursts coalesce, and everything else is refused without waking anything or telling
which mailboxes exist."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import httpx

from mailport.config import Settings
from mailport.metrics import REGISTRY
from mailport.sync import Orchestrator
from tests.connectors.push_fake import KEY
from tests.fixtures.process import clean_environment
from tests.integration.push.conftest import OTHER_KEY, PushBed, notification
from tests.integration.sync.conftest import wait_for

ROOT = Path(__file__).resolve().parents[3]
LIMIT = 256 * 1024  # the push routes' body limit (docs/push.md)


async def test_the_handshake_echoes_the_validation_token(http: httpx.AsyncClient, bed: PushBed):
    token = "Validation: Testing client application reachability for subscription Request-Id: 52"
    response = await http.post(f"/v1/push/{KEY}/pch_not_created_yet", params={"validationToken": token})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.text == token
    assert await bed.wakeups() == {}


async def _running(bed: PushBed, *mailbox_ids: str) -> Orchestrator:
    orchestrator = bed.orchestrator()
    await orchestrator.start()

    async def connected() -> bool:
        watchers = [orchestrator.watchers.get(m) for m in mailbox_ids]
        return all(w is not None and w.status.state == "connected" for w in watchers) and all(
            bed.connectors[m].catch_ups >= 1 for m in mailbox_ids
        )

    await wait_for(connected, timeout=10)
    return orchestrator


async def test_a_notification_wakes_the_watcher_of_its_mailbox_in_another_orchestrator(
    http: httpx.AsyncClient, bed: PushBed
):
    tenant_a, tenant_b = await bed.tenant(), await bed.tenant()
    a1 = await bed.mailbox(tenant_a, "x@example.com")
    a2 = await bed.mailbox(tenant_a, "y@example.com")
    b1 = await bed.mailbox(tenant_b, "x@example.com")  # the same address in another tenant
    channel = await bed.channel(tenant_a, a1.id)
    orchestrator = await _running(bed, a1.id, a2.id, b1.id)
    try:
        before = {m: (c.woken, c.catch_ups) for m, c in bed.connectors.items()}
        started = time.monotonic()
        response = await http.post(f"/v1/push/{KEY}/{channel.id}", json=notification(channel.secret.reveal()))
        assert response.status_code == 202, response.text
        assert response.json() == {"status": "accepted"}

        async def caught_up() -> bool:
            return bed.connectors[a1.id].catch_ups > before[a1.id][1]

        await wait_for(caught_up, timeout=10)
        # a 0.5 s poll of the wake-ups: about a second when quiet; the mailbox's own check is an
        # hour away, so anything under that came from the notification (10 s: a loaded machine)
        assert time.monotonic() - started < 10.0
        assert bed.connectors[a1.id].woken == before[a1.id][0] + 1
        await asyncio.sleep(1.0)
        for other in (a2.id, b1.id):
            assert (bed.connectors[other].woken, bed.connectors[other].catch_ups) == before[other]
        assert await bed.wakeups() == {}  # served and deleted
    finally:
        await orchestrator.stop()


async def test_refusals_all_look_alike_and_wake_nothing(http: httpx.AsyncClient, bed: PushBed):
    tenant = await bed.tenant()
    mailbox = await bed.mailbox(tenant, "x@example.com")
    channel = await bed.channel(tenant, mailbox.id)
    other = await bed.channel(tenant, mailbox.id, connector=OTHER_KEY)
    wrong = channel.secret.reveal()[:-1] + ("A" if channel.secret.reveal()[-1] != "A" else "B")
    attempts = [
        (channel.id, notification(wrong)),  # a wrong secret
        (channel.id, notification(None)),  # none
        (channel.id, notification(channel.secret.reveal(), wrong)),  # one good item, one bad
        (channel.id, notification()),  # no item at all
        ("pch_01jdoesnotexist0000000000", notification(channel.secret.reveal())),  # no such channel
        (other.id, notification(other.secret.reveal())),  # another connector's channel
        ("pch_%C3%A9%00", notification(channel.secret.reveal())),  # not even an id
    ]
    refused = {"connector": KEY, "result": "refused"}
    counted = REGISTRY.get_sample_value("mailport_push_notifications_total", refused) or 0.0
    bodies = set()
    for channel_id, body in attempts:
        response = await http.post(f"/v1/push/{KEY}/{channel_id}", json=body)
        assert response.status_code == 401, (channel_id, response.text)
        assert response.json()["error"] == "push_unauthenticated"
        bodies.add(response.text)
    assert len(bodies) == 1, bodies  # the same answer whatever was wrong
    assert REGISTRY.get_sample_value("mailport_push_notifications_total", refused) == counted + len(attempts)
    assert await bed.wakeups() == {}
    malformed = await http.post(f"/v1/push/{KEY}/{channel.id}", content=b"not json")
    assert malformed.status_code == 400 and malformed.json()["error"] == "push_invalid"
    assert await bed.wakeups() == {}


async def test_an_unknown_connector_is_404_without_a_key(http: httpx.AsyncClient, bed: PushBed):
    for connector in ("imap", "nope", "x" * 300):
        response = await http.post(f"/v1/push/{connector}/pch_x", json=notification("s"))
        assert response.status_code == 404, response.text
        body = response.json()
        assert body["error"] == "unknown_connector" and body["hint"]
        assert "x" * 50 not in body["detail"]  # the caller's text is not echoed at length
    health = await http.get("/healthz")
    assert health.status_code == 200


async def test_an_oversize_body_is_413_before_it_is_read(http: httpx.AsyncClient, bed: PushBed):
    tenant = await bed.tenant()
    mailbox = await bed.mailbox(tenant, "x@example.com")
    channel = await bed.channel(tenant, mailbox.id)
    url = f"/v1/push/{KEY}/{channel.id}"
    declared = await http.post(url, content=b" " * (LIMIT + 1), headers={"content-type": "application/json"})
    assert declared.status_code == 413 and declared.json()["error"] == "request_too_large"

    async def chunks():  # no Content-Length: counted as it arrives
        for _ in range(64):
            yield b" " * (16 * 1024)

    streamed = await http.post(url, content=chunks(), headers={"content-type": "application/json"})
    assert streamed.status_code == 413 and streamed.json()["error"] == "request_too_large"
    padded = {**notification(channel.secret.reveal()), "pad": " " * (LIMIT - 1000)}
    within = await http.post(url, json=padded)
    assert within.status_code == 202, within.text
    assert await bed.wakeups() == {mailbox.id: 1}


async def test_many_notifications_coalesce_into_one_wake(http: httpx.AsyncClient, bed: PushBed):
    tenant = await bed.tenant()
    mailbox = await bed.mailbox(tenant, "x@example.com")
    channel = await bed.channel(tenant, mailbox.id)
    body = notification(channel.secret.reveal())
    answers = await asyncio.gather(*(http.post(f"/v1/push/{KEY}/{channel.id}", json=body) for _ in range(30)))
    assert [a.status_code for a in answers] == [202] * 30
    assert await bed.wakeups() == {mailbox.id: 30}  # one row, thirty requests
    orchestrator = await _running(bed, mailbox.id)
    try:

        async def served() -> bool:
            return await bed.wakeups() == {}

        await wait_for(served, timeout=5)
        await asyncio.sleep(1.0)
        assert bed.connectors[mailbox.id].woken == 1
    finally:
        await orchestrator.stop()


async def test_a_shared_channel_wakes_the_named_account_of_its_own_tenant_only(
    http: httpx.AsyncClient, bed: PushBed
):
    tenant_a, tenant_b = await bed.tenant(), await bed.tenant()
    a1 = await bed.mailbox(tenant_a, "x@example.com")
    await bed.mailbox(tenant_a, "y@example.com")
    await bed.mailbox(tenant_b, "x@example.com")
    shared = await bed.channel(tenant_a, None)  # Gmail-like: one channel, many mailboxes
    url = f"/v1/push/{KEY}/{shared.id}"
    response = await http.post(url, json=notification(shared.secret.reveal(), account="X@Example.com"))
    assert response.status_code == 202, response.text
    assert await bed.wakeups() == {a1.id: 1}
    unknown = await http.post(url, json=notification(shared.secret.reveal(), account="z@example.com"))
    assert unknown.status_code == 202  # authenticated: accepted, nothing to wake
    assert await bed.wakeups() == {a1.id: 1}


async def test_a_notification_wakes_the_watcher_held_by_another_process(
    http: httpx.AsyncClient, bed: PushBed, settings: Settings, tmp_path: Path
):
    """The live server (this process) records the wake-up; a separate ``python`` process, whose
    orchestrator holds every watcher, wakes the right one — through the database alone."""
    tenant_a, tenant_b = await bed.tenant(), await bed.tenant()
    a1 = await bed.mailbox(tenant_a, "x@example.com")
    b1 = await bed.mailbox(tenant_b, "x@example.com")
    channel = await bed.channel(tenant_a, a1.id)
    env = clean_environment()
    env.update(
        {
            "MAILPORT_DATABASE_URL": settings.effective_database_url,
            "MAILPORT_SECRET_KEYS": settings.secret_keys.get_secret_value() if settings.secret_keys else "",
            "MAILPORT_DATA_DIR": str(tmp_path / "worker"),
        }
    )
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.integration.push.worker", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert worker.stdout is not None
    lines: list[str] = []

    async def until(line: str, timeout: float) -> None:
        while line not in lines:
            read = await asyncio.wait_for(worker.stdout.readline(), timeout)  # type: ignore[union-attr]
            assert read, f"the worker ended:\n{''.join(lines)}"
            lines.append(read.decode().strip())

    try:
        await until(f"caught_up {a1.id}", 30)
        await until(f"caught_up {b1.id}", 30)
        started = time.monotonic()
        response = await http.post(f"/v1/push/{KEY}/{channel.id}", json=notification(channel.secret.reveal()))
        assert response.status_code == 202, response.text
        await until(f"woken {a1.id}", 10)
        assert time.monotonic() - started < 10.0  # the mailbox's own check is an hour away
        await asyncio.sleep(1.0)
        while True:  # what else the worker printed meanwhile
            try:
                read = await asyncio.wait_for(worker.stdout.readline(), 0.2)
            except TimeoutError:
                break
            lines.append(read.decode().strip())
        assert f"woken {b1.id}" not in lines  # the other tenant's mailbox, same address
        assert lines.count(f"woken {a1.id}") == 1
        assert await bed.wakeups() == {}
    finally:
        worker.terminate()
        await asyncio.wait_for(worker.wait(), 30)
