"""Small signed-and-sealed values for the web UI: the session cookie, wizard drafts, connect links.

Each is a Fernet token made with the service's key ring (AES + HMAC-SHA256), like the OAuth
``state``: the browser carries it but can neither read nor alter it, key rotation keeps older
tokens readable, and nothing has to be stored on the server between two requests. A ``kind``
inside the payload stops one sort of token from being replayed as another (a draft is not a
session). Expiry is checked here, against an injectable clock.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from mailport.clock import Clock, utc_now
from mailport.crypto import KeyRing
from mailport.errors import SecretKeyError


class Sealer:
    """Seal and open JSON payloads of one ``kind`` with the key ring."""

    def __init__(self, key_ring: KeyRing, *, clock: Clock = utc_now) -> None:
        self._key_ring = key_ring
        self._clock = clock

    def now(self) -> datetime:
        return self._clock()

    def seal(self, kind: str, payload: dict[str, Any], *, ttl_seconds: int) -> str:
        expires = int(self._clock().timestamp()) + ttl_seconds
        body = {"_k": kind, "_x": expires, **payload}
        return self._key_ring.encrypt(json.dumps(body, separators=(",", ":")))

    def open(self, kind: str, token: str | None, *, max_length: int = 8000) -> dict[str, Any] | None:
        """The payload, or None when the token is missing, foreign, altered, of another kind or expired."""
        if not token or len(token) > max_length:
            return None
        try:
            body = json.loads(self._key_ring.decrypt(token))
        except (SecretKeyError, ValueError, TypeError):
            return None
        if not isinstance(body, dict) or body.get("_k") != kind:
            return None
        expires = body.get("_x")
        if not isinstance(expires, int) or self._clock().timestamp() >= expires:
            return None
        return {k: v for k, v in body.items() if k not in ("_k", "_x")}

    def expires_at(self, kind: str, token: str) -> datetime | None:
        """When a (valid) token expires."""
        try:
            body = json.loads(self._key_ring.decrypt(token))
        except (SecretKeyError, ValueError, TypeError):
            return None
        if not isinstance(body, dict) or body.get("_k") != kind or not isinstance(body.get("_x"), int):
            return None
        return datetime.fromtimestamp(body["_x"], UTC)
