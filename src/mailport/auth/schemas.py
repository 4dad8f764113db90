"""The JWT verifier's request and response bodies (``/v1/tenants/{id}/jwt``, ``mailport apply``).

:class:`JwtSettings` is also what Python callers pass to ``TenantService.set_jwt``: the checks
that need no I/O live here once (kind and its fields, secret length, algorithm list); the JWKS
URL's host is vetted by the service, which holds the host guard.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, SecretStr, model_validator

from mailport.auth.models import (
    DEFAULT_JWKS_ALGORITHMS,
    HS_ALGORITHMS,
    JWKS_ALGORITHMS,
    MIN_HS256_SECRET_BYTES,
    JwtVerifier,
)
from mailport.crypto.secret_input import SecretText
from mailport.validation import HttpUrl, RequestModel

HsSecret = Annotated[SecretStr, SecretText(min_length=1, max_length=4096)]
ClaimName = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:/-]+$")]


class JwtSettings(RequestModel):
    """A tenant's verifier: an HS256 shared secret, or the public keys at a JWKS URL."""

    kind: Literal["hs256", "jwks"] = Field(description="`hs256`: a shared secret; `jwks`: keys from a URL")
    secret: HsSecret | None = Field(
        None,
        description="kind `hs256`: the shared secret, at least 32 bytes; never returned. Omitted "
        "on a PUT that keeps an `hs256` verifier: the stored secret stays.",
    )
    jwks_url: HttpUrl | None = Field(
        None, description="kind `jwks`: an https URL serving a JSON Web Key Set (http only for loopback)"
    )
    algorithms: list[str] | None = Field(
        None,
        description="Accepted `alg` values. `hs256`: `HS256`. `jwks`: among "
        + ", ".join(JWKS_ALGORITHMS)
        + " (default RS256, ES256).",
    )
    issuer: str | None = Field(
        None, min_length=1, max_length=500, description="The `iss` tokens carry (which tenant a token is for)"
    )
    audience: str | None = Field(
        None, min_length=1, max_length=500, description="When set, tokens must list it in `aud`"
    )
    leeway_seconds: int = Field(30, ge=0, le=600, description="Clock skew allowed on exp, nbf, iat")
    owner_claim: ClaimName = Field("sub", description="The claim naming the owner (the host app's user id)")
    tenant_claim: ClaimName | None = Field(
        None, description="A claim naming the tenant (tells tenants sharing an issuer apart)"
    )
    tenant_value: str | None = Field(
        None, min_length=1, max_length=200, description="What the tenant claim holds (default: the tenant id)"
    )

    @model_validator(mode="after")
    def _consistent(self) -> JwtSettings:
        if self.kind == "hs256":
            if self.jwks_url is not None:
                raise ValueError("an hs256 verifier has a secret, not a jwks_url")
            if self.secret is not None and (
                len(self.secret.get_secret_value().encode("utf-8")) < MIN_HS256_SECRET_BYTES
            ):
                raise ValueError(f"an HS256 secret has at least {MIN_HS256_SECRET_BYTES} bytes")
            allowed: tuple[str, ...] = HS_ALGORITHMS
            self.algorithms = list(self.algorithms or HS_ALGORITHMS)
        else:
            if self.secret is not None:
                raise ValueError("a jwks verifier has a jwks_url, not a secret")
            if self.jwks_url is None:
                raise ValueError("a jwks verifier needs jwks_url")
            allowed = JWKS_ALGORITHMS
            self.algorithms = list(self.algorithms or DEFAULT_JWKS_ALGORITHMS)
        wrong = [a for a in self.algorithms if a not in allowed]
        if wrong or not self.algorithms:
            raise ValueError(f"algorithms for {self.kind} are among {', '.join(allowed)}; not {wrong}")
        self.algorithms = sorted(set(self.algorithms), key=self.algorithms.index)
        if self.tenant_value is not None and self.tenant_claim is None:
            raise ValueError("tenant_value needs tenant_claim")
        return self


class JwtRead(BaseModel):
    """A verifier as the API shows it: never the secret, only whether there is one."""

    tenant_id: str
    kind: Literal["hs256", "jwks"]
    has_secret: bool
    jwks_url: str | None
    algorithms: list[str]
    issuer: str | None
    audience: str | None
    leeway_seconds: int
    owner_claim: str
    tenant_claim: str | None
    tenant_value: str | None
    created_at: datetime | None
    updated_at: datetime | None

    @classmethod
    def of(cls, verifier: JwtVerifier) -> JwtRead:
        return cls.model_validate(
            {
                **{k: getattr(verifier, k) for k in cls.model_fields if k != "has_secret"},
                "algorithms": list(verifier.algorithms),
                "has_secret": verifier.has_secret,
            }
        )
