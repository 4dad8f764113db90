"""A per-key token bucket: how often a tenant may run ``POST /v1/check``.

A connection check opens outbound connections to hosts the caller chooses; unthrottled it is a
port scanner and a password-guessing relay. Each tenant gets a bucket of ``burst`` tokens refilled
at ``rate_per_minute``; a check costs one token, and an empty bucket answers ``rate_limited`` (429)
with ``retry_after`` (whole seconds) in the error's details for the ``Retry-After`` header.

Hand-written because the need is twenty lines and in-process (one service process per tenant
shard); the libraries (``limits``, ``slowapi``) bring storage backends and decorators we do not use.
The clock is injected (``time.monotonic`` by default). Single event loop: no locking needed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from mailport.errors import RateLimitedError


@dataclass
class _Bucket:
    tokens: float
    updated: float


class TokenBucketLimiter:
    """Token buckets keyed by tenant (or any string)."""

    def __init__(
        self,
        *,
        rate_per_minute: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        if rate_per_minute <= 0 or burst < 1:
            raise ValueError("rate_per_minute must be > 0 and burst >= 1")
        self._rate = rate_per_minute / 60.0  # tokens per second
        self._burst = float(burst)
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: dict[str, _Bucket] = {}

    def _refill(self, key: str, now: float) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._max_keys:
                self._forget_full(now)
            bucket = self._buckets[key] = _Bucket(self._burst, now)
            return bucket
        elapsed = max(0.0, now - bucket.updated)
        bucket.tokens = min(self._burst, bucket.tokens + elapsed * self._rate)
        bucket.updated = now
        return bucket

    def _forget_full(self, now: float) -> None:
        """Drop buckets that have refilled completely (they behave exactly like new ones)."""
        full_after = self._burst / self._rate
        stale = [k for k, b in self._buckets.items() if now - b.updated >= full_after]
        for key in stale:
            del self._buckets[key]
        if len(self._buckets) >= self._max_keys:  # still full: forget the oldest
            oldest = min(self._buckets, key=lambda k: self._buckets[k].updated)
            del self._buckets[oldest]

    def try_acquire(self, key: str, cost: float = 1.0) -> float:
        """Take ``cost`` tokens; 0.0 when allowed, else the seconds until it would be allowed."""
        now = self._clock()
        bucket = self._refill(key, now)
        if bucket.tokens >= cost:
            bucket.tokens -= cost
            return 0.0
        return (cost - bucket.tokens) / self._rate

    def check(self, key: str, cost: float = 1.0) -> None:
        """Take ``cost`` tokens or raise :class:`RateLimitedError` with ``retry_after`` seconds."""
        wait = self.try_acquire(key, cost)
        if wait > 0:
            retry_after = max(1, math.ceil(wait))
            raise RateLimitedError(
                f"too many connection checks; try again in {retry_after} s",
                hint=f"Wait {retry_after} s (the Retry-After header) before the next check.",
                retry_after=retry_after,
            )

    def remaining(self, key: str) -> int:
        """Whole tokens left for ``key`` now (for a ``RateLimit-Remaining`` header)."""
        return int(self._refill(key, self._clock()).tokens)
