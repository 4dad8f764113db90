"""Users' tokens for the owner tests: a tenant's HS256 verifier set through the API (the
tenant's own key, ``PUT /v1/tenants/{id}/jwt``) and tokens signed for it with PyJWT."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import jwt

ISSUER = "https://crm.example"


class Minter:
    """Signs users' tokens for a tenant's HS256 verifier."""

    def __init__(self, secret: str) -> None:
        self.secret = secret

    def token(self, owner: str, **claims: Any) -> str:
        now = int(time.time())
        payload = {"iss": ISSUER, "sub": owner, "iat": now, "exp": now + 600, **claims}
        return jwt.encode(payload, self.secret, algorithm="HS256")


async def set_verifier(client: httpx.AsyncClient, tenant_id: str) -> Minter:
    """The tenant's own key sets its HS256 verifier; tokens name the tenant in ``tid``."""
    secret = uuid.uuid4().hex + uuid.uuid4().hex
    answer = await client.put(
        f"/v1/tenants/{tenant_id}/jwt",
        json={"kind": "hs256", "secret": secret, "issuer": ISSUER, "tenant_claim": "tid"},
    )
    assert answer.status_code == 200, answer.text
    return Minter(secret)
