"""Minting host-app tokens for the tests, with PyJWT (what a host application does)."""

from __future__ import annotations

import secrets
import time
from typing import Any

import jwt

ISSUER = "https://crm.example"
HS_SECRET = "hs-" + secrets.token_urlsafe(40)  # > 32 bytes


def claims(**overrides: Any) -> dict[str, Any]:
    """Valid claims: issued now, expiring in 5 minutes, for user ``u-1`` of :data:`ISSUER`."""
    now = int(time.time())
    base: dict[str, Any] = {"iss": ISSUER, "sub": "u-1", "iat": now, "exp": now + 300}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not ...}


def hs256(secret: str = HS_SECRET, **overrides: Any) -> str:
    return jwt.encode(claims(**overrides), secret, algorithm="HS256")


def hs256_settings(**overrides: Any) -> dict[str, Any]:
    """A PUT /v1/tenants/{id}/jwt body for an HS256 verifier of :data:`ISSUER`."""
    body: dict[str, Any] = {"kind": "hs256", "secret": HS_SECRET, "issuer": ISSUER}
    body.update(overrides)
    return body
