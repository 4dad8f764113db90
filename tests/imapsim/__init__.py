"""A lightweight IMAP server simulator (one asyncio process, thousands of IDLE sessions) for
fleet benchmarks and tests; see :mod:`tests.imapsim.server`."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from tests.imapsim.server import ImapSim, Notification, sample_message

__all__ = ["ImapSim", "Notification", "SimThread", "sample_message", "sim_thread"]

T = TypeVar("T")


class SimThread:
    """The simulator on its own event loop in a thread, so a test's loop (or a blocking caller)
    can use it; ``deliver`` and ``stats`` run on the simulator's loop."""

    def __init__(self, sim: ImapSim, loop: asyncio.AbstractEventLoop) -> None:
        self.sim = sim
        self.loop = loop
        self.port = sim.port

    def call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        async def run() -> Any:
            return fn(*args, **kwargs)

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    def deliver(self, user: str, raw: bytes | None = None, folder: str = "INBOX") -> int:
        return int(self.call(self.sim.deliver, user, raw, folder=folder))

    def create(self, user: str, folder: str) -> None:
        self.call(self.sim.mailbox, user, folder)

    def recreate(self, user: str, folder: str) -> None:
        self.call(self.sim.recreate, user, folder)

    def stats(self) -> dict[str, int]:
        return dict(self.call(self.sim.stats))


@contextmanager
def sim_thread(**options: Any) -> Iterator[SimThread]:
    """``with sim_thread() as sim: ... sim.port ... sim.deliver(user)``."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, ImapSim] = {}

    def run() -> None:
        asyncio.set_event_loop(loop)
        holder["sim"] = loop.run_until_complete(ImapSim(**options).start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, name="imapsim", daemon=True)
    thread.start()
    ready.wait(10)
    sim = holder["sim"]
    try:
        yield SimThread(sim, loop)
    finally:
        asyncio.run_coroutine_threadsafe(sim.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
