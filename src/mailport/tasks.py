"""Stopping background tasks: one way for every loop mailport runs (dispatcher, janitor,
orchestrator).

``await task`` after ``task.cancel()`` inside ``except CancelledError: pass`` would also swallow
the *caller's* own cancellation; :func:`asyncio.wait` does not, and it can be bounded so that a
task stuck in a cleanup never hangs shutdown.

:func:`stop_if_cancelled` is for loops that catch ``Exception`` to carry on: a library may turn a
cancellation it received in the middle of a call into an ordinary exception (a database driver
whose connection is torn down under it), and such a loop would then run on after its stop —
the "dispatcher keeps cycling while shutdown waits for it" hang.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)


async def cancel_and_wait(task: asyncio.Task[Any], *, timeout: float | None = None) -> bool:
    """Cancel ``task`` and wait until it has ended (at most ``timeout`` seconds); True if it did.
    An error it ended with is logged, not raised: the caller is shutting it down."""
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        log.warning("task %s did not stop within %g s; abandoned", task.get_name(), timeout)
        return False
    if not task.cancelled() and task.exception() is not None:
        log.error("task %s ended with an error", task.get_name(), exc_info=task.exception())
    return True


def stop_if_cancelled() -> None:
    """Raise ``CancelledError`` when the running task has been asked to stop (see the module
    docstring); call it first in an ``except Exception`` that carries on."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def poll(step: Callable[[], Awaitable[Any]], wakeup: asyncio.Event, seconds: float, what: str) -> None:
    """Run ``step`` forever: again every ``seconds``, or at once when ``wakeup`` is set. A failing
    step (a database hiccup) is logged and does not end the loop; a cancellation does."""
    while True:
        try:
            await step()
        except Exception:
            stop_if_cancelled()
            log.exception("%s pass failed; trying again in %.1f s", what, seconds)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wakeup.wait(), seconds)
        wakeup.clear()
