"""PostgreSQL ``LISTEN`` on one dedicated connection, for the fleet's wake-ups.

The membership (``mailport_workers``) and the change follower (``mailport_mailbox_changes``)
react in milliseconds to a NOTIFY instead of waiting for their poll. SQLAlchemy has no LISTEN,
so this takes one connection out of the engine's pool for good and uses its asyncpg
connection's ``add_listener``. A lost connection is opened again after a pause; ``on_connect``
callbacks run each time it is (re)established, so the subscribers read what they may have
missed meanwhile (their poll covers the gap too). On SQLite this does nothing.

One process shares one: the orchestrator starts it, and the webhook dispatcher subscribes to
it (a LISTEN connection per part was one PostgreSQL connection per process more than needed).
A channel subscribed while the connection is up is listened to at once, by the loop that owns
the connection (an asyncpg connection runs one operation at a time), and a late ``on_connect``
callback runs at once when the connection is already up.
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
    """``subscribe(channel, callback)`` before or after ``start()``; callbacks get the payload.
    Both return a function that takes the callback back (a part that stops before the owner)."""

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
        self._changed = asyncio.Event()  # a channel was subscribed: LISTEN to it now
        self.connected = asyncio.Event()

    @property
    def enabled(self) -> bool:
        return self.database.dialect == "postgresql"

    def subscribe(self, channel: str, callback: Callable[[str], None]) -> Callable[[], None]:
        callbacks = self._callbacks.setdefault(channel, [])
        callbacks.append(callback)
        if len(callbacks) == 1 and self._driver is not None:
            self._changed.set()
        return lambda: _remove(callbacks, callback)

    def on_connect(self, callback: Callable[[], None]) -> Callable[[], None]:
        self._on_connect.append(callback)
        if self.connected.is_set():
            callback()  # it is up already: look once now for what came before
        return lambda: _remove(self._on_connect, callback)

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
            listening: set[str] = set()
            try:
                for channel in list(self._callbacks):
                    await driver.add_listener(channel, self._deliver)
                    listening.add(channel)
                self._driver = driver
                self.connected.set()
                for callback in list(self._on_connect):
                    callback()
                while not lost.is_set():
                    self._changed.clear()  # first: a subscription during the awaits below counts
                    for channel in [c for c in self._callbacks if c not in listening]:
                        await driver.add_listener(channel, self._deliver)
                        listening.add(channel)
                    changed = asyncio.ensure_future(self._changed.wait())
                    ended = asyncio.ensure_future(lost.wait())
                    try:
                        done, _ = await asyncio.wait(
                            (changed, ended), timeout=self.check_seconds, return_when=asyncio.FIRST_COMPLETED
                        )
                    finally:
                        changed.cancel()
                        ended.cancel()
                    if not done:
                        await driver.fetchval("SELECT 1")  # a half-open TCP connection shows here
            finally:
                self._driver = None
                self.connected.clear()
                await conn.invalidate()  # never hand a LISTENing connection back to the pool


def _remove(items: list[Any], item: object) -> None:
    if item in items:
        items.remove(item)


__all__ = ["MAILBOX_CHANGES", "WORKERS", "Listener"]
