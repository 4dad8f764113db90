"""Fakes shared by unit tests: a clock the test moves, and the StateStore contract in memory."""

from __future__ import annotations

from datetime import UTC, datetime

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


class SettableClock:
    """A clock that stands still until the test moves it (``clock.now += timedelta(...)``)."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class MemoryStateStore:
    """The StateStore contract (a nonce's first consume is True, every later one False) in
    memory, for unit tests of what uses it (the real store is a table)."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    async def consume(self, nonce: str, *, expires_at: datetime) -> bool:
        if nonce in self.used:
            return False
        self.used.add(nonce)
        return True
