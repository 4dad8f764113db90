"""The one clock: what "now" means everywhere in mailport.

Every timestamp mailport stores or compares is a timezone-aware UTC ``datetime``. Code that
needs the time takes a ``clock: Clock = utc_now`` parameter, so tests pass a clock they move by
hand instead of patching ``datetime``. (Durations measured inside one process use a monotonic
timer instead; that is not a clock in this sense.)
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]
"""Returns the current time, timezone-aware, in UTC."""


def utc_now() -> datetime:
    """The real clock."""
    return datetime.now(UTC)


__all__ = ["Clock", "utc_now"]
