"""The contacts worker: runs due harvests (backfills, scheduled re-syncs, requested syncs) and
the event-stream reader that keeps contacts current between them.

It runs wherever the send worker runs (``mailport serve`` with background work, ``mailport
worker``), in several processes at once if need be: each run is claimed on its
``contact_sync`` row (:mod:`mailport.contacts.schedule`), so two processes never harvest one
mailbox together, and a run whose process died is taken over when its claim runs out. At most
``concurrency`` runs at a time in one process (``MAILPORT_CONTACTS_CONCURRENCY``): a backfill
reads for minutes over a connection of its own, and a server limits connections per account.

Waking: :meth:`ContactWorker.wake` (a sync requested or a mailbox changed in this process)
looks at once; other processes' requests and due times are found by a poll every
``poll_seconds``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from mailport.contacts.feed import ContactFeed
from mailport.contacts.schedule import SyncState
from mailport.contacts.sync import ContactSync
from mailport.tasks import cancel_and_wait, poll

log = logging.getLogger(__name__)

POLL_SECONDS = 5.0


class ContactWorker:
    """``start()`` / ``wake()`` / ``stop()``; :meth:`run_once` is one pass (tests)."""

    def __init__(
        self,
        sync: ContactSync,
        *,
        feed: ContactFeed | None = None,
        wakeup: asyncio.Event | None = None,
        concurrency: int = 2,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self.sync = sync
        self.feed = feed
        self.wakeup = wakeup if wakeup is not None else asyncio.Event()
        self.concurrency = concurrency
        self.poll_seconds = poll_seconds
        self._runs: dict[str, asyncio.Task[None]] = {}
        self._task: asyncio.Task[None] | None = None
        self._on_stop: list[Callable[[], None]] = []

    def on_stop(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when stopping (the runtime's listeners are removed so)."""
        self._on_stop.append(callback)

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._loop(), name="contacts-worker")
        if self.feed is not None:
            self.feed.start()

    def wake(self) -> None:
        self.wakeup.set()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        """Stop looking, give the runs in progress back (each resumes from its last chunk)."""
        for callback in self._on_stop:
            callback()
        if self.feed is not None:
            await self.feed.stop()
        if self._task is not None:
            await cancel_and_wait(self._task, timeout=10)
            self._task = None
        runs, self._runs = self._runs, {}
        for task in runs.values():
            await cancel_and_wait(task, timeout=10)
        for mailbox_id in runs:
            try:
                await self.sync.release(mailbox_id)
            except Exception:  # the claim runs out by itself
                log.warning("giving back the contact sync of %s failed", mailbox_id, exc_info=True)

    async def _loop(self) -> None:
        await poll(self.run_once, self.wakeup, self.poll_seconds, "contacts worker")

    async def run_once(self) -> list[str]:
        """Claim what is due, up to the free slots, and start each run; their mailbox ids."""
        for mailbox_id, task in list(self._runs.items()):
            if task.done():
                del self._runs[mailbox_id]
        free = self.concurrency - len(self._runs)
        if free <= 0:
            return []
        claimed = await self.sync.claim_due(free)
        for row in claimed:
            self._runs[row.mailbox_id] = asyncio.create_task(
                self._run(row), name=f"contacts-sync-{row.mailbox_id}"
            )
        return [row.mailbox_id for row in claimed]

    async def _run(self, row: SyncState) -> None:
        try:
            await self.sync.run_claimed(row)
        finally:
            self.wake()  # a slot is free

    async def idle(self) -> None:
        """Wait until the runs started so far have ended (tests)."""
        while self._runs:
            tasks = list(self._runs.values())
            await asyncio.gather(*tasks, return_exceptions=True)
            for mailbox_id, task in list(self._runs.items()):
                if task.done():
                    del self._runs[mailbox_id]
