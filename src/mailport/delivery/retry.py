"""When to try a failed webhook delivery again, when to give up, and when to disable an endpoint.

A declared policy (as stamina and Svix do) rather than ad-hoc sleeps: exponential backoff from
``first_delay`` by ``multiplier`` up to ``max_delay``, with "full-ish" jitter (each delay is drawn
from ``[delay * (1 - jitter), delay]``) so that many deliveries failing together do not retry in
lock-step, and a total window (``give_up_after``, 24 h by default) after which the delivery is a
dead letter. Tests inject a policy with delays in milliseconds and a seeded random source; no
code path sleeps for real minutes.

An endpoint is disabled when a delivery becomes a dead letter and the endpoint answered no
request at all with 2xx during that delivery's whole retry window (24 h by default): it has been
down or refusing everything for a day, and keeping it would only grow its queue. An endpoint
that still accepts other deliveries keeps running; its poison deliveries are dead letters to
replay.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

DAY = 24 * 3600.0


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff for one delivery, and the endpoint's disable rule (all durations in seconds)."""

    first_delay: float = 5.0
    multiplier: float = 2.0
    max_delay: float = 3600.0
    jitter: float = 0.5
    give_up_after: float = DAY

    def __post_init__(self) -> None:
        if self.first_delay <= 0 or self.multiplier < 1 or self.max_delay < self.first_delay:
            raise ValueError("RetryPolicy: need 0 < first_delay <= max_delay and multiplier >= 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("RetryPolicy: jitter is a fraction between 0 and 1")

    def delay(self, failures: int, *, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait after the ``failures``-th consecutive failure (1 = the first)."""
        exponent = max(failures - 1, 0)
        base = self.max_delay
        if exponent < 64:  # avoid float overflow for absurd counts
            base = min(self.max_delay, self.first_delay * self.multiplier**exponent)
        return base * (1 - self.jitter * rand())

    def next_attempt(
        self,
        failures: int,
        *,
        window_started: datetime,
        now: datetime,
        rand: Callable[[], float] = random.random,
    ) -> datetime | None:
        """When to try again, or None when the retry window is over (a dead letter)."""
        if (now - window_started).total_seconds() >= self.give_up_after:
            return None
        return now + timedelta(seconds=self.delay(failures, rand=rand))

    @staticmethod
    def should_disable(*, last_success_at: datetime | None, dead_window_started: datetime) -> bool:
        """After a dead letter: did the endpoint answer nothing with 2xx during its retry window?"""
        return last_success_at is None or last_success_at < dead_window_started
