"""``GET/PUT/DELETE /v1/tenants/{id}/jwt``: who may call them, what they check, what they never
show; tenants sharing an issuer; what verifying costs the database."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import event

from mailport.api.deps import Caller, require_tenant_key
from mailport.auth.schemas import JwtSettings
from mailport.bootstrap import Services
from mailport.errors import OwnerForbiddenError
from tests.fixtures.api import NewTenantClient, SecretWatch, TenantHandle
from tests.integration.auth.test_hs256 import bearer
from tests.integration.auth.tokens import HS_SECRET, ISSUER, hs256, hs256_settings


async def test_the_secret_is_stored_but_never_shown(
    services: Services, tenant: TenantHandle, tenant_client: httpx.AsyncClient, secret_watch: SecretWatch
):
    secret_watch.add(HS_SECRET)  # checked in every response body and log line at teardown
    put = await tenant_client.put(f"/v1/tenants/{tenant.id}/jwt", json=hs256_settings(leeway_seconds=5))
    assert put.status_code == 200 and put.json()["has_secret"] is True and "secret" not in put.json()
    got = await tenant_client.get(f"/v1/tenants/{tenant.id}/jwt")
    assert got.json() == put.json() and got.json()["leeway_seconds"] == 5
    verifier = await services.tenants.get_jwt(tenant.id)
    assert verifier is not None and verifier.secret is not None and verifier.secret.reveal() == HS_SECRET
    assert HS_SECRET not in repr(verifier) and HS_SECRET not in str(verifier)
    assert HS_SECRET not in repr(JwtSettings(**hs256_settings()))
    # Omitting the secret on a later PUT keeps it: tokens signed with it still pass.
    again = await tenant_client.put(f"/v1/tenants/{tenant.id}/jwt", json={"kind": "hs256", "issuer": ISSUER})
    assert again.status_code == 200 and again.json()["has_secret"] is True
    assert (await services.tenants.authenticate_jwt(hs256())).tenant_id == tenant.id


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "hs256", "secret": "too-short"}, "body"),
        ({"kind": "hs256"}, "secret"),
        ({"kind": "hs256", "secret": HS_SECRET, "algorithms": ["RS256"]}, "body"),
        ({"kind": "jwks"}, "body"),
        ({"kind": "jwks", "jwks_url": "https://keys.example/jwks", "secret": HS_SECRET}, "body"),
        ({"kind": "jwks", "jwks_url": "https://keys.example/jwks", "algorithms": ["HS256"]}, "body"),
        ({"kind": "jwks", "jwks_url": "https://keys.example/jwks", "algorithms": ["none"]}, "body"),
        ({"kind": "jwks", "jwks_url": "ftp://keys.example/jwks"}, "jwks_url"),
        ({"kind": "hs256", "secret": HS_SECRET, "tenant_value": "x"}, "body"),
        ({"kind": "hs256", "secret": HS_SECRET, "owner_claim": "sub claim"}, "owner_claim"),
        ({"kind": "rsa", "secret": HS_SECRET}, "kind"),
    ],
)
async def test_bad_settings_are_a_422(tenant: TenantHandle, tenant_client: httpx.AsyncClient, body, field):
    response = await tenant_client.put(f"/v1/tenants/{tenant.id}/jwt", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["hint"]
    assert field in str(response.json().get("field", "body")), response.json()
    assert HS_SECRET not in response.text


async def test_who_may_configure_the_verifier(
    app,
    services: Services,
    admin_client: httpx.AsyncClient,
    tenant: TenantHandle,
    tenant_client: httpx.AsyncClient,
    new_tenant_client: NewTenantClient,
):
    url = f"/v1/tenants/{tenant.id}/jwt"
    assert (await tenant_client.get(url)).status_code == 404  # none yet
    assert (await admin_client.put(url, json=hs256_settings())).status_code == 200
    assert (await tenant_client.get(url)).status_code == 200
    other, other_client = await new_tenant_client()
    for method in ("GET", "PUT", "DELETE"):  # another tenant's key: as if there were no tenant
        response = await other_client.request(method, url, json=hs256_settings() if method == "PUT" else None)
        assert response.status_code == 404 and response.json()["error"] == "not_found"
    async with bearer(app, hs256()) as user:  # the tenant's own user: tenant-wide configuration
        for method in ("GET", "PUT", "DELETE"):
            response = await user.request(method, url, json=hs256_settings() if method == "PUT" else None)
            assert response.status_code == 403 and response.json()["error"] == "owner_forbidden"
        assert (await user.get("/v1/mailboxes")).status_code == 200
        assert (await tenant_client.delete(url)).status_code == 204
        refused = await user.get("/v1/mailboxes")  # at once: the cache was cleared
        assert refused.status_code == 401 and refused.json()["error"] == "token_issuer"
    assert (await tenant_client.delete(url)).status_code == 404
    assert await services.tenants.get_jwt(tenant.id) is None
    assert (await admin_client.get("/v1/tenants/ten_00000000000000000000000000/jwt")).status_code == 404


async def test_require_tenant_key_refuses_a_user_token():
    key = Caller(tenant_id="ten_x", key_prefix="mp_live_abcd")
    assert await require_tenant_key(key) is key
    with pytest.raises(OwnerForbiddenError):
        await require_tenant_key(Caller(tenant_id="ten_x", key_prefix="jwt", owner="u-1"))


async def test_two_tenants_sharing_an_issuer_are_told_apart_by_the_tenant_claim(
    services: Services, tenant: TenantHandle, tenant_client, new_tenant_client: NewTenantClient
):
    other, other_client = await new_tenant_client()
    shared = hs256_settings(tenant_claim="org")  # the tenant claim holds the tenant id by default
    assert (await tenant_client.put(f"/v1/tenants/{tenant.id}/jwt", json=shared)).status_code == 200
    assert (await other_client.put(f"/v1/tenants/{other.id}/jwt", json=shared)).status_code == 200
    assert (await services.tenants.authenticate_jwt(hs256(org=tenant.id))).tenant_id == tenant.id
    assert (await services.tenants.authenticate_jwt(hs256(org=other.id, sub="u-9"))).tenant_id == other.id
    for token in (hs256(org="ten_nobody"), hs256()):
        with pytest.raises(Exception) as refused:
            await services.tenants.authenticate_jwt(token)
        assert getattr(refused.value, "code", None) == "invalid_token"

    # A third tenant without a tenant claim would make tokens ambiguous: refused.
    third, third_client = await new_tenant_client()
    response = await third_client.put(f"/v1/tenants/{third.id}/jwt", json=hs256_settings())
    assert response.status_code == 409 and response.json()["field"] == "tenant_claim"
    # …and one expecting the same claim value as another.
    clash = hs256_settings(tenant_claim="org", tenant_value=tenant.id)
    response = await third_client.put(f"/v1/tenants/{third.id}/jwt", json=clash)
    assert response.status_code == 409 and response.json()["field"] == "tenant_value"


@contextlib.contextmanager
def counting_queries(services: Services) -> Iterator[list[str]]:
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    engine = services.database.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


async def test_verifying_costs_at_most_one_query(services: Services, tenant: TenantHandle, tenant_client):
    assert (await tenant_client.put(f"/v1/tenants/{tenant.id}/jwt", json=hs256_settings())).status_code == 200
    with counting_queries(services) as statements:
        await services.tenants.authenticate_jwt(hs256())
    assert len([s for s in statements if "tenant_jwt" in s]) <= 1
    assert len(statements) <= 1
    with counting_queries(services) as statements:
        for _ in range(20):
            await services.tenants.authenticate_jwt(hs256())
    assert statements == []  # cached for a few seconds
