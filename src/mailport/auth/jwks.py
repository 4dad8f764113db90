"""A cache of JSON Web Key Sets, fetched through the host guard.

Why not PyJWT's ``PyJWKClient``: it fetches with ``urllib`` — blocking the event loop, and
connecting wherever the URL's name resolves, past mailport's host guard and resolver. Here the
set is fetched with :func:`mailport.net.connect.http_client` (every connection vetted) and
parsed with PyJWT's own :class:`jwt.PyJWK`.

Freshness: a set is kept for the server's ``Cache-Control: max-age`` clamped to
``[min_ttl, max_ttl]`` (``default_ttl`` without one). A token whose ``kid`` is not in the set
triggers one fetch, but at most one per ``refresh_interval`` seconds per URL: a flood of tokens
with made-up kids costs the JWKS server one request per interval, not one per token. A lock per
URL makes concurrent misses share that fetch. When a refetch fails, the keys already held are
kept (and used) until the next interval: the JWKS server being down does not lock users out.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import jwt

from mailport.errors import JwksUnavailableError, MailportError
from mailport.net.connect import http_client
from mailport.net.guard import HostGuard

log = logging.getLogger(__name__)

MAX_JWKS_BYTES = 256 * 1024
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)\"?", re.I)
_NO_STORE = re.compile(r"(?:^|,)\s*(?:no-store|no-cache)\s*(?:,|$)", re.I)


@dataclass(frozen=True)
class SigningKey:
    """One key of a set: the public key, and the ``alg`` the JWK declares (None: any it fits)."""

    key: Any
    alg: str | None


@dataclass
class _Entry:
    keys: dict[str | None, SigningKey]
    fetched_at: float  # the last fetch attempt (successful or not)
    expires_at: float

    def find(self, kid: str | None) -> SigningKey | None:
        """The key named ``kid``; a token without a kid gets the set's only key, if it has one."""
        if kid is None:
            return next(iter(self.keys.values())) if len(self.keys) == 1 else None
        return self.keys.get(kid)


def parse_jwks(document: object) -> dict[str | None, SigningKey]:
    """The public signing keys of a JWKS document by ``kid``; ValueError when none is left.

    Left out: ``use: enc`` keys, keys PyJWT cannot read, and symmetric (``oct``) keys — a key
    set anyone can fetch must never hand out an HMAC secret."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JSON Web Key Set (no `keys` list)")
    signing = [
        k
        for k in document["keys"]
        if isinstance(k, dict) and k.get("use", "sig") == "sig" and k.get("kty") in ("RSA", "EC")
    ]
    keys: dict[str | None, SigningKey] = {}
    for data in signing:
        try:
            key = jwt.PyJWK(data)
        except (jwt.PyJWTError, KeyError, ValueError, TypeError):
            continue  # an unsupported key type or a broken key: the others still count
        kid, alg = data.get("kid"), data.get("alg")
        declared = alg if isinstance(alg, str) else None
        keys[kid if isinstance(kid, str) else None] = SigningKey(key.key, declared)
    if not keys:
        raise ValueError("the JWKS holds no usable signing key")
    return keys


def cache_seconds(cache_control: str | None, *, default: float, low: float, high: float) -> float:
    """How long to keep a set: ``max-age`` within ``[low, high]``; ``low`` for no-store/no-cache."""
    if cache_control:
        if _NO_STORE.search(cache_control):
            return low
        found = _MAX_AGE.search(cache_control)
        if found:
            return min(max(float(found.group(1)), low), high)
    return default


class JwksCache:
    """JWKS documents by URL (see the module docstring)."""

    def __init__(
        self,
        guard: HostGuard,
        *,
        default_ttl: float = 300.0,
        min_ttl: float = 30.0,
        max_ttl: float = 86400.0,
        refresh_interval: float = 30.0,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._guard = guard
        self.default_ttl, self.min_ttl, self.max_ttl = default_ttl, min_ttl, max_ttl
        self.refresh_interval = refresh_interval
        self._timeout = timeout
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.fetches = 0  # requests made to JWKS servers (figures and tests)

    async def key(self, url: str, kid: str | None) -> SigningKey | None:
        """The key ``kid`` of the set at ``url``; None when it is not there even after a refetch
        (which happens at most once per ``refresh_interval``)."""
        entry = self._entries.get(url)
        if entry is None or self._clock() >= entry.expires_at:
            entry = await self._refresh(url, seen=entry)
        found = entry.find(kid)
        if found is None and self._clock() - entry.fetched_at >= self.refresh_interval:
            entry = await self._refresh(url, seen=entry)
            found = entry.find(kid)
        return found

    def forget(self, url: str) -> None:
        """Drop a set (its verifier changed or went away)."""
        self._entries.pop(url, None)

    async def _refresh(self, url: str, *, seen: _Entry | None) -> _Entry:
        lock = self._locks.setdefault(url, asyncio.Lock())
        async with lock:
            current = self._entries.get(url)
            if current is not None and current is not seen:
                return current  # another request fetched it while this one waited
            now = self._clock()
            try:
                keys, ttl = await self._fetch(url)
            except JwksUnavailableError as exc:
                if current is None:
                    raise
                log.warning("JWKS %s: %s; keeping the keys fetched before", url, exc.message)
                current.fetched_at = now
                current.expires_at = now + self.refresh_interval
                return current
            entry = _Entry(keys=keys, fetched_at=now, expires_at=now + ttl)
            self._entries[url] = entry
            return entry

    async def _fetch(self, url: str) -> tuple[dict[str | None, SigningKey], float]:
        self.fetches += 1
        try:
            async with http_client(self._guard, timeout=self._timeout) as client:
                async with client.stream("GET", url, headers={"Accept": "application/json"}) as response:
                    if response.status_code != 200:
                        raise JwksUnavailableError(f"{url} answered HTTP {response.status_code}")
                    body = bytearray()
                    async for chunk in response.aiter_bytes():
                        body += chunk
                        if len(body) > MAX_JWKS_BYTES:
                            raise JwksUnavailableError(f"{url}: the JWKS is over {MAX_JWKS_BYTES} bytes")
                    cache_control = response.headers.get("cache-control")
        except JwksUnavailableError:
            raise
        except MailportError as exc:  # host_not_allowed from the guard, connect errors
            raise JwksUnavailableError(f"{url}: {exc.message}", reason=exc.code) from exc
        except httpx.HTTPError as exc:
            raise JwksUnavailableError(f"{url}: {type(exc).__name__}") from exc
        try:
            keys = parse_jwks(_json(bytes(body)))
        except ValueError as exc:
            raise JwksUnavailableError(f"{url}: {exc}") from exc
        ttl = cache_seconds(cache_control, default=self.default_ttl, low=self.min_ttl, high=self.max_ttl)
        return keys, ttl


def _json(body: bytes) -> object:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError("the JWKS is not JSON") from exc
