"""``GET /v1/workers`` and ``GET /v1/workers/{id}`` on SQLite and PostgreSQL: the admin key sees
the registered workers (dead ones marked), their stats with missing keys as 0, and the mailboxes
a worker's watcher leases hold; tenant keys and users' tokens get the refusals of the other
admin routes."""

from __future__ import annotations

import os
import socket
from datetime import timedelta

import httpx
import pytest

from mailport import leases
from mailport.bootstrap import Services
from mailport.clock import utc_now
from mailport.fleet import registry
from tests.fixtures.api import TenantHandle
from tests.integration.owners.jwts import set_verifier

ALIVE = "hostA:101:aaaaaaaa"
DEAD = "hostB:202:bbbbbbbb"
STATS = {
    "mailboxes": 2,
    "watchers": 3,
    "connects_per_minute": 4.5,
    "queues": {"connect_waiting": 1, "events_unaccepted": 7, "sends_due": 0},
    "lease_losses": 1,
    "fenced_writes_refused": 2,
    "rss_bytes": 123456789,
    "some_newer_key": "ignored",
}
FIELDS = {
    "id", "host", "pid", "roles", "weight", "state", "version", "started_at", "heartbeat_at",
    "expires_at", "alive", "mailboxes", "watchers", "connects_per_minute", "queues", "lease_losses",
    "fenced_writes_refused", "rss_bytes",
}  # fmt: skip


@pytest.fixture
async def fleet(services: Services) -> None:
    await seed(services)


async def seed(services: Services) -> None:
    """Two workers: ALIVE (stats, two watcher leases held, one expired, the dispatcher) and DEAD
    (expired a minute ago, no stats: an old build's row)."""
    now = utc_now()
    ttl = timedelta(seconds=30)
    async with services.database.transaction() as conn:
        await registry.register(conn, ALIVE, roles=["watchers"], weight=2.0, now=now, ttl=ttl)
        await registry.heartbeat(conn, ALIVE, now=now, ttl=ttl, stats=STATS)
        await registry.register(
            conn, DEAD, roles=["watchers", "api"], weight=1.0, now=now - timedelta(minutes=2), ttl=ttl
        )
        for mailbox in ("mbx_b", "mbx_a"):
            assert await leases.acquire(
                conn, leases.name("watcher", mailbox), ALIVE, now=now, until=now + ttl
            )
        assert await leases.acquire(conn, "watcher:mbx_old", ALIVE, now=now - ttl * 3, until=now - ttl)
        assert await leases.acquire(conn, "dispatcher", ALIVE, now=now, until=now + ttl)
        assert await leases.acquire(conn, "watcher:mbx_c", DEAD, now=now, until=now + ttl)


async def test_the_admin_lists_every_worker_with_its_stats(
    admin_client: httpx.AsyncClient, fleet: None
) -> None:
    answer = await admin_client.get("/v1/workers")
    assert answer.status_code == 200, answer.text
    alive, dead = answer.json()["workers"]
    assert set(alive) == FIELDS and set(dead) == FIELDS
    assert (alive["id"], alive["host"], alive["pid"]) == (ALIVE, socket.gethostname(), os.getpid())
    assert alive["alive"] is True and dead["alive"] is False
    assert alive["roles"] == ["watchers"] and dead["roles"] == ["api", "watchers"]
    assert alive["weight"] == 2.0 and alive["state"] == "active"
    assert alive["mailboxes"] == 2 and alive["watchers"] == 3 and alive["connects_per_minute"] == 4.5
    assert alive["queues"] == {"connect_waiting": 1, "events_unaccepted": 7, "sends_due": 0}
    assert (alive["lease_losses"], alive["fenced_writes_refused"], alive["rss_bytes"]) == (1, 2, 123456789)
    # a row without stats (an older worker) reads as zeros
    assert dead["mailboxes"] == dead["watchers"] == dead["lease_losses"] == dead["rss_bytes"] == 0
    assert dead["queues"] == {"connect_waiting": 0, "events_unaccepted": 0, "sends_due": 0}


async def test_one_worker_shows_the_mailboxes_it_holds(admin_client: httpx.AsyncClient, fleet: None) -> None:
    answer = await admin_client.get(f"/v1/workers/{ALIVE}")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["id"] == ALIVE and set(body) == FIELDS | {"mailbox_ids"}
    # unexpired watcher leases only: not the expired one, not the dispatcher, not another's
    assert body["mailbox_ids"] == ["mbx_a", "mbx_b"]
    assert (await admin_client.get(f"/v1/workers/{DEAD}")).json()["mailbox_ids"] == ["mbx_c"]


async def test_an_unknown_worker_is_404_worker_not_found(
    admin_client: httpx.AsyncClient, fleet: None
) -> None:
    answer = await admin_client.get("/v1/workers/nohost:1:00000000")
    assert answer.status_code == 404
    body = answer.json()
    assert body["error"] == "worker_not_found"
    assert "nohost:1:00000000" in body["detail"] and "GET /v1/workers" in body["hint"]


async def test_an_empty_fleet_is_an_empty_list(admin_client: httpx.AsyncClient) -> None:
    answer = await admin_client.get("/v1/workers")
    assert answer.status_code == 200 and answer.json() == {"workers": []}


async def test_tenant_keys_users_tokens_and_no_key_get_the_admin_refusals(
    app, tenant: TenantHandle, tenant_client: httpx.AsyncClient, fleet: None
) -> None:
    minter = await set_verifier(tenant_client, tenant.id)
    token = minter.token("alice", tid=tenant.id)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as anonymous:
        for headers in (
            {},
            {"Authorization": f"Bearer {tenant.api_key}"},
            {"Authorization": f"Bearer {token}"},
        ):
            for path in ("/v1/workers", f"/v1/workers/{ALIVE}"):
                answer = await anonymous.get(path, headers=headers)
                same_as_tenants = await anonymous.get("/v1/tenants", headers=headers)
                assert answer.status_code in (401, 403), answer.text
                assert (answer.status_code, answer.json()["error"]) == (
                    same_as_tenants.status_code,
                    same_as_tenants.json()["error"],
                )
                assert ALIVE not in answer.text  # nothing of the fleet in a refusal
    tenant_answer = await tenant_client.get("/v1/workers")
    assert tenant_answer.status_code == 403 and tenant_answer.json()["error"] == "forbidden"


def test_the_routes_are_documented(app) -> None:
    document = app.openapi()
    listed = document["paths"]["/v1/workers"]["get"]
    one = document["paths"]["/v1/workers/{worker_id}"]["get"]
    assert listed["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/WorkerList")
    assert {"401", "403"} <= set(listed["responses"]) and "404" in one["responses"]
    detail = document["components"]["schemas"]["WorkerDetail"]
    assert FIELDS | {"mailbox_ids"} <= set(detail["properties"])
