"""When to try a failed webhook delivery again, when to give up, and when to disable an endpoint.

The schedule is the webhook configuration of the one retry policy (:mod:`mailport.retry`):
exponential backoff from 5 s, doubling, up to an hour, with each delay drawn from
``[delay * 0.5, delay]`` so that many deliveries failing together do not retry in lock-step,
and a total window (``give_up_after``, 24 h by default) after which the delivery is a dead
letter. Tests inject a policy with delays in milliseconds and a seeded random source; no code
path sleeps for real minutes.

An endpoint is disabled when a delivery becomes a dead letter and the endpoint answered no
request at all with 2xx during that delivery's whole retry window (24 h by default): it has been
down or refusing everything for a day, and keeping it would only grow its queue. An endpoint
that still accepts other deliveries keeps running; its poison deliveries are dead letters to
replay.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from mailport import retry

DAY = 24 * 3600.0


@dataclass(frozen=True)
class RetryPolicy(retry.RetryPolicy):
    """Backoff for one delivery, and the endpoint's disable rule (all durations in seconds)."""

    first_delay: float = 5.0
    multiplier: float = 2.0
    max_delay: float = 3600.0
    jitter: float = 0.5
    give_up_after: float = DAY  # always bounded: a dead letter is replayed by hand

    @staticmethod
    def should_disable(*, last_success_at: datetime | None, dead_window_started: datetime) -> bool:
        """After a dead letter: did the endpoint answer nothing with 2xx during its retry window?"""
        return last_success_at is None or last_success_at < dead_window_started
