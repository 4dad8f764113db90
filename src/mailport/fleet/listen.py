"""PostgreSQL ``LISTEN`` on one dedicated connection, for the fleet's wake-ups.

The membership (``mailport_workers``) and the change follower (``mailport_mailbox_changes``)
react in milliseconds to a NOTIFY instead of waiting for their poll. SQLAlchemy has no LISTEN,
so this takes one connection out of the engine's pool for good and uses its asyncpg
connection's ``add_listener``. A lost connection is opened again after a pause; ``on_connect``
callbacks run each time it is (re)established, so the subscribers read what they may have
missed meanwhile (their poll covers the gap too). On SQLite this does nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from mailport.store.database import Database
from mailport.tasks import cancel_and_wait, stop_if_cancelled

log = logging.getLogger(__name__)

WORKERS = "mailport_workers"
MAILBOX_CHANGES = "mailport_mailbox_changes"


class Listener:
    """``subscribe(channel, callback)`` before or after ``start()``; callbacks get the payload."""

    def __init__(
        self, database: Database, *, retry_seconds: float = 2.0, check_seconds: float = 10.0
    ) -> None:
        self.database = database
        self.retry_seconds = retry_seconds
        self.check_seconds = check_seconds
        self._callbacks: dict[str, list[Callable[[str], None]]] = {}
        self._on_connect: list[Callable[[], None]] = []
        self._task: asyncio.Task[None] | None = None
        self._driver: Any = None
        self.connected = asyncio.Event()

    @property
    def enabled(self) -> bool:
        return self.database.dialect == "postgresql"

    def subscribe(self, channel: str, callback: Callable[[str], None]) -> None:
        self._callbacks.setdefault(channel, []).append(callback)

    def on_connect(self, callback: Callable[[], None]) -> None:
        self._on_connect.append(callback)

    def start(self) -> None:
        if self.enabled and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(self._run(), name="fleet-listen")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task, timeout=5)
            self._task = None
        self.connected.clear()

    def _deliver(self, _conn: Any, _pid: int, channel: str, payload: str) -> None:
        for callback in self._callbacks.get(channel, []):
            try:
                callback(payload)
            except Exception:
                log.exception("a %s listener failed", channel)

    async def _run(self) -> None:
        while True:
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception:
                stop_if_cancelled()
                log.warning("LISTEN connection lost; polling until it is back", exc_info=True)
            self.connected.clear()
            await asyncio.sleep(self.retry_seconds)

    async def _listen(self) -> None:
        async with self.database.connect() as conn:  # the database layer opens every connection
            raw = await conn.get_raw_connection()
            driver: Any = raw.driver_connection  # an asyncpg.Connection
            if driver is None:
                raise ConnectionError("no driver connection to LISTEN on")
            lost = asyncio.Event()
            driver.add_termination_listener(lambda _c: lost.set())
            try:
                for channel in list(self._callbacks):
                    await driver.add_listener(channel, self._deliver)
                self.connected.set()
                for callback in self._on_connect:
                    callback()
                while not lost.is_set():
                    try:
                        await asyncio.wait_for(lost.wait(), self.check_seconds)
                    except TimeoutError:
                        await driver.fetchval("SELECT 1")  # a half-open TCP connection shows here
            finally:
                self.connected.clear()
                await conn.invalidate()  # never hand a LISTENing connection back to the pool


__all__ = ["MAILBOX_CHANGES", "WORKERS", "Listener"]
