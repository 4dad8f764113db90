"""Secrets in request bodies are never echoed: a 422 names the field and the rule, not the value."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from mailport.bootstrap import Services
from tests.fixtures.api import SecretWatch, TenantHandle
from tests.integration.api.helpers import mailbox_body


def _secret(prefix: str, length: int, middle: str = "") -> str:
    """A unique value of exactly ``length`` characters, ``middle`` inside it."""
    head = f"{prefix}-{uuid.uuid4().hex}{middle}"
    return head + "x" * (length - len(head))


async def _refused(
    client: httpx.AsyncClient, method: str, url: str, body: dict[str, Any], field: str
) -> dict[str, Any]:
    response = await client.request(method, url, json=body)
    assert response.status_code == 422, response.text
    error: dict[str, Any] = response.json()
    assert error["field"] == field and error["error"] == "invalid_input", error
    return error


async def test_a_refused_password_is_not_echoed(tenant_client: httpx.AsyncClient, secret_watch: SecretWatch):
    too_long, two_lines = _secret("pw", 1025), _secret("pw", 40, middle="\r\nBcc: x")
    secret_watch.add(too_long, two_lines)
    error = await _refused(
        tenant_client, "POST", "/v1/mailboxes", mailbox_body(password=too_long), "password"
    )
    assert error["detail"] == "password: String should have at most 1024 characters"
    error = await _refused(
        tenant_client, "POST", "/v1/mailboxes", mailbox_body(password=two_lines), "password"
    )
    assert "cannot contain NUL or line breaks" in error["detail"]

    created = await tenant_client.post("/v1/mailboxes", json=mailbox_body(password=_secret("ok", 30)))
    assert created.status_code == 201, created.text
    url = f"/v1/mailboxes/{created.json()['id']}"
    await _refused(tenant_client, "PATCH", url, {"password": too_long}, "password")
    await _refused(tenant_client, "PATCH", url, {"password": ""}, "password")


async def test_a_changed_password_is_stored(
    tenant_client: httpx.AsyncClient, secret_watch: SecretWatch, services: Services, tenant: TenantHandle
):
    first, second = _secret("pw", 30), _secret("pw", 30)
    secret_watch.add(first, second)
    created = await tenant_client.post("/v1/mailboxes", json=mailbox_body(password=first))
    mailbox_id = created.json()["id"]
    patched = await tenant_client.patch(f"/v1/mailboxes/{mailbox_id}", json={"password": second})
    assert patched.status_code == 200, patched.text
    stored = await services.mailboxes.get(tenant.id, mailbox_id)
    assert stored.password is not None and stored.password.reveal() == second


async def test_refused_client_and_webhook_secrets_are_not_echoed(
    tenant_client: httpx.AsyncClient, secret_watch: SecretWatch
):
    client_secret, webhook_secret = _secret("cs", 2001), _secret("whsec_", 201)
    secret_watch.add(client_secret, webhook_secret)
    body = {"client_id": "x", "client_secret": client_secret}
    error = await _refused(tenant_client, "PUT", "/v1/oauth-apps/google", body, "client_secret")
    assert error["detail"] == "client_secret: String should have at most 2000 characters"
    body = {"url": "https://hooks.example.com/in", "secret": webhook_secret}
    error = await _refused(tenant_client, "POST", "/v1/webhooks", body, "secret")
    assert error["detail"] == "secret: String should have at most 200 characters"
