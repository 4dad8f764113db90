"""Learning the connected address from the id_token (aud, iss, exp checked)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest

from mailport.crypto import Secret
from mailport.errors import OAuthIdentityError
from mailport.oauth import OAuthApp, ProviderRegistry
from mailport.oauth.identity import email_from_claims, id_token_claims

NOW = datetime(2026, 1, 1, tzinfo=UTC)
REGISTRY = ProviderRegistry.load()
GOOGLE = REGISTRY.get("google")
MICROSOFT = REGISTRY.get("microsoft")
APP = OAuthApp("google", "client-1")
TID = "9188040d-6c67-4c5b-b112-36a304b66dad"


def token(**claims: Any) -> Secret:
    base = {"iss": "https://accounts.google.com", "aud": "client-1", "exp": NOW.timestamp() + 3600}
    base.update(claims)
    return Secret(jwt.encode({k: v for k, v in base.items() if v is not None}, "k" * 32, algorithm="HS256"))


def test_google_claims_and_email():
    claims = id_token_claims(token(email="Ann@Gmail.com"), GOOGLE, APP, now=NOW)
    assert email_from_claims(claims, GOOGLE) == "ann@gmail.com"
    claims = id_token_claims(token(iss="accounts.google.com", aud=["x", "client-1"]), GOOGLE, APP, now=NOW)
    assert claims["aud"] == ["x", "client-1"]


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"aud": "someone-else"}, "aud"),
        ({"iss": "https://evil.example"}, "issuer"),
        ({"exp": (NOW - timedelta(minutes=5)).timestamp()}, "expired"),
        ({"exp": None}, "expired"),
    ],
)
def test_bad_id_tokens_are_refused(claims, reason):
    with pytest.raises(OAuthIdentityError, match=reason):
        id_token_claims(token(**claims), GOOGLE, APP, now=NOW)


def test_not_a_jwt():
    with pytest.raises(OAuthIdentityError, match="not a JWT"):
        id_token_claims(Secret("abc"), GOOGLE, APP, now=NOW)
    with pytest.raises(OAuthIdentityError, match="decoded"):
        id_token_claims(Secret("a.!!!.c"), GOOGLE, APP, now=NOW)


def test_microsoft_issuer_follows_the_tenant_and_preferred_username():
    app = OAuthApp("microsoft", "client-1")
    issuer = f"https://login.microsoftonline.com/{TID}/v2.0"
    signed_in = token(iss=issuer, tid=TID, preferred_username="Bo@Outlook.com")
    claims = id_token_claims(signed_in, MICROSOFT, app, now=NOW)
    assert email_from_claims(claims, MICROSOFT) == "bo@outlook.com"
    with pytest.raises(OAuthIdentityError):
        id_token_claims(token(iss=issuer, tid="another"), MICROSOFT, app, now=NOW)


def test_unverified_or_missing_email_gives_none():
    assert email_from_claims({"email": "a@b.example", "email_verified": False}, GOOGLE) is None
    assert email_from_claims({"email": "not-an-address"}, GOOGLE) is None
    assert email_from_claims({"preferred_username": "a@b.example"}, GOOGLE) is None
