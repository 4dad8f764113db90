"""An HS256 verifier end to end: set it over the API, then call the tenant routes with a JWT."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from mailport.api.deps import Caller, require_tenant
from tests.fixtures.api import BASE_URL, SecretWatch, TenantHandle
from tests.integration.auth.tokens import HS_SECRET, hs256, hs256_settings


def bearer(app: FastAPI, token: str) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL, headers=headers)


async def test_a_user_token_reaches_the_tenant_routes_as_its_owner(
    app: FastAPI, tenant: TenantHandle, tenant_client: httpx.AsyncClient, secret_watch: SecretWatch
):
    secret_watch.add(HS_SECRET)
    put = await tenant_client.put(f"/v1/tenants/{tenant.id}/jwt", json=hs256_settings())
    assert put.status_code == 200, put.text
    assert put.json()["has_secret"] is True and put.json()["kind"] == "hs256"
    async with bearer(app, hs256(sub="user-42")) as client:
        response = await client.get("/v1/mailboxes")
        assert response.status_code == 200, response.text
    caller = await _caller_of(app, hs256(sub="user-42"))
    assert caller.tenant_id == tenant.id and caller.owner == "user-42"


async def _caller_of(app: FastAPI, token: str) -> Caller:
    """The Caller ``require_tenant`` builds for ``token`` (through the real dependency)."""
    from starlette.requests import Request

    scope = {
        "type": "http",
        "app": app,
        "headers": [(b"authorization", f"Bearer {token}".encode())],
        "method": "GET",
        "path": "/",
    }
    return await require_tenant(Request(scope), None)
