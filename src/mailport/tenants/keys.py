"""API key material: random keys shown once, stored as a prefix and a SHA-256 hash.

Keys carry 240 random bits, so a fast hash is enough (no password-hashing KDF needed): what
matters is that the database never holds a usable key and that comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

KEY_PREFIX = "mp_live_"
VISIBLE_CHARS = 12  # "mp_live_" + 4 characters, enough to tell keys apart in a listing


def generate_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(30)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def visible_prefix(key: str) -> str:
    return key[:VISIBLE_CHARS]


def same_secret(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))
