"""``/v1/webhooks`` and ``/v1/events`` over HTTP (ASGI), on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from mailport.api import create_app
from mailport.bootstrap import Services
from mailport.delivery.signing import generate_secret
from mailport.events import NewEvent
from tests.fixtures.api import SecretWatch, api_client, create_tenant


@pytest.fixture
def delivery_app(delivery_services: Services) -> FastAPI:
    return create_app(services=delivery_services)


@pytest.fixture
async def client(
    delivery_app: FastAPI, delivery_services: Services, secret_watch: SecretWatch
) -> AsyncIterator[httpx.AsyncClient]:
    handle = await create_tenant(delivery_services, "acme")
    async with api_client(delivery_app, handle.api_key, secret_watch) as c:
        c.headers["x-tenant-id"] = handle.id  # for the tests only; the API ignores it
        yield c


async def test_create_shows_a_generated_secret_once_and_never_again(
    client: httpx.AsyncClient, secret_watch: SecretWatch
) -> None:
    made = await client.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/hook"})
    assert made.status_code == 201, made.text
    body = made.json()
    secret = body.pop("secret")
    assert secret.startswith("whsec_") and body["status"] == "active" and body["events"] is None
    secret_watch.add(secret)
    secret_watch.bodies.clear()  # the creation response is the one place it may appear
    got = await client.get(f"/v1/webhooks/{body['id']}")
    assert got.status_code == 200 and "secret" not in got.json()
    listed = await client.get("/v1/webhooks")
    assert [w["id"] for w in listed.json()["items"]] == [body["id"]]
    changed = await client.patch(
        f"/v1/webhooks/{body['id']}", json={"events": ["message.received"], "description": "crm"}
    )
    assert changed.status_code == 200
    assert changed.json()["events"] == ["message.received"] and changed.json()["description"] == "crm"


async def test_a_given_secret_is_stored_encrypted_and_not_returned(
    client: httpx.AsyncClient, delivery_services: Services, secret_watch: SecretWatch
) -> None:
    secret = generate_secret().reveal()
    secret_watch.add(secret)
    made = await client.post(
        "/v1/webhooks", json={"url": "https://127.0.0.1/hook", "secret": secret, "events": ["mailbox.error"]}
    )
    assert made.status_code == 201 and made.json()["secret"] is None
    async with delivery_services.database.connect() as conn:
        from sqlalchemy import text

        stored = (await conn.execute(text("SELECT secret_enc FROM webhook_endpoints"))).scalar_one()
    assert secret not in stored
    endpoint = await delivery_services.webhooks.get(client.headers["x-tenant-id"], made.json()["id"])
    assert endpoint.secret.reveal() == secret and repr(endpoint.secret) == "Secret('***')"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://example.com/x"}, "url"),
        ({"url": "not a url"}, "url"),
        ({"url": "https://user:pw@example.com/x"}, "url"),
        ({"url": "https://127.0.0.1/x", "secret": "plain-text"}, "secret"),
        ({"url": "https://127.0.0.1/x", "secret": "whsec_c2hvcnQ="}, "secret"),
        ({"url": "https://127.0.0.1/x", "events": ["message.purged"]}, None),
        ({"url": "https://127.0.0.1/x", "events": []}, None),
        ({"url": "https://127.0.0.1/x", "extra": 1}, None),
        ({"url": "https://127.0.0.1/x", "batch_size": 0}, "batch_size"),
        ({"url": "https://127.0.0.1/x", "batch_size": 101}, "batch_size"),
        ({"url": "https://127.0.0.1/x", "batch_size": "5"}, "batch_size"),
        ({"url": "https://127.0.0.1/x", "batch_size": 2.5}, "batch_size"),
        ({"url": "https://127.0.0.1/x", "batch_size": True}, "batch_size"),
        ({"url": "https://127.0.0.1/x", "batch_size": None}, "batch_size"),
    ],
)
async def test_bad_input_is_a_422_with_the_error_body(
    client: httpx.AsyncClient, body: dict[str, object], field: str | None
) -> None:
    answer = await client.post("/v1/webhooks", json=body)
    assert answer.status_code == 422, answer.text
    error = answer.json()
    assert {"error", "detail", "hint"} <= set(error)
    if field is not None:
        assert error.get("field") == field, error


async def test_batch_size_is_read_created_and_changed_within_1_to_100(client: httpx.AsyncClient) -> None:
    made = await client.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/hook"})
    assert made.status_code == 201 and made.json()["batch_size"] == 1  # the default: one event a request
    hook = made.json()["id"]
    batched = await client.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/b", "batch_size": 100})
    assert batched.status_code == 201 and batched.json()["batch_size"] == 100
    changed = await client.patch(f"/v1/webhooks/{hook}", json={"batch_size": 50})
    assert changed.status_code == 200 and changed.json()["batch_size"] == 50
    assert (await client.get(f"/v1/webhooks/{hook}")).json()["batch_size"] == 50
    for bad in (0, 101, "7", 1.5):
        refused = await client.patch(f"/v1/webhooks/{hook}", json={"batch_size": bad})
        assert refused.status_code == 422 and refused.json()["field"] == "batch_size", (bad, refused.text)
        assert {"error", "detail", "hint"} <= set(refused.json())
    listed = (await client.get("/v1/webhooks")).json()["items"]
    assert sorted(w["batch_size"] for w in listed) == [50, 100]


async def test_private_addresses_are_refused_unless_allowed(
    app: FastAPI, services: Services, secret_watch: SecretWatch
) -> None:
    handle = await create_tenant(services, "strict")  # default settings: private hosts refused
    async with api_client(app, handle.api_key, secret_watch) as strict:
        for url in ("http://127.0.0.1:8080/hook", "http://10.0.0.5/hook", "http://169.254.169.254/latest"):
            answer = await strict.post("/v1/webhooks", json={"url": url})
            assert answer.status_code == 422 and answer.json()["error"] == "host_not_allowed", answer.text


async def test_other_tenants_endpoints_are_not_found(
    client: httpx.AsyncClient, delivery_app: FastAPI, delivery_services: Services, secret_watch: SecretWatch
) -> None:
    made = (await client.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/a"})).json()
    other = await create_tenant(delivery_services, "other")
    async with api_client(delivery_app, other.api_key, secret_watch) as stranger:
        for method, path in (
            ("GET", f"/v1/webhooks/{made['id']}"),
            ("PATCH", f"/v1/webhooks/{made['id']}"),
            ("DELETE", f"/v1/webhooks/{made['id']}"),
            ("GET", f"/v1/webhooks/{made['id']}/deliveries"),
            ("POST", f"/v1/webhooks/{made['id']}/replay"),
        ):
            answer = await stranger.request(method, path, json={} if method in ("PATCH", "POST") else None)
            assert answer.status_code == 404 and answer.json()["error"] == "not_found", (method, path)
        assert (await stranger.get("/v1/webhooks")).json()["items"] == []
    deleted = await client.delete(f"/v1/webhooks/{made['id']}")
    assert deleted.status_code == 204
    assert (await client.get(f"/v1/webhooks/{made['id']}")).status_code == 404


async def test_disable_and_enable_through_patch(client: httpx.AsyncClient) -> None:
    made = (await client.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/a"})).json()
    off = await client.patch(f"/v1/webhooks/{made['id']}", json={"enabled": False})
    assert off.json()["status"] == "disabled" and off.json()["disabled_reason"]
    on = await client.patch(f"/v1/webhooks/{made['id']}", json={"enabled": True})
    assert on.json()["status"] == "active" and on.json()["disabled_reason"] is None


async def test_list_pagination(client: httpx.AsyncClient) -> None:
    ids = []
    for n in range(5):
        ids.append((await client.post("/v1/webhooks", json={"url": f"http://127.0.0.1:9/{n}"})).json()["id"])
    first = (await client.get("/v1/webhooks", params={"limit": 2})).json()
    second = (await client.get("/v1/webhooks", params={"limit": 2, "cursor": first["next_cursor"]})).json()
    third = (await client.get("/v1/webhooks", params={"limit": 2, "cursor": second["next_cursor"]})).json()
    assert [w["id"] for w in first["items"] + second["items"] + third["items"]] == ids
    assert third["next_cursor"] is None
    bad = await client.get("/v1/webhooks", params={"cursor": "%%%"})
    assert bad.status_code == 422 and bad.json()["error"] == "invalid_cursor"


async def test_pull_pages_through_events_and_accepts_them(
    client: httpx.AsyncClient, delivery_services: Services
) -> None:
    tenant_id = client.headers["x-tenant-id"]
    other = await create_tenant(delivery_services, "elsewhere")
    for n in range(25):
        await delivery_services.events.append(
            NewEvent(tenant_id, f"mbx_{n % 2}", "message.received", {"n": n}, f"pull:{n}")
        )
    await delivery_services.events.append(NewEvent(other.id, "mbx_x", "message.received", {}, "pull:other"))
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 10}
        if cursor is not None:
            params["after"] = cursor
        page = (await client.get("/v1/events", params=params)).json()
        if not page["items"]:
            assert page["next_cursor"] == cursor
            break
        seen.extend(item["data"]["n"] for item in page["items"])
        assert page["next_cursor"] == page["items"][-1]["cursor"]
        cursor = page["next_cursor"]
    assert seen == list(range(25))  # in order, once each, only this tenant's
    listed = await delivery_services.events.list_after(tenant_id, 0, 100)
    assert all(e.accepted_at is not None for e in listed)
    only = (await client.get("/v1/events", params={"mailbox_id": "mbx_1", "limit": 100})).json()
    assert [i["data"]["n"] for i in only["items"]] == list(range(1, 25, 2))
    for after in ("abc", "²", "１２"):  # Unicode digits pass str.isdigit() but not int()
        bad = await client.get("/v1/events", params={"after": after})
        assert bad.status_code == 422 and bad.json()["error"] == "invalid_cursor"


async def test_pull_refuses_a_mailbox_id_that_cannot_be_one(client: httpx.AsyncClient) -> None:
    for bad in ("mbx_\x00", "é", "' or 1=1"):
        response = await client.get("/v1/events", params={"mailbox_id": bad})
        assert response.status_code == 422, (bad, response.text)
        assert response.json()["error"] == "invalid_input" and response.json()["field"] == "mailbox_id"
    fine = await client.get("/v1/events", params={"mailbox_id": "mbx_01m7zh4d94fxj51fc0rsy5n52y"})
    assert fine.status_code == 200 and fine.json()["items"] == []


async def test_pull_does_not_accept_what_a_webhook_endpoint_is_responsible_for(
    client: httpx.AsyncClient, delivery_services: Services
) -> None:
    tenant_id = client.headers["x-tenant-id"]
    await client.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/a", "events": ["message.received"]})
    await delivery_services.events.append(NewEvent(tenant_id, "mbx_1", "message.received", {}, "mine:1"))
    await delivery_services.events.append(NewEvent(tenant_id, "mbx_1", "mailbox.connected", {}, "mine:2"))
    page = (await client.get("/v1/events")).json()
    assert [i["type"] for i in page["items"]] == ["message.received", "mailbox.connected"]
    acked = await client.post("/v1/events/ack", json={"through": page["next_cursor"]})
    assert acked.status_code == 200 and acked.json()["accepted"] == 1, acked.text
    by_type = {e.type: e for e in await delivery_services.events.list_after(tenant_id, 0, 10)}
    assert by_type["message.received"].accepted_at is None  # the webhook must answer 2xx first
    assert by_type["mailbox.connected"].accepted_at is not None


async def test_deliveries_and_replay_of_an_unknown_delivery(client: httpx.AsyncClient) -> None:
    made = (await client.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/a"})).json()
    page = await client.get(f"/v1/webhooks/{made['id']}/deliveries")
    assert page.status_code == 200 and page.json() == {"items": [], "next_cursor": None}
    replay = await client.post(f"/v1/webhooks/{made['id']}/replay")
    assert replay.status_code == 200 and replay.json() == {"replayed": 0}
    missing = await client.post(f"/v1/webhooks/{made['id']}/replay", json={"delivery_id": "dlv_nope"})
    assert missing.status_code == 404
