"""The pure parts of host-app JWTs: telling a JWT from a key, JWKS parsing, cache lifetimes,
the verifier's settings and its repr."""

from __future__ import annotations

import json

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pydantic import ValidationError

from mailport.auth.jwks import cache_seconds, parse_jwks
from mailport.auth.models import JwtVerifier
from mailport.auth.schemas import JwtRead, JwtSettings
from mailport.auth.tokens import looks_like_jwt, unverified_parts
from mailport.crypto import Secret
from mailport.errors import TokenRejectedError
from mailport.tenants.keys import generate_api_key

SECRET = "s" * 40


def test_a_jwt_is_told_from_an_api_key():
    assert looks_like_jwt(jwt.encode({"sub": "u"}, SECRET, algorithm="HS256"))
    assert looks_like_jwt("eyJhbGciOiJub25lIn0.e30.")  # alg none: a JWT (refused later)
    for key in (generate_api_key(), "a.b.c", "e30.e30", "W10.e30.x", "not json.e30.x", "", "...", "é.é.é"):
        assert not looks_like_jwt(key), key
    assert not looks_like_jwt("eyJhbGciOiJIUzI1NiJ9." + "a" * 20000 + ".x")


def test_unverified_parts_refuse_garbage_without_echoing_it():
    with pytest.raises(TokenRejectedError) as refused:
        unverified_parts("eyJhbGciOiJIUzI1NiJ9.%%%garbage.sig")
    assert "garbage" not in str(refused.value) and refused.value.code == "invalid_token"
    header, claims = unverified_parts(jwt.encode({"sub": "u"}, SECRET, algorithm="HS256"))
    assert header["alg"] == "HS256" and claims == {"sub": "u"}


def _jwk(key: object, family: str, **extra: object) -> dict[str, object]:
    data = json.loads(jwt.get_algorithm_by_name(family).to_jwk(key.public_key()))  # type: ignore[attr-defined]
    return {**data, **extra}


def test_parse_jwks_keeps_usable_signing_keys():
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    document = {
        "keys": [
            _jwk(rsa_key, "RS256", kid="r", alg="RS256"),
            _jwk(ec_key, "ES256", kid="e"),
            _jwk(rsa_key, "RS256", kid="enc", use="enc"),  # an encryption key: not for signatures
            {"kty": "RSA", "kid": "broken"},  # no modulus: skipped
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},  # a symmetric key: never from a JWKS
            "not a key",
        ]
    }
    keys = parse_jwks(document)
    assert set(keys) == {"r", "e"}
    assert keys["r"].alg == "RS256" and keys["e"].alg is None
    for bad in ({}, {"keys": "x"}, {"keys": [{"kty": "oct"}]}, [], None):
        with pytest.raises(ValueError):
            parse_jwks(bad)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, 300),
        ("max-age=600", 600),
        ("public, max-age=5", 60),
        ('max-age="900", must-revalidate', 900),
        ("max-age=99999999", 86400),
        ("no-store", 60),
        ("private, no-cache", 60),
        ("s-maxage=10", 300),
    ],
)
def test_cache_lifetime_follows_max_age_within_bounds(header, expected):
    assert cache_seconds(header, default=300, low=60, high=86400) == expected


def test_settings_defaults_and_checks():
    jwks = JwtSettings(kind="jwks", jwks_url="https://keys.example/jwks.json")
    assert jwks.algorithms == ["RS256", "ES256"] and jwks.owner_claim == "sub" and jwks.leeway_seconds == 30
    hs = JwtSettings(kind="hs256", secret=SECRET)
    assert hs.algorithms == ["HS256"]
    twice = JwtSettings(kind="jwks", jwks_url="https://k.example/j", algorithms=["PS256", "PS256"])
    assert twice.algorithms == ["PS256"]
    with pytest.raises(ValidationError) as short:
        JwtSettings(kind="hs256", secret="é" * 15)  # 30 bytes
    assert "32 bytes" in str(short.value) and "é" * 15 not in str(short.value)
    with pytest.raises(ValidationError):
        JwtSettings(kind="hs256", secret=SECRET, leeway_seconds=3600)


def test_a_verifier_never_shows_its_secret():
    verifier = JwtVerifier(tenant_id="ten_x", kind="hs256", algorithms=("HS256",), secret=Secret(SECRET))
    assert SECRET not in repr(verifier) and SECRET not in str(verifier)
    shown = JwtRead.of(verifier).model_dump_json()
    assert SECRET not in shown and json.loads(shown)["has_secret"] is True
    assert verifier.expected_tenant_value == "ten_x"
