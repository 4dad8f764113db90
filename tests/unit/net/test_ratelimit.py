"""The per-tenant token bucket, driven by an injected clock."""

from __future__ import annotations

import pytest

from mailport.errors import RateLimitedError
from mailport.net.ratelimit import TokenBucketLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_refuse_with_retry_after() -> None:
    clock = Clock()
    limiter = TokenBucketLimiter(rate_per_minute=6, burst=3, clock=clock)  # one token per 10 s
    for _ in range(3):
        limiter.check("tenant-a")
    with pytest.raises(RateLimitedError) as info:
        limiter.check("tenant-a")
    error = info.value
    assert error.http_status == 429 and error.code == "rate_limited"
    assert error.details["retry_after"] == 10
    assert error.to_dict()["retry_after"] == 10
    clock.now += 4
    with pytest.raises(RateLimitedError) as info:
        limiter.check("tenant-a")
    assert info.value.details["retry_after"] == 6
    clock.now += 6
    limiter.check("tenant-a")


def test_tenants_have_separate_buckets() -> None:
    clock = Clock()
    limiter = TokenBucketLimiter(rate_per_minute=1, burst=1, clock=clock)
    limiter.check("a")
    limiter.check("b")
    assert limiter.try_acquire("a") == pytest.approx(60.0)
    assert limiter.remaining("c") == 1


def test_refill_is_capped_at_burst() -> None:
    clock = Clock()
    limiter = TokenBucketLimiter(rate_per_minute=60, burst=2, clock=clock)
    limiter.check("a")
    clock.now += 3600
    assert limiter.remaining("a") == 2
    limiter.check("a")
    limiter.check("a")
    assert limiter.try_acquire("a") == pytest.approx(1.0)


def test_retry_after_is_at_least_one_second() -> None:
    clock = Clock()
    limiter = TokenBucketLimiter(rate_per_minute=600, burst=1, clock=clock)
    limiter.check("a")
    clock.now += 0.05
    with pytest.raises(RateLimitedError) as info:
        limiter.check("a")
    assert info.value.details["retry_after"] == 1


def test_memory_is_bounded() -> None:
    clock = Clock()
    limiter = TokenBucketLimiter(rate_per_minute=60, burst=1, clock=clock, max_keys=10)
    for i in range(50):
        clock.now += 0.001
        limiter.check(f"tenant-{i}")
    assert len(limiter._buckets) <= 10
    # a tenant whose bucket was forgotten had refilled or is the oldest; the newest is still limited
    with pytest.raises(RateLimitedError):
        limiter.check("tenant-49")


def test_invalid_configuration() -> None:
    with pytest.raises(ValueError):
        TokenBucketLimiter(rate_per_minute=0, burst=1)
    with pytest.raises(ValueError):
        TokenBucketLimiter(rate_per_minute=1, burst=0)
