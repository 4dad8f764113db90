"""The lock that lets a serial test run alone in a parallel run (tests/fixtures/parallel.py):
each ``RunLock`` opens the files anew, as each xdist worker does, so ``flock`` sees two holders."""

from __future__ import annotations

import threading
from pathlib import Path

from tests.fixtures.parallel import RunLock


def _in_thread(lock: RunLock, *, exclusive: bool) -> threading.Event:
    acquired = threading.Event()

    def take() -> None:
        lock.acquire(exclusive=exclusive)
        acquired.set()

    threading.Thread(target=take, daemon=True).start()
    return acquired


def test_shared_holders_run_together_and_an_exclusive_one_waits_for_them(tmp_path: Path) -> None:
    first, second, serial = RunLock(tmp_path), RunLock(tmp_path), RunLock(tmp_path)
    try:
        first.acquire(exclusive=False)
        assert _in_thread(second, exclusive=False).wait(5)  # two ordinary tests at once
        waiting = _in_thread(serial, exclusive=True)
        assert not waiting.wait(0.3)
        first.release()
        assert not waiting.wait(0.3)
        second.release()
        assert waiting.wait(5)
    finally:
        for lock in (first, second, serial):
            lock.release()
            lock.close()


def test_a_waiting_serial_test_goes_before_tests_that_start_later(tmp_path: Path) -> None:
    running, serial, later = RunLock(tmp_path), RunLock(tmp_path), RunLock(tmp_path)
    try:
        running.acquire(exclusive=False)
        serial_in = _in_thread(serial, exclusive=True)
        assert not serial_in.wait(0.3)
        later_in = _in_thread(later, exclusive=False)  # blocked at the turnstile the serial test holds
        assert not later_in.wait(0.3)
        running.release()
        assert serial_in.wait(5)
        assert not later_in.wait(0.3)
        serial.release()
        assert later_in.wait(5)
    finally:
        for lock in (running, serial, later):
            lock.release()
            lock.close()


def test_consecutive_serial_tests_keep_the_exclusive_lock(tmp_path: Path) -> None:
    serial, other = RunLock(tmp_path), RunLock(tmp_path)
    try:
        serial.acquire(exclusive=True)
        serial.acquire(exclusive=True)  # the next serial test: no second wait, no deadlock
        assert serial.exclusive
        other_in = _in_thread(other, exclusive=False)
        assert not other_in.wait(0.3)
        serial.release()
        assert other_in.wait(5)
    finally:
        for lock in (serial, other):
            lock.release()
            lock.close()
