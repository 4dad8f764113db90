"""JWKS verifiers through the real API, against a local JWKS server: RS256 and ES256 tokens,
key rotation, the refresh limit on unknown kids, Cache-Control, the host guard."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import uuid

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from fastapi import FastAPI

from mailport.auth.jwks import JwksCache
from mailport.auth.repository import JwtRepository
from mailport.auth.schemas import JwtSettings
from mailport.auth.service import JwtService
from mailport.bootstrap import Services
from mailport.errors import HostNotAllowedError, JwksUnavailableError
from mailport.net.guard import HostGuard
from tests.fixtures.api import TenantHandle
from tests.integration.auth.jwks_server import HostKey, JwksServer
from tests.integration.auth.test_hs256 import bearer
from tests.integration.auth.tokens import ISSUER, claims


class Ticker:
    """A monotonic clock the test moves (``ticker.now += 31``)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def ticker(services: Services) -> Ticker:
    """The app's JWKS cache on a clock the test moves (injected: the service's own attribute)."""
    clock = Ticker()
    assert services.tenants.jwt is not None
    services.tenants.jwt.jwks = JwksCache(services.guard, clock=clock, refresh_interval=30, min_ttl=60)
    return clock


async def put_jwks(
    client: httpx.AsyncClient, tenant: TenantHandle, server: JwksServer, **extra: object
) -> None:
    body = {"kind": "jwks", "jwks_url": server.url, "issuer": ISSUER, **extra}
    response = await client.put(f"/v1/tenants/{tenant.id}/jwt", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["has_secret"] is False


async def status_of(app: FastAPI, token: str) -> tuple[int, str | None]:
    async with bearer(app, token) as client:
        response = await client.get("/v1/mailboxes")
    return response.status_code, None if response.status_code == 200 else response.json()["error"]


@pytest.mark.parametrize("make_key", [HostKey.rsa, HostKey.ec], ids=["RS256", "ES256"])
async def test_tokens_signed_with_a_published_key_are_accepted(
    app, tenant, tenant_client, jwks_server: JwksServer, ticker: Ticker, make_key
):
    key = make_key("k1")
    jwks_server.publish(key)
    await put_jwks(tenant_client, tenant, jwks_server)
    assert await status_of(app, key.sign(claims(sub="alice"))) == (200, None)
    assert await status_of(app, key.sign(claims(sub="bob"))) == (200, None)
    assert jwks_server.requests == 1  # the set was fetched once and cached


async def test_key_rotation(app, tenant, tenant_client, jwks_server: JwksServer, ticker: Ticker):
    old, new = HostKey.rsa("2026-01"), HostKey.rsa("2026-02")
    jwks_server.publish(old)
    await put_jwks(tenant_client, tenant, jwks_server)
    assert await status_of(app, old.sign(claims())) == (200, None)

    # The host app signs with a key it has not published yet: refused, after one refetch.
    assert await status_of(app, new.sign(claims())) == (401, "token_key_unknown")
    # Published now, but the refetch for that miss was just made: still refused until the interval…
    jwks_server.publish(old, new)
    assert await status_of(app, new.sign(claims())) == (401, "token_key_unknown")
    fetched = jwks_server.requests
    ticker.now += 31  # …after which one miss fetches the set again, and the new key works
    assert await status_of(app, new.sign(claims())) == (200, None)
    assert jwks_server.requests == fetched + 1
    assert await status_of(app, old.sign(claims())) == (200, None)

    # The old key is withdrawn: accepted while the cached set lives, refused once it expires.
    jwks_server.publish(new)
    assert await status_of(app, old.sign(claims())) == (200, None)
    ticker.now += 301  # the server's max-age=300
    assert await status_of(app, old.sign(claims())) == (401, "token_key_unknown")
    assert await status_of(app, new.sign(claims())) == (200, None)


async def test_a_flood_of_unknown_kids_fetches_the_set_at_most_once_per_interval(
    app, tenant, tenant_client, jwks_server: JwksServer, ticker: Ticker
):
    key = HostKey.rsa("real")
    jwks_server.publish(key)
    await put_jwks(tenant_client, tenant, jwks_server)
    forged = [key.sign(claims(), kid=f"made-up-{i}") for i in range(40)]
    results = await asyncio.gather(*(status_of(app, token) for token in forged))
    assert set(results) == {(401, "token_key_unknown")}
    assert jwks_server.requests <= 2  # the first fetch and at most one refetch
    ticker.now += 31
    await asyncio.gather(*(status_of(app, token) for token in forged[:10]))
    assert jwks_server.requests <= 3


async def test_cache_control_max_age_is_honoured_within_bounds(
    app, tenant, tenant_client, jwks_server: JwksServer, ticker: Ticker
):
    key = HostKey.ec("k")
    jwks_server.publish(key)
    jwks_server.cache_control = "public, max-age=5"  # below the cache's minimum of 60 s
    await put_jwks(tenant_client, tenant, jwks_server)
    assert await status_of(app, key.sign(claims())) == (200, None)
    ticker.now += 10
    assert await status_of(app, key.sign(claims())) == (200, None)
    assert jwks_server.requests == 1  # 5 s was raised to 60 s
    ticker.now += 55
    assert await status_of(app, key.sign(claims())) == (200, None)
    assert jwks_server.requests == 2


async def test_hs_rs_key_confusion_is_refused(app, tenant, tenant_client, jwks_server: JwksServer, ticker):
    """An HS256 token whose HMAC secret is the RSA public key (which anyone can fetch)."""
    key = HostKey.rsa("k")
    jwks_server.publish(key)
    await put_jwks(tenant_client, tenant, jwks_server)
    public_pem = key.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "HS256", "kid": "k"}).encode())
    signing_input = f"{header}.{b64(json.dumps(claims()).encode())}"
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    assert await status_of(app, f"{signing_input}.{b64(signature)}") == (401, "token_algorithm")
    # An algorithm outside the verifier's list, with the real key, is refused the same way.
    rs512 = HostKey("k", "RS512", key.private)
    assert await status_of(app, rs512.sign(claims())) == (401, "token_algorithm")
    # An accepted algorithm whose key type is not the named key's (ES256 on the RSA key's kid).
    ec_on_rsa_kid = HostKey("k", "ES256", HostKey.ec("other").private)
    assert await status_of(app, ec_on_rsa_kid.sign(claims())) == (401, "token_algorithm")


