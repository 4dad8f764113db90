"""EventLog's in-process wake-up: every waiter wakes on a notification, a notification made
between reading :attr:`EventLog.version` and waiting is not missed, and a timeout says so."""

from __future__ import annotations

import asyncio

from mailport.events import EventLog
from mailport.store import open_database


def _log() -> EventLog:
    return EventLog(open_database("sqlite+aiosqlite:///:memory:"))  # never connected here


async def test_every_waiter_wakes_and_the_versions_move() -> None:
    log = _log()
    waiters = [asyncio.create_task(log.wait(30)) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters)
    await log.notify()
    assert await asyncio.gather(*waiters) == [True, True, True]
    assert (log.version, log.appended_version, log.accepted_version) == (1, 1, 0)
    await log.notify(appended=False, accepted_only=True)
    assert (log.version, log.appended_version, log.accepted_version) == (2, 1, 1)


async def test_another_processs_commit_wakes_the_waiters_as_an_append() -> None:
    """``foreign_commit`` (another process's NOTIFY): the dispatcher fans out at once, as for
    its own process's appends, though none of them is in ``take_committed``."""
    log = _log()
    log.keep_committed(10)
    waiter = asyncio.create_task(log.wait(30))
    await asyncio.sleep(0)
    log.foreign_commit()
    assert await waiter is True
    assert (log.version, log.appended_version, log.accepted_version) == (1, 1, 0)
    assert log.take_committed() == []


async def test_a_notification_before_the_wait_is_not_missed() -> None:
    log = _log()
    seen = log.version
    await log.notify(appended=False)
    assert await log.wait(30, since=seen) is True  # at once
    assert await log.wait(0.01) is False  # nothing new since it began: the timeout


async def test_a_cancelled_waiter_does_not_stop_the_others() -> None:
    log = _log()
    cancelled = asyncio.create_task(log.wait(30))
    kept = asyncio.create_task(log.wait(30))
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.gather(cancelled, return_exceptions=True)
    await log.notify()
    assert await kept is True
