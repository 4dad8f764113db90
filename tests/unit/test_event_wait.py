"""EventLog's in-process wake-up: every waiter wakes on a notification, a notification made
between reading :attr:`EventLog.version` and waiting is not missed, and a timeout says so."""

from __future__ import annotations

import asyncio

import pytest

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


async def test_commit_hooks_hear_appends_and_changes_but_not_acceptances(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``on_commit`` (serve's delivery child is woken with it): told whether events were
    appended, not told of an acceptance (nothing for a dispatcher to do), not told of another
    process's commit (no echo), and a failing hook neither stops the others nor the caller."""
    log = _log()
    heard: list[bool] = []

    def broken(_appended: bool) -> None:
        raise RuntimeError("hook")

    log.on_commit(broken)
    remove = log.on_commit(heard.append)
    await log.notify()
    await log.notify(appended=False)
    await log.notify(appended=False, accepted_only=True)
    log.foreign_commit()
    log.changed_elsewhere()
    assert heard == [True, False]
    assert "a commit hook failed" in caplog.text
    remove()
    remove()  # twice: no error
    await log.notify()
    assert heard == [True, False]
    assert (log.version, log.appended_version) == (6, 3)
