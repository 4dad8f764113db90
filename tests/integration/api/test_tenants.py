"""The admin API for tenants and API keys, and bearer authentication of every /v1 route."""

from __future__ import annotations

import httpx

from tests.fixtures.api import BASE_URL, SecretWatch, TenantHandle


async def test_admin_creates_a_tenant_whose_key_works_and_is_shown_once(
    admin_client: httpx.AsyncClient, tenant_client: httpx.AsyncClient, secret_watch: SecretWatch
):
    created = await admin_client.post("/v1/tenants", json={"name": "  Globex  "})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["name"] == "Globex" and body["id"].startswith("ten_")
    assert body["api_key"].startswith("mp_live_") and len(body["api_key"]) > 40

    got = await admin_client.get(f"/v1/tenants/{body['id']}")
    assert got.status_code == 200 and "api_key" not in got.json()

    keys = (await admin_client.get(f"/v1/tenants/{body['id']}/keys")).json()["items"]
    assert len(keys) == 1 and body["api_key"].startswith(keys[0]["prefix"]) and keys[0]["active"]
    assert body["api_key"] not in str(keys)

    async with httpx.AsyncClient(
        transport=admin_client._transport,
        base_url=BASE_URL,
        headers={"Authorization": f"Bearer {body['api_key']}"},
    ) as globex:
        assert (await globex.get("/v1/tenants")).status_code == 403  # tenant keys cannot manage tenants


async def test_duplicate_tenant_name_is_a_conflict(admin_client: httpx.AsyncClient, tenant: TenantHandle):
    response = await admin_client.post("/v1/tenants", json={"name": tenant.name})
    assert response.status_code == 409
    assert response.json()["error"] == "conflict" and response.json()["field"] == "name"


async def test_tenant_list_paginates_with_an_opaque_cursor(admin_client: httpx.AsyncClient):
    for index in range(5):
        assert (await admin_client.post("/v1/tenants", json={"name": f"t{index}"})).status_code == 201
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await admin_client.get("/v1/tenants", params=params)).json()
        seen += [t["name"] for t in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"t{i}" for i in range(5)] and pages == 3
    bad = await admin_client.get("/v1/tenants", params={"cursor": "%%%not-ours"})
    assert bad.status_code == 422 and bad.json()["error"] == "invalid_cursor"


async def test_admin_routes_answer_404_for_unknown_tenants_and_keys(admin_client: httpx.AsyncClient):
    for method, path in [
        ("GET", "/v1/tenants/ten_nope"),
        ("DELETE", "/v1/tenants/ten_nope"),
        ("POST", "/v1/tenants/ten_nope/keys"),
        ("GET", "/v1/tenants/ten_nope/keys"),
        ("DELETE", "/v1/tenants/ten_nope/keys/key_nope"),
    ]:
        response = await admin_client.request(method, path)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["error"] == "not_found"
