"""Stopping background loops: a cancellation turned into an ordinary exception by a library
must still stop a loop that carries on after ``except Exception``."""

from __future__ import annotations

import asyncio

from mailport.tasks import cancel_and_wait, stop_if_cancelled


async def _driver_call() -> None:
    """Like a database driver whose connection is torn down under a cancelled call."""
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        raise RuntimeError("connection was closed in the middle of operation") from None


async def _carry_on_loop(cycles: list[int], *, guarded: bool, halt: asyncio.Event | None = None) -> None:
    while halt is None or not halt.is_set():
        cycles.append(1)
        try:
            await _driver_call()
        except Exception:
            if guarded:
                stop_if_cancelled()
        await asyncio.sleep(0)


async def test_a_loop_that_swallows_a_translated_cancellation_still_stops() -> None:
    cycles: list[int] = []
    task = asyncio.create_task(_carry_on_loop(cycles, guarded=True))
    await asyncio.sleep(0.01)
    assert await cancel_and_wait(task, timeout=2.0)
    assert task.cancelled() and len(cycles) == 1


async def test_without_the_guard_the_loop_runs_on_and_the_bounded_wait_gives_up() -> None:
    cycles: list[int] = []
    halt = asyncio.Event()
    task = asyncio.create_task(_carry_on_loop(cycles, guarded=False, halt=halt))
    await asyncio.sleep(0.01)
    assert not await cancel_and_wait(task, timeout=0.2)  # the hang the guard prevents
    assert len(cycles) == 2 and not task.done()
    halt.set()
    task.cancel()  # ends the driver call; the loop then sees ``halt``
    await asyncio.wait({task}, timeout=2.0)
    assert task.done()
