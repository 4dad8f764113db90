"""Verify a JWT with PyJWT against one tenant's verifier, and map every refusal to its code.

PyJWT does the cryptography and the registered claims (``exp``, ``nbf``, ``iat``, ``iss``,
``aud``); this module chooses what it is asked to accept — only the verifier's algorithms, and
for a JWKS only the algorithm the token names when the key allows it — and translates PyJWT's
exceptions, once, into :class:`~mailport.errors.TokenRejectedError` subclasses.
"""

from __future__ import annotations

from typing import Any

import jwt

from mailport.auth.models import JwtVerifier
from mailport.errors import (
    TokenAlgorithmError,
    TokenAudienceError,
    TokenClaimsError,
    TokenExpiredError,
    TokenIssuerError,
    TokenNotYetValidError,
    TokenRejectedError,
)

# PyJWT's failures, most specific first (subclasses before their bases).
_REFUSALS: tuple[tuple[type[jwt.PyJWTError], type[TokenRejectedError], str], ...] = (
    (jwt.ExpiredSignatureError, TokenExpiredError, "the token has expired"),
    (jwt.ImmatureSignatureError, TokenNotYetValidError, "the token is not valid yet (nbf or iat ahead)"),
    (jwt.InvalidIssuerError, TokenIssuerError, "the token's issuer is not the verifier's"),
    (jwt.InvalidAudienceError, TokenAudienceError, "the token's audience is not the verifier's"),
    (jwt.InvalidAlgorithmError, TokenAlgorithmError, "the token's algorithm is not accepted"),
    (jwt.InvalidKeyError, TokenAlgorithmError, "the token's algorithm does not fit the verifier's key"),
    (jwt.InvalidIssuedAtError, TokenClaimsError, "the token's iat is not a number"),
    (jwt.InvalidSignatureError, TokenRejectedError, "the token's signature does not verify"),
)


def signed_with(header: dict[str, Any]) -> str:
    """The header's ``alg``; ``token_algorithm`` for an unsigned token (``none``), before any
    tenant is looked up for it."""
    alg = header.get("alg")
    if not isinstance(alg, str) or alg.lower() == "none":
        raise TokenAlgorithmError("unsigned tokens (alg none) are refused")
    return alg


def token_algorithm(header: dict[str, Any], verifier: JwtVerifier) -> str:
    """The header's ``alg`` when the verifier accepts it; ``token_algorithm`` otherwise (``none``
    never; an HS256 token against a JWKS verifier: the HS/RS confusion)."""
    alg = signed_with(header)
    if alg not in verifier.algorithms:
        raise TokenAlgorithmError(
            f"the token is signed with {alg[:20]!r}; this tenant accepts {', '.join(verifier.algorithms)}"
        )
    return alg


def decode(token: str, key: Any, alg: str, verifier: JwtVerifier) -> dict[str, Any]:
    """The verified claims (signature, ``exp`` required, ``nbf``/``iat``, ``iss``/``aud`` when
    configured, within the leeway); a :class:`TokenRejectedError` subclass otherwise."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[alg],
            issuer=verifier.issuer,
            audience=verifier.audience,
            leeway=verifier.leeway_seconds,
            options={
                "require": ["exp"],
                "verify_iss": verifier.issuer is not None,
                "verify_aud": verifier.audience is not None,
            },
        )
    except jwt.MissingRequiredClaimError as exc:
        missing: dict[str, type[TokenRejectedError]] = {"aud": TokenAudienceError, "iss": TokenIssuerError}
        raise missing.get(exc.claim, TokenClaimsError)(f"the token has no {exc.claim!r} claim") from exc
    except jwt.PyJWTError as exc:
        for foreign, ours, message in _REFUSALS:
            if isinstance(exc, foreign):
                raise ours(message) from exc
        raise TokenRejectedError(f"the token does not verify ({type(exc).__name__})") from exc
    return claims


def owner_of(claims: dict[str, Any], verifier: JwtVerifier) -> str:
    """The owner claim's value (text, or an integer id as text); ``token_claims`` otherwise."""
    value = claims.get(verifier.owner_claim)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip() or len(value) > 200 or not value.isprintable():
        raise TokenClaimsError(f"the token has no usable owner claim {verifier.owner_claim!r}")
    return value


def names_tenant(claims: dict[str, Any], verifier: JwtVerifier) -> bool:
    """Does the token's tenant claim hold this verifier's tenant (True without a tenant claim)?"""
    if verifier.tenant_claim is None:
        return True
    return claims.get(verifier.tenant_claim) == verifier.expected_tenant_value
