"""Stopping background tasks: one way for every loop mailport runs (dispatcher, janitor,
orchestrator).

``await task`` after ``task.cancel()`` inside ``except CancelledError: pass`` would also swallow
the *caller's* own cancellation; :func:`asyncio.wait` does not, and it can be bounded so that a
task stuck in a cleanup never hangs shutdown.
"""

from __future__ import annotations

import asyncio
import logging
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
