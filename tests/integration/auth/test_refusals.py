"""Every refusal of a host-app token, through the real API: a 401 with its stable code and a
hint, never the token in the answer."""

from __future__ import annotations

import time

import jwt
import pytest

from mailport.auth.schemas import JwtSettings
from mailport.bootstrap import Services
from tests.fixtures.api import TenantHandle
from tests.integration.auth.test_hs256 import bearer
from tests.integration.auth.tokens import HS_SECRET, claims, hs256, hs256_settings

ORG = "acme-org"


def now() -> int:
    return int(time.time())


@pytest.fixture
async def verifier(tenant: TenantHandle, tenant_client) -> TenantHandle:
    """The tenant with an HS256 verifier of :data:`ISSUER` and audience ``mailport``."""
    body = hs256_settings(audience="mailport", tenant_claim="org", tenant_value="acme-org")
    response = await tenant_client.put(f"/v1/tenants/{tenant.id}/jwt", json=body)
    assert response.status_code == 200, response.text
    return tenant


def valid(**overrides: object) -> str:
    return hs256(aud="mailport", org="acme-org", **overrides)


def good_claims() -> dict[str, object]:
    return claims(aud="mailport", org="acme-org")


REFUSED = {
    "expired": (lambda: valid(exp=now() - 120, iat=now() - 600), "token_expired"),
    "nbf ahead": (lambda: valid(nbf=now() + 600), "token_not_yet_valid"),
    "iat ahead": (lambda: valid(iat=now() + 600, exp=now() + 900), "token_not_yet_valid"),
    "another issuer": (lambda: valid(iss="https://evil.example"), "token_issuer"),
    "no issuer": (lambda: valid(iss=...), "token_issuer"),
    "another audience": (lambda: hs256(aud="someone-else", org="acme-org"), "token_audience"),
    "no audience": (lambda: hs256(org="acme-org"), "token_audience"),
    "alg none": (lambda: jwt.encode(good_claims(), None, algorithm="none"), "token_algorithm"),
    "alg none, unknown issuer": (
        lambda: jwt.encode(claims(iss="https://unknown.example"), None, algorithm="none"),
        "token_algorithm",
    ),
    "HS512": (lambda: jwt.encode(good_claims(), HS_SECRET * 2, algorithm="HS512"), "token_algorithm"),
    "no owner claim": (lambda: valid(sub=...), "token_claims"),
    "empty owner": (lambda: valid(sub=""), "token_claims"),
    "no exp": (lambda: valid(exp=...), "token_claims"),
    "tenant claim mismatch": (lambda: hs256(aud="mailport", org="other-org"), "token_claims"),
    "no tenant claim": (lambda: hs256(aud="mailport"), "token_claims"),
    "bad signature": (lambda: valid(secret="x" * 40), "invalid_token"),
    "tampered payload": (lambda: _tampered(valid()), "invalid_token"),
    "garbage with a JSON header": (lambda: "eyJhbGciOiJIUzI1NiJ9.%%%.%%%", "invalid_token"),
}


def _tampered(token: str) -> str:
    header, _payload, signature = token.split(".")
    other = hs256(secret=HS_SECRET, sub="admin", aud="mailport", org="acme-org").split(".")[1]
    return f"{header}.{other}.{signature}"


@pytest.mark.parametrize("case", list(REFUSED), ids=list(REFUSED))
async def test_a_refused_token_is_a_401_with_its_code(app, verifier: TenantHandle, case: str):
    make, code = REFUSED[case]
    token = make()
    async with bearer(app, token) as client:
        response = await client.get("/v1/mailboxes")
    assert response.status_code == 401, response.text
    body = response.json()
    assert body["error"] == code and body["hint"]
    assert token not in response.text and token.split(".")[1] not in response.text


async def test_the_leeway_admits_small_clock_skew(app, verifier: TenantHandle):
    for token in (valid(exp=now() - 10), valid(nbf=now() + 10), valid(iat=now() + 10)):
        async with bearer(app, token) as client:
            assert (await client.get("/v1/mailboxes")).status_code == 200


async def test_integer_owner_ids_are_taken_as_text(app, services: Services, verifier: TenantHandle):
    assert services.tenants.jwt is not None
    identity = await services.tenants.authenticate_jwt(valid(uid=4711))
    assert identity.owner == "u-1"
    by_uid = hs256_settings(audience="mailport", owner_claim="uid", tenant_claim="org", tenant_value=ORG)
    await services.tenants.set_jwt(verifier.id, JwtSettings(**by_uid))  # the cache is cleared
    assert (await services.tenants.authenticate_jwt(valid(uid=4711))).owner == "4711"


async def test_api_keys_keep_working_beside_jwts(app, verifier: TenantHandle, tenant_client):
    assert (await tenant_client.get("/v1/mailboxes")).status_code == 200
    async with bearer(app, "mp_live_not-a-key") as client:
        response = await client.get("/v1/mailboxes")
    assert response.status_code == 401 and response.json()["error"] == "unauthorized"
