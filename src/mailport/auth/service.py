"""Which tenant a host application's JWT belongs to, and whose it is; the verifiers' settings.

A token picks its tenant by its ``iss`` (read unverified, only to choose candidates): the
tenants whose verifier has that issuer; when several share it, the one whose tenant claim the
token carries with the verifier's value. It is then verified with that tenant's verifier only
(:mod:`mailport.auth.verify`). A token whose issuer no tenant accepts is ``token_issuer``; one
that still fits several tenants, or none of several, is ``invalid_token``.

Verifiers are looked up by issuer once per ``cache_seconds`` (one query for every tenant of that
issuer), so a burst of requests costs the database at most one query each, and usually none;
saving or deleting a verifier clears the cache in this process (another process sees the change
within ``cache_seconds``).

Which verifiers may share an issuer (decided here, documented in docs/host-apps.md): any number,
as long as each has a tenant claim and no two expect the same claim and value. So a verifier
without a tenant claim is the only one for its issuer — in particular, a verifier with neither
issuer nor tenant claim is the only one without an issuer.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import httpx

from mailport.auth.jwks import JwksCache
from mailport.auth.models import JwtVerifier
from mailport.auth.repository import JwtRepository
from mailport.auth.schemas import JwtSettings
from mailport.auth.tokens import unverified_parts
from mailport.auth.verify import decode, names_tenant, owner_of, signed_with, token_algorithm
from mailport.crypto import Secret
from mailport.errors import (
    ConflictError,
    InputError,
    NotFoundError,
    TokenAlgorithmError,
    TokenClaimsError,
    TokenIssuerError,
    TokenKeyUnknownError,
    TokenRejectedError,
)
from mailport.net.addresses import blocked_reason
from mailport.net.guard import HostGuard


@dataclass(frozen=True)
class JwtIdentity:
    """Who a verified token speaks for."""

    tenant_id: str
    owner: str


class JwtService:
    def __init__(
        self,
        repository: JwtRepository,
        jwks: JwksCache,
        *,
        guard: HostGuard,
        cache_seconds: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.repository = repository
        self.jwks = jwks
        self._guard = guard
        self._cache_seconds = cache_seconds
        self._monotonic = monotonic
        self._by_issuer: dict[str | None, tuple[float, list[JwtVerifier]]] = {}

    # --- authentication -----------------------------------------------------------------

    async def authenticate(self, token: str) -> JwtIdentity:
        header, unverified = unverified_parts(token)
        signed_with(header)  # alg none is refused before anything is looked up
        issuer = unverified.get("iss")
        if issuer is not None and not isinstance(issuer, str):
            raise TokenIssuerError("the token's iss is not text")
        verifier = self._choose(await self._verifiers(issuer), unverified, issuer)
        alg = token_algorithm(header, verifier)
        claims = decode(token, await self._key(verifier, header, alg), alg, verifier)
        if not names_tenant(claims, verifier):
            raise TokenClaimsError(f"the token's {verifier.tenant_claim!r} claim does not name this tenant")
        return JwtIdentity(tenant_id=verifier.tenant_id, owner=owner_of(claims, verifier))

    async def _verifiers(self, issuer: str | None) -> list[JwtVerifier]:
        now = self._monotonic()
        cached = self._by_issuer.get(issuer)
        if cached is not None and now < cached[0]:
            return cached[1]
        found = await self.repository.by_issuer(issuer)
        if len(self._by_issuer) > 1000:  # issuers come from tokens: never an unbounded dict
            self._by_issuer.clear()
        self._by_issuer[issuer] = (now + self._cache_seconds, found)
        return found

    @staticmethod
    def _choose(candidates: list[JwtVerifier], claims: dict[str, object], issuer: str | None) -> JwtVerifier:
        if not candidates:
            raise TokenIssuerError(
                "no tenant accepts tokens without an issuer"
                if issuer is None
                else f"no tenant accepts tokens from issuer {issuer[:200]!r}"
            )
        if len(candidates) == 1:
            return candidates[0]
        named = [v for v in candidates if v.tenant_claim is not None and names_tenant(dict(claims), v)]
        if len(named) != 1:
            raise TokenRejectedError(
                "several tenants take tokens from this issuer and the token's tenant claim names "
                + ("none of them" if not named else "more than one")
            )
        return named[0]

    async def _key(self, verifier: JwtVerifier, header: dict[str, object], alg: str) -> object:
        if verifier.kind == "hs256":
            if verifier.secret is None:
                raise TokenRejectedError("the tenant's HS256 verifier has no secret")
            return verifier.secret.reveal().encode("utf-8")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise TokenKeyUnknownError("the token's kid is not text")
        assert verifier.jwks_url is not None
        key = await self.jwks.key(verifier.jwks_url, kid)
        if key is None:
            raise TokenKeyUnknownError(
                "the token names no key and the JWKS holds several"
                if kid is None
                else f"key {kid[:100]!r} is not in the tenant's JWKS"
            )
        if key.alg is not None and key.alg != alg:
            raise TokenAlgorithmError(f"the key is for {key.alg[:20]}, the token says {alg}")
        return key.key

    def invalidate(self) -> None:
        """Forget cached verifiers and key sets (a verifier was saved or deleted)."""
        self._by_issuer.clear()

    # --- settings -----------------------------------------------------------------------

    async def get(self, tenant_id: str) -> JwtVerifier:
        found = await self.repository.get(tenant_id)
        if found is None:
            raise NotFoundError(f"tenant {tenant_id} has no JWT verifier")
        return found

    async def set(self, tenant_id: str, settings: JwtSettings, *, now: datetime) -> JwtVerifier:
        """Check ``settings`` (secret kept when omitted, JWKS URL vetted, issuer sharing) and
        store them as the tenant's verifier."""
        previous = await self.repository.get(tenant_id)
        secret: Secret | None = None
        if settings.kind == "hs256":
            if settings.secret is not None:
                secret = Secret(settings.secret.get_secret_value())
            elif previous is not None and previous.kind == "hs256" and previous.secret is not None:
                secret = previous.secret
            else:
                raise InputError("an hs256 verifier needs its secret", field="secret")
        else:
            assert settings.jwks_url is not None
            await self.vet_jwks_url(settings.jwks_url)
        verifier = JwtVerifier(
            tenant_id=tenant_id,
            algorithms=tuple(settings.algorithms or ()),
            secret=secret,
            updated_at=now,
            **settings.model_dump(exclude={"algorithms", "secret"}),
        )
        await self._check_sharing(verifier)
        saved = await self.repository.save(verifier)
        self.invalidate()
        if previous is not None and previous.jwks_url:
            self.jwks.forget(previous.jwks_url)
        return saved

    async def delete(self, tenant_id: str) -> None:
        previous = await self.repository.get(tenant_id)
        if previous is None or not await self.repository.delete(tenant_id):
            raise NotFoundError(f"tenant {tenant_id} has no JWT verifier")
        self.invalidate()
        if previous.jwks_url:
            self.jwks.forget(previous.jwks_url)

    async def vet_jwks_url(self, url: str) -> None:
        """An https URL whose host the guard allows; http only when every address is loopback
        (and the guard allows loopback: ``MAILPORT_ALLOW_PRIVATE_HOSTS`` or ``ALLOWED_HOSTS``)."""
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, ValueError) as exc:
            raise InputError(f"{url!r} is not a valid URL", field="jwks_url") from exc
        if parsed.userinfo or parsed.fragment:
            raise InputError("a JWKS URL carries no user name, password or #fragment", field="jwks_url")
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        vetted = await self._guard.vet(parsed.host, port, field="jwks_url")
        if parsed.scheme != "https" and any(blocked_reason(a) != "loopback" for a in vetted.addresses):
            raise InputError("a JWKS URL is https (plain http only on loopback)", field="jwks_url")

    async def _check_sharing(self, verifier: JwtVerifier) -> None:
        """Refuse a verifier that would make the tenant of some token ambiguous (module docstring)."""
        sharing = await self.repository.by_issuer(verifier.issuer)
        others = [v for v in sharing if v.tenant_id != verifier.tenant_id]
        if not others:
            return
        if verifier.tenant_claim is None or any(v.tenant_claim is None for v in others):
            raise ConflictError(
                "another tenant already takes tokens from this issuer; tenants sharing an issuer "
                "each need a tenant_claim",
                field="tenant_claim",
                hint="Set tenant_claim (and tenant_value) so that a token names its tenant.",
            )
        same = (verifier.tenant_claim, verifier.expected_tenant_value)
        if any((v.tenant_claim, v.expected_tenant_value) == same for v in others):
            raise ConflictError(
                "another tenant of this issuer expects the same tenant claim and value",
                field="tenant_value",
                hint="Give each tenant its own tenant_value.",
            )
