"""The tenant's Gmail push channel (``/v1/push-channels``) and the Pub/Sub push receiver, on the
real app and database: the endpoint with its token is shown once, it wakes the tenant's mailbox
of the notified address and nobody else's, and bad bodies or tokens are refused."""

from __future__ import annotations

import base64
import json
from urllib.parse import parse_qs, urlsplit

import httpx
from sqlalchemy import select

from mailport.bootstrap import Services
from mailport.clock import utc_now
from mailport.mailboxes.models import AuthMethod, NewMailbox, ProcessingSettings
from mailport.store.tables import mailbox_wakeups
from tests.fixtures.api import NewTenantClient, SecretWatch, TenantHandle

TOPIC = "projects/mailport-test/topics/gmail-push"


def pubsub_body(email: str, history_id: int = 42) -> dict[str, object]:
    data = base64.b64encode(json.dumps({"emailAddress": email, "historyId": history_id}).encode()).decode()
    return {
        "message": {"data": data, "messageId": "1", "publishTime": "2026-01-01T00:00:00.123456789Z"},
        "subscription": "projects/mailport-test/subscriptions/push",
    }


async def _gmail_mailbox(services: Services, tenant_id: str, email: str) -> str:
    new = NewMailbox(
        email=email,
        auth_method=AuthMethod.OAUTH2,
        imap=None,
        provider_id="google",
        connector="gmail_api",
        settings=ProcessingSettings(check_interval=3600),
    )
    return (await services.mailboxes.repository.create(tenant_id, new, now=utc_now())).id


async def _woken(services: Services) -> set[str]:
    async with services.database.connect() as conn:
        return {row.mailbox_id for row in await conn.execute(select(mailbox_wakeups.c.mailbox_id))}


async def test_create_shows_the_endpoint_once_and_it_wakes_only_that_tenants_mailbox(
    services: Services,
    tenant: TenantHandle,
    tenant_client: httpx.AsyncClient,
    new_tenant_client: NewTenantClient,
    secret_watch: SecretWatch,
) -> None:
    created = await tenant_client.post("/v1/push-channels/gmail_api", json={"topic": TOPIC})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["connector"] == "gmail_api" and body["topic"] == TOPIC
    endpoint = urlsplit(body["push_endpoint"])
    token = parse_qs(endpoint.query)["token"][0]
    assert endpoint.path == f"/v1/push/gmail_api/{body['id']}" and len(token) >= 40
    secret_watch.bodies.remove(created.content)  # the one answer allowed to carry it
    secret_watch.add(token)

    listed = await tenant_client.get("/v1/push-channels")
    assert listed.status_code == 200
    assert listed.json() == [{k: body[k] for k in ("id", "connector", "topic", "created_at")}]
    again = await tenant_client.post("/v1/push-channels/gmail_api", json={"topic": TOPIC})
    assert again.status_code == 409 and again.json()["error"] == "conflict"

    mine = await _gmail_mailbox(services, tenant.id, "Someone@Example.com")
    other_tenant, other_client = await new_tenant_client()
    theirs = await _gmail_mailbox(services, other_tenant.id, "someone@example.com")
    assert (await other_client.get("/v1/push-channels")).json() == []
    assert (await other_client.delete(f"/v1/push-channels/{body['id']}")).status_code == 404

    path = f"{endpoint.path}?{endpoint.query}"
    answer = await tenant_client.post(path, json=pubsub_body("someone@example.com"))
    assert answer.status_code == 202, answer.text
    assert await _woken(services) == {mine}
    assert theirs not in await _woken(services)

    altered = ("y" if token[0] == "x" else "x") + token[1:]
    wrong = await tenant_client.post(
        endpoint.path + "?token=" + altered, json=pubsub_body("someone@example.com")
    )
    assert wrong.status_code == 401 and wrong.json()["error"] == "push_unauthenticated"
    bad = await tenant_client.post(path, content=b'{"message": {"data": "!!"}}')
    assert bad.status_code == 400 and bad.json()["error"] == "push_invalid"

    assert (await tenant_client.delete(f"/v1/push-channels/{body['id']}")).status_code == 204
    assert (await tenant_client.get("/v1/push-channels")).json() == []
    gone = await tenant_client.post(path, json=pubsub_body("someone@example.com"))
    assert gone.status_code == 401


async def test_bad_requests_get_codes_and_hints(tenant_client: httpx.AsyncClient) -> None:
    bad_topic = await tenant_client.post("/v1/push-channels/gmail_api", json={"topic": "gmail-push"})
    assert bad_topic.status_code == 422
    assert bad_topic.json()["error"] == "invalid_input" and "projects/" in bad_topic.json()["hint"]
    graph = await tenant_client.post("/v1/push-channels/graph", json={"topic": TOPIC})
    assert graph.status_code == 422 and graph.json()["error"] == "unsupported_feature"
    missing = await tenant_client.post("/v1/push-channels/gmail_api", json={})
    assert missing.status_code == 422
    assert (await tenant_client.delete("/v1/push-channels/pch_nothing")).status_code == 404
    anonymous = await tenant_client.get("/v1/push-channels", headers={"Authorization": ""})
    assert anonymous.status_code == 401
