"""The one retry policy: each user's schedule is a configuration of it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mailport.retry import Backoff, RetryPolicy
from mailport.sync.watcher import WatcherOptions

T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def test_delays_double_to_the_cap_and_jitter_only_shortens_them() -> None:
    policy = RetryPolicy(first_delay=2, max_delay=10, jitter=0.5)
    assert [policy.delay(n, rand=lambda: 0.0) for n in (1, 2, 3, 4)] == [2, 4, 8, 10]
    assert policy.delay(3, rand=lambda: 1.0) == 4
    assert RetryPolicy(first_delay=1, max_delay=5, min_delay=0.2, jitter=1).delay(1, rand=lambda: 1.0) == 0.2


def test_a_policy_gives_up_after_its_attempts_or_its_window() -> None:
    counted = RetryPolicy(max_attempts=3)
    assert not counted.exhausted(2) and counted.exhausted(3)
    timed = RetryPolicy(give_up_after=60)
    assert timed.next_attempt(9, window_started=T0, now=T0 + timedelta(seconds=59)) is not None
    assert timed.next_attempt(1, window_started=T0, now=T0 + timedelta(seconds=60)) is None


def test_backoff_walks_the_schedule_resets_and_stops_after_max_attempts() -> None:
    backoff = Backoff(RetryPolicy(first_delay=1, max_delay=4, max_attempts=4))
    assert [next(backoff), next(backoff)] == [1, 2]
    backoff.reset()
    assert list(backoff) == [1, 2, 4]


def test_the_action_schedule_is_the_one_the_watcher_always_had() -> None:
    options = WatcherOptions(action_retry_base=30, action_retry_cap=3600, action_max_attempts=5)
    policy = options.action_retries()
    assert [policy.delay(a + 1) for a in range(9)] == [min(3600, 30 * 2**a) for a in range(9)]
    assert [policy.exhausted(a + 1) for a in range(5)] == [False] * 4 + [True]


def test_a_nonsense_policy_is_refused() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(first_delay=10, max_delay=1)
