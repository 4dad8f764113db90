"""Which event loop ``mailport worker`` runs on (``MAILPORT_EVENT_LOOP``).

Why uvloop where it is used: a worker that only delivers webhooks (the child of ``mailport
serve`` with ``MAILPORT_DELIVERY_PROCESS``, or ``MAILPORT_WORKER_PARTS=delivery``) spends its
time in the event loop itself: socket writes and reads, timers, and the wake-ups from the SQLite
driver's thread. uvloop (libuv; MIT or Apache-2.0, installed with ``uvicorn[standard]``) does
that work in C: in ``bench/delivery_throughput.py`` (the dispatcher alone) it used 9 % (SQLite)
and 16 % (PostgreSQL) less CPU per webhook (issue 21, fifteenth round). Processes that run the
mail clients (watchers, sending, contacts) and ``serve`` (its own accept loop,
:class:`mailport.api.server.ServingLoop`) stay on asyncio's loop, where their servers' habits
were tested.

``auto`` (the default): uvloop for a delivery-only worker when it can be imported, else
asyncio's. ``asyncio``: always asyncio's loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Literal

EventLoopChoice = Literal["auto", "asyncio"]
LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def worker_loop(choice: EventLoopChoice, parts: Sequence[str]) -> LoopFactory | None:
    """The loop factory for a worker running ``parts`` (None: asyncio's default)."""
    if choice == "asyncio" or set(parts) != {"delivery"}:
        return None
    try:
        import uvloop
    except ImportError:  # not built for this platform: asyncio's loop does the same work
        return None
    factory: LoopFactory = uvloop.new_event_loop
    return factory


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """``uvloop`` or ``asyncio``, for the worker's start-up line."""
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