async def test_a_key_declaring_another_algorithm_is_refused(
    app, tenant, tenant_client, jwks_server: JwksServer, ticker
):
    key = HostKey.rsa("k", alg="RS384")  # the JWK says RS384
    jwks_server.publish(key)
    await put_jwks(tenant_client, tenant, jwks_server, algorithms=["RS256", "RS384"])
    assert await status_of(app, key.sign(claims())) == (200, None)
    as_rs256 = HostKey("k", "RS256", key.private)
    assert await status_of(app, as_rs256.sign(claims())) == (401, "token_algorithm")


async def test_a_token_without_kid_needs_a_single_key_set(
    app, tenant, tenant_client, jwks_server: JwksServer, ticker
):
    one, two = HostKey.rsa("one"), HostKey.rsa("two")
    jwks_server.publish(one)
    await put_jwks(tenant_client, tenant, jwks_server)
    assert await status_of(app, one.sign(claims(), kid=None)) == (200, None)
    jwks_server.publish(one, two)
    ticker.now += 301
    assert await status_of(app, one.sign(claims(), kid=None)) == (401, "token_key_unknown")


async def test_a_jwks_server_that_fails(app, tenant, tenant_client, jwks_server: JwksServer, ticker):
    key = HostKey.rsa("k")
    jwks_server.publish(key)
    jwks_server.status = 500
    await put_jwks(tenant_client, tenant, jwks_server)
    async with bearer(app, key.sign(claims())) as client:
        response = await client.get("/v1/mailboxes")
    assert response.status_code == 503 and response.json()["error"] == "jwks_unavailable"
    jwks_server.status = 200
    ticker.now += 31
    assert await status_of(app, key.sign(claims())) == (200, None)
    # Down again when the set expires: the keys held are kept, the users are not locked out.
    jwks_server.status = 500
    ticker.now += 301
    assert await status_of(app, key.sign(claims())) == (200, None)


async def test_the_host_guard_refuses_a_private_jwks_host(
    services: Services, tenant, jwks_server: JwksServer
):
    """With the service's default rules (no private hosts), a loopback JWKS URL is refused when
    it is set, and a stored one is never fetched."""
    strict = HostGuard()  # MAILPORT_ALLOW_PRIVATE_HOSTS unset
    jwks = JwksCache(strict)
    service = JwtService(JwtRepository(services.database, services.key_ring), jwks, guard=strict)
    settings = JwtSettings(kind="jwks", jwks_url=jwks_server.url, issuer=ISSUER)
    with pytest.raises(HostNotAllowedError) as refused:
        await service.set(tenant.id, settings, now=services.tenants.now())
    assert refused.value.details["field"] == "jwks_url"
    with pytest.raises(JwksUnavailableError) as unavailable:
        await jwks.key(jwks_server.url, "k")
    assert unavailable.value.details["reason"] == "host_not_allowed"
    assert jwks_server.requests == 0


async def test_http_is_only_for_loopback(tenant, tenant_client):
    body = {"kind": "jwks", "jwks_url": "http://93.184.215.14/jwks.json", "issuer": f"https://{uuid.uuid4()}"}
    response = await tenant_client.put(f"/v1/tenants/{tenant.id}/jwt", json=body)
    assert response.status_code == 422 and response.json()["field"] == "jwks_url"
