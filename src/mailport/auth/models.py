"""A tenant's JWT verifier as the rest of mailport sees it (no I/O, no ORM)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from mailport.crypto import Secret

JwtKind = Literal["hs256", "jwks"]

HS_ALGORITHMS = ("HS256",)
JWKS_ALGORITHMS = ("RS256", "RS384", "RS512", "ES256", "ES384", "PS256")
DEFAULT_JWKS_ALGORITHMS = ("RS256", "ES256")
MIN_HS256_SECRET_BYTES = 32  # RFC 7518 3.2: a key at least as long as the hash output


@dataclass(frozen=True)
class JwtVerifier:
    """How one tenant's host application signs its users' tokens.

    ``secret`` (kind ``hs256``) stays sealed until a token is verified, and never prints.
    ``issuer`` None: the verifier takes tokens that carry no ``iss``. ``tenant_value`` None: the
    tenant claim must hold the tenant's id.
    """

    tenant_id: str
    kind: JwtKind
    algorithms: tuple[str, ...]
    secret: Secret | None = field(default=None, repr=False)
    jwks_url: str | None = None
    issuer: str | None = None
    audience: str | None = None
    leeway_seconds: int = 30
    owner_claim: str = "sub"
    tenant_claim: str | None = None
    tenant_value: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def expected_tenant_value(self) -> str:
        """What the tenant claim must hold: ``tenant_value``, else the tenant's id."""
        return self.tenant_value or self.tenant_id

    @property
    def has_secret(self) -> bool:
        return self.secret is not None
