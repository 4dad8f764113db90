"""The one retry policy: how long to wait after each failure, and when to stop trying.

Every retry in mailport is a configuration of :class:`RetryPolicy`, declared where it is used
(as stamina declares its policies): the watchers' reconnects, their refused after-processing
actions and the webhook deliveries. A policy is exponential — ``first_delay``, then times
``multiplier`` per failure, up to ``max_delay`` — with optional jitter (each delay is drawn from
``[delay * (1 - jitter), delay]``, so failures that happen together do not retry in lock-step),
an optional floor (``min_delay``) and a bound in attempts (``max_attempts``), in time since the
first failure (``give_up_after``), or both. The random source is a parameter: tests pass a
constant and get exact delays.

Hand-written rather than stamina (or tenacity): those wrap a call and keep the schedule in the
wrapper's stack frame. Ours are mostly stored: a webhook delivery's ``next_attempt_at`` and a
pending action's retry time are rows that another process, or this one after a restart, picks
up — so a policy here answers "when next, after the n-th failure?" and the caller saves the
answer. :class:`Backoff` is the in-memory form, for a loop that sleeps between tries.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

Rand = Callable[[], float]
"""A draw in ``[0, 1)``: how far below the nominal delay a jittered delay falls (0 = none)."""


@dataclass(frozen=True)
class RetryPolicy:
    """Delays after consecutive failures, and when to give up (all durations in seconds)."""

    first_delay: float = 1.0
    multiplier: float = 2.0
    max_delay: float = 300.0
    jitter: float = 0.0
    give_up_after: float | None = None
    max_attempts: int | None = None
    min_delay: float = 0.0

    def __post_init__(self) -> None:
        if self.first_delay <= 0 or self.multiplier < 1 or self.max_delay < self.first_delay:
            raise ValueError("RetryPolicy: need 0 < first_delay <= max_delay and multiplier >= 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("RetryPolicy: jitter is a fraction between 0 and 1")

    def nominal(self, failures: int) -> float:
        """The delay before jitter after the ``failures``-th consecutive failure (1 = the first)."""
        exponent = max(failures - 1, 0)
        if exponent >= 64:  # avoid float overflow for absurd counts
            return self.max_delay
        return min(self.max_delay, self.first_delay * self.multiplier**exponent)

    def delay(self, failures: int, *, rand: Rand = random.random) -> float:
        """Seconds to wait after the ``failures``-th consecutive failure (1 = the first)."""
        delay = self.nominal(failures)
        if self.jitter:
            delay *= 1 - self.jitter * rand()
        return max(self.min_delay, delay)

    def exhausted(self, failures: int, *, elapsed: float = 0.0) -> bool:
        """Is ``failures`` (``elapsed`` seconds after the first) the end: no more tries?"""
        if self.max_attempts is not None and failures >= self.max_attempts:
            return True
        return self.give_up_after is not None and elapsed >= self.give_up_after

    def next_attempt(
        self,
        failures: int,
        *,
        window_started: datetime,
        now: datetime,
        rand: Rand = random.random,
    ) -> datetime | None:
        """When to try again after the ``failures``-th failure at ``now``; None to give up."""
        if self.exhausted(failures, elapsed=(now - window_started).total_seconds()):
            return None
        return now + timedelta(seconds=self.delay(failures, rand=rand))


class Backoff(Iterator[float]):
    """A policy's delays one after another, for a loop that sleeps in memory.

    ``next()`` counts one more failure and answers its delay (it stops after ``max_attempts``;
    ``give_up_after`` is for stored schedules, see :meth:`RetryPolicy.next_attempt`);
    ``reset()`` starts again from ``first_delay``, once the operation has succeeded."""

    def __init__(self, policy: RetryPolicy, *, rand: Rand = random.random) -> None:
        self.policy = policy
        self.rand = rand
        self.failures = 0

    def next(self) -> float:
        self.failures += 1
        if self.policy.exhausted(self.failures):
            raise StopIteration
        return self.policy.delay(self.failures, rand=self.rand)

    def __next__(self) -> float:
        return self.next()

    def reset(self) -> None:
        self.failures = 0


__all__ = ["Backoff", "Rand", "RetryPolicy"]
