"""Which address did the user connect? In order: the id_token, a configured userinfo endpoint,
else the address the user typed (or the mailbox being reconnected).

Providers without OpenID Connect send neither an id_token nor offer userinfo; their tokens are
still good for XOAUTH2, so the address the user gave is used, marked unconfirmed
(:attr:`Identity.confirmed` False): the first IMAP/SMTP login with the token confirms it — the
mail server only accepts a token for the account it belongs to.

The id_token arrives directly from the token endpoint over TLS, so per OpenID Connect Core
3.1.3.7 (6.) the TLS server validation may stand in for checking its signature; we still check
``aud``, ``iss`` and ``exp``. Decoding an unsigned-checked JWT payload is a base64 decode of its
middle part, so no JOSE library is needed at run time.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from mailport.crypto import Secret
from mailport.errors import OAuthIdentityError
from mailport.oauth.client import OAuthClient, TokenResponse
from mailport.oauth.providers import OAuthApp, OAuthProvider

LEEWAY = timedelta(minutes=2)
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def id_token_claims(
    id_token: Secret, provider: OAuthProvider, app: OAuthApp, *, now: datetime
) -> dict[str, Any]:
    """The id_token's claims after the ``aud``, ``iss`` and ``exp`` checks."""
    parts = id_token.reveal().split(".")
    if len(parts) != 3:
        raise OAuthIdentityError(f"{provider.name} sent an id_token that is not a JWT")
    try:
        payload = parts[1] + "=" * (-len(parts[1]) % 4)
        claims = json.loads(base64.urlsafe_b64decode(payload.encode("ascii")))
    except (ValueError, UnicodeError) as exc:
        raise OAuthIdentityError(f"{provider.name} sent an id_token that cannot be decoded") from exc
    if not isinstance(claims, dict):
        raise OAuthIdentityError(f"{provider.name} sent an id_token without claims")
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    if app.client_id not in audiences:
        raise OAuthIdentityError(f"{provider.name}'s id_token was issued to another app (aud mismatch)")
    if provider.issuers and not _issuer_ok(str(claims.get("iss", "")), provider, claims):
        raise OAuthIdentityError(
            f"{provider.name}'s id_token has an unexpected issuer {claims.get('iss')!r}",
            hint="Check the provider's `issuers` in MAILPORT_OAUTH_PROVIDERS_FILE.",
        )
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or datetime.fromtimestamp(exp, now.tzinfo) + LEEWAY < now:
        raise OAuthIdentityError(f"{provider.name}'s id_token has expired or has no expiry")
    return claims


def _issuer_ok(issuer: str, provider: OAuthProvider, claims: dict[str, Any]) -> bool:
    tenant_id = str(claims.get("tid", ""))
    for expected in provider.issuers:
        if "{tenantid}" in expected:
            if tenant_id and expected.replace("{tenantid}", tenant_id) == issuer:
                return True
        elif expected == issuer:
            return True
    return False


def email_from_claims(claims: dict[str, Any], provider: OAuthProvider) -> str | None:
    if claims.get("email_verified") is False:
        return None
    for name in provider.email_claims:
        value = claims.get(name)
        if isinstance(value, str) and _EMAIL_RE.match(value):
            return value.lower()
    return None


@dataclass(frozen=True)
class Identity:
    """The connected address and whether the provider itself named it."""

    email: str
    confirmed: bool  # False: the user's own word, to be confirmed by the first mail login


async def connected_address(
    client: OAuthClient,
    provider: OAuthProvider,
    app: OAuthApp,
    tokens: TokenResponse,
    *,
    now: datetime,
    given: str | None = None,
) -> Identity:
    """The mailbox address the tokens belong to: id_token, then userinfo, then ``given``."""
    if tokens.id_token is not None:
        email = email_from_claims(id_token_claims(tokens.id_token, provider, app, now=now), provider)
        if email:
            return Identity(email, confirmed=True)
    if provider.userinfo_endpoint is not None:
        email = email_from_claims(await client.userinfo(provider, tokens.access_token), provider)
        if email:
            return Identity(email, confirmed=True)
    if given:
        return Identity(given.lower(), confirmed=False)
    raise OAuthIdentityError(
        f"{provider.name} did not tell which address was connected (no email in id_token or "
        "userinfo), and no address was given",
        hint="Give the mailbox address when starting the sign-in (`email`), or request the "
        "`openid email` scopes for this provider (MAILPORT_OAUTH_PROVIDERS_FILE).",
    )
