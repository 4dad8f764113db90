"""The dashboard's figures: live health and 24-hour counts per mailbox, and messages per hour.

Health and the 24-hour totals come from :func:`mailport.sync.health.mailbox_health`;
the per-hour series for the chart reads the same hourly table (``mailbox_stats``), which the
ingestion pipeline fills — the sync module offers totals only, so this one query lives here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from mailport.mailboxes.models import Mailbox
from mailport.store import Database
from mailport.store.tables import mailbox_stats
from mailport.sync.health import MailboxHealth, mailbox_health

HOURS = 24


@dataclass(frozen=True)
class Figures:
    health: MailboxHealth
    hourly: list[int]  # HOURS values, oldest first, the last is the current hour
    hourly_failed: list[int]

    @property
    def processed_24h(self) -> int:
        return self.health.processed_24h

    @property
    def failed_24h(self) -> int:
        return self.health.failed_24h


def hour_of(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


async def hourly_counts(
    database: Database, mailbox_ids: list[str], *, now: datetime
) -> dict[str, tuple[list[int], list[int]]]:
    """(processed, failed) per hour for the last :data:`HOURS` hours, per mailbox."""
    first = hour_of(now) - timedelta(hours=HOURS - 1)
    series = {m: ([0] * HOURS, [0] * HOURS) for m in mailbox_ids}
    if not mailbox_ids:
        return series
    query = select(
        mailbox_stats.c.mailbox_id, mailbox_stats.c.hour, mailbox_stats.c.processed, mailbox_stats.c.failed
    ).where(mailbox_stats.c.mailbox_id.in_(mailbox_ids), mailbox_stats.c.hour >= first)
    async with database.connect() as conn:
        rows = (await conn.execute(query)).all()
    for row in rows:
        index = int((row.hour - first).total_seconds() // 3600)
        if 0 <= index < HOURS:
            processed, failed = series[row.mailbox_id]
            processed[index] += int(row.processed)
            failed[index] += int(row.failed)
    return series


async def figures_for(database: Database, mailboxes: list[Mailbox], *, now: datetime) -> dict[str, Figures]:
    health = await mailbox_health(database, mailboxes, now=now)
    series = await hourly_counts(database, [m.id for m in mailboxes], now=now)
    return {h.mailbox_id: Figures(h, *series[h.mailbox_id]) for h in health}
