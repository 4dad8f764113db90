"""Bearer authentication of the tenant routes: missing, wrong, revoked and admin keys."""

from __future__ import annotations

import httpx

from mailport.bootstrap import Services
from tests.fixtures.api import ADMIN_KEY, BASE_URL, NewTenantClient, TenantHandle


async def test_revoked_key_is_refused_and_new_keys_work(
    admin_client: httpx.AsyncClient, tenant: TenantHandle, tenant_client: httpx.AsyncClient
):
    assert (await tenant_client.get("/v1/mailboxes")).status_code == 200
    key_id = (await admin_client.get(f"/v1/tenants/{tenant.id}/keys")).json()["items"][0]["id"]
    new = await admin_client.post(f"/v1/tenants/{tenant.id}/keys")
    assert new.status_code == 201
    assert (await admin_client.delete(f"/v1/tenants/{tenant.id}/keys/{key_id}")).status_code == 204
    refused = await tenant_client.get("/v1/mailboxes")
    assert refused.status_code == 401 and refused.json()["error"] == "unauthorized"
    tenant_client.headers["Authorization"] = f"Bearer {new.json()['api_key']}"
    assert (await tenant_client.get("/v1/mailboxes")).status_code == 200


async def test_missing_wrong_and_admin_keys_on_tenant_routes(app, tenant_client: httpx.AsyncClient):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as anonymous:
        for headers in ({}, {"Authorization": "Bearer mp_live_nope"}, {"Authorization": "Basic x"}):
            response = await anonymous.get("/v1/mailboxes", headers=headers)
            assert response.status_code == 401 and response.json()["hint"]
        admin = await anonymous.get("/v1/mailboxes", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        assert admin.status_code == 403 and admin.json()["error"] == "forbidden"
        assert (await anonymous.get("/v1/tenants")).status_code == 401


async def test_deleting_a_tenant_revokes_its_keys(
    admin_client: httpx.AsyncClient, tenant: TenantHandle, tenant_client: httpx.AsyncClient
):
    assert (await admin_client.delete(f"/v1/tenants/{tenant.id}")).status_code == 204
    assert (await tenant_client.get("/v1/mailboxes")).status_code == 401


async def test_a_second_tenant_is_independent(services: Services, new_tenant_client: NewTenantClient):
    other, client = await new_tenant_client()
    assert other.api_key.startswith("mp_live_")
    assert (await services.tenants.authenticate_tenant(other.api_key)).tenant_id == other.id
    assert (await client.get("/v1/mailboxes")).status_code == 200
