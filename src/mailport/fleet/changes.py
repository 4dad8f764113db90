"""Following mailbox changes at the cost of the changes: the ``mailbox_changes`` log.

Triggers (0023_fleet) add a row for every mailbox created, deleted, or changed in what its
watchers depend on; PostgreSQL also NOTIFYs ``mailport_mailbox_changes``. A
:class:`ChangeFollower` keeps the last sequence number it read and returns the ids changed
since: a reconcile then reloads those mailboxes only, instead of reading every mailbox's
fingerprint twice a second.

Gaps: on PostgreSQL a sequence number is taken when the trigger runs but becomes visible when
its transaction commits, so seq 8 may show before seq 7. Numbers skipped below the highest seen
stay *open* and are asked for again for ``gap_seconds`` (10 s: longer than any mailbox write's
transaction); a rolled-back change leaves a gap that simply closes then.

Wake-ups: a NOTIFY (PostgreSQL), a local :meth:`ChangeFollower.poke` (a change made through this
process), or the fallback poll (``poll_seconds``: 0.5 s on SQLite, ~2 s on PostgreSQL, where the
poll only covers a lost LISTEN connection).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from mailport.fleet.listen import MAILBOX_CHANGES, Listener
from mailport.store.database import Database
from mailport.store.tables import mailbox_changes

GAP_SECONDS = 10.0


class ChangeFollower:
    """``await start()`` (position at the log's end), then ``await wait()`` / ``await read()``."""

    def __init__(
        self,
        database: Database,
        *,
        poll_seconds: float | None = None,
        gap_seconds: float = GAP_SECONDS,
        listener: Listener | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.database = database
        if poll_seconds is None:
            poll_seconds = 2.0 if database.dialect == "postgresql" else 0.5
        self.poll_seconds = poll_seconds
        self.gap_seconds = gap_seconds
        self.monotonic = monotonic
        self.last = 0
        self.gaps: dict[int, float] = {}  # seq not seen yet -> when it was first missed
        self.reads = 0  # queries made (for tests and stats)
        self._wake = asyncio.Event()
        if listener is not None:
            listener.subscribe(MAILBOX_CHANGES, lambda _seq: self._wake.set())
            listener.on_connect(self._wake.set)  # whatever came while it was away

    async def start(self) -> None:
        """Start at the end of the log: the caller reads the full state after this."""
        async with self.database.connect() as conn:
            latest = (await conn.execute(select(func.max(mailbox_changes.c.seq)))).scalar()
        self.last = int(latest or 0)
        self.gaps = {}

    def poke(self) -> None:
        """Read now (a change was made through this process)."""
        self._wake.set()

    async def wait(self, timeout: float | None = None) -> bool:
        """Until woken or the poll interval (or ``timeout``, if shorter) passed; True if woken."""
        limit = self.poll_seconds if timeout is None else min(timeout, self.poll_seconds)
        try:
            await asyncio.wait_for(self._wake.wait(), limit)
            return True
        except TimeoutError:
            return False
        finally:
            self._wake.clear()

    async def read(self) -> set[str]:
        """The ids of the mailboxes changed since the previous read."""
        self._wake.clear()
        async with self.database.connect() as conn:
            return await self.read_with(conn)

    async def read_with(self, conn: AsyncConnection) -> set[str]:
        now = self.monotonic()
        self.gaps = {seq: at for seq, at in self.gaps.items() if now - at < self.gap_seconds}
        condition = mailbox_changes.c.seq > self.last
        if self.gaps:
            condition = or_(condition, mailbox_changes.c.seq.in_(sorted(self.gaps)))
        query = select(mailbox_changes.c.seq, mailbox_changes.c.mailbox_id).where(condition)
        rows = [(int(row.seq), str(row.mailbox_id)) for row in await conn.execute(query)]
        self.reads += 1
        changed = {mailbox_id for _, mailbox_id in rows}
        seen = {seq for seq, _ in rows}
        for seq in seen:
            self.gaps.pop(seq, None)
        highest = max(seen, default=self.last)
        if highest > self.last:
            for seq in range(self.last + 1, highest):
                if seq not in seen:
                    self.gaps.setdefault(seq, now)
            self.last = highest
        return changed


async def purge(conn: AsyncConnection, *, before: datetime) -> int:
    """Forget changes logged before ``before``, keeping the newest row (the sequence's mark)."""
    newest = select(func.max(mailbox_changes.c.seq)).scalar_subquery()
    result = await conn.execute(
        delete(mailbox_changes).where(mailbox_changes.c.at < before, mailbox_changes.c.seq < newest)
    )
    return int(result.rowcount or 0)


__all__ = ["GAP_SECONDS", "ChangeFollower", "purge"]
