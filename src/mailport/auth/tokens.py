"""Telling a JWT from an API key, and reading what picks a token's tenant (unverified).

The contract of issue 19: a bearer token with two dots whose first segment base64url-decodes
to a JSON object is a JWT; anything else is an API key (``mp_live_…`` keys have no dots). The
unverified claims are read only to choose *which* verifier checks the token; nothing read here
is trusted before :mod:`mailport.auth.verify` has checked the signature.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import jwt

from mailport.errors import TokenRejectedError

MAX_TOKEN_LENGTH = 16 * 1024  # a header line's worth; a longer "token" is refused unparsed


def _segment_json(segment: str) -> Any:
    padded = segment + "=" * (-len(segment) % 4)
    return json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))


def looks_like_jwt(token: str) -> bool:
    """True for ``header.payload.signature`` whose header is a JSON object."""
    if token.count(".") != 2 or len(token) > MAX_TOKEN_LENGTH:
        return False
    try:
        return isinstance(_segment_json(token.split(".", 1)[0]), dict)
    except (ValueError, UnicodeError, binascii.Error):
        return False


def unverified_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header and the claims, unverified; ``invalid_token`` when they are not JSON objects."""
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise TokenRejectedError("the bearer token is not a well-formed JWT") from exc
    if not isinstance(claims, dict):
        raise TokenRejectedError("the JWT's payload is not a JSON object")
    return header, claims
