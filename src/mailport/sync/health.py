"""Health and statistics of mailboxes, read from the database (so any process can answer):
status, last connection / success / error, errors, processed and failed messages in the last
24 h, average processing time and the delivery queue (events not yet accepted)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field

from mailport.clock import utc_now
from mailport.mailboxes.models import Mailbox, MailboxStatus
from mailport.store import Database
from mailport.sync import repository as repo

DAY = timedelta(hours=24)


class MailboxHealth(BaseModel):
    mailbox_id: str
    status: str = Field(description="connected | disconnected | error | reauth_required | disabled")
    watcher: str | None = Field(description="The live watcher's state, null when none runs")
    last_connected_at: datetime | None
    last_success_at: datetime | None
    last_error: str | None
    errors_24h: int
    processed_24h: int
    failed_24h: int = Field(
        description="Messages delivered with a parse error, plus after-processing actions that failed "
        "(message.action_failed), in the last 24 h"
    )
    avg_processing_ms: float | None
    queue_size: int = Field(description="Events of this mailbox not yet accepted by the application")


class TenantHealth(BaseModel):
    status: str = Field(description="ok when every mailbox is connected, else degraded")
    mailboxes: int
    by_status: dict[str, int]
    items: list[MailboxHealth]


class MailboxStats(BaseModel):
    mailbox_id: str
    processed_24h: int
    failed_24h: int
    errors_24h: int
    avg_processing_ms: float | None
    queue_size: int


class TenantStats(BaseModel):
    processed_24h: int
    failed_24h: int
    errors_24h: int
    avg_processing_ms: float | None
    queue_size: int
    mailboxes: list[MailboxStats]


def _status(mailbox: Mailbox, lease: Any) -> str:
    status = mailbox.health.status
    if status in (MailboxStatus.ERROR, MailboxStatus.REAUTH_REQUIRED, MailboxStatus.DISABLED):
        return status.value
    if lease is not None and lease.state == "connected" and status is MailboxStatus.CONNECTED:
        return "connected"
    return "disconnected"


async def mailbox_health(
    database: Database, mailboxes: list[Mailbox], *, now: datetime | None = None
) -> list[MailboxHealth]:
    now = now or utc_now()
    ids = [m.id for m in mailboxes]
    async with database.connect() as conn:
        totals = await repo.totals_since(conn, ids, now - DAY)
        queues = await repo.unaccepted_counts(conn, ids)
        leases = await repo.leases_of(conn, ids, now=now)
    out = []
    for m in mailboxes:
        t = totals.get(m.id, repo.Totals(0, 0, 0, 0))
        lease = leases.get(m.id)
        out.append(
            MailboxHealth(
                mailbox_id=m.id,
                status=_status(m, lease),
                watcher=lease.state if lease is not None else None,
                last_connected_at=lease.last_connected_at if lease is not None else None,
                last_success_at=m.health.last_success_at,
                last_error=m.health.last_error,
                errors_24h=m.health.error_count_24h,
                processed_24h=t.processed,
                failed_24h=t.failed,
                avg_processing_ms=t.avg_processing_ms,
                queue_size=queues.get(m.id, 0),
            )
        )
    return out


def tenant_health(items: list[MailboxHealth]) -> TenantHealth:
    by_status: dict[str, int] = {}
    for item in items:
        by_status[item.status] = by_status.get(item.status, 0) + 1
    ok = all(i.status in ("connected", "disabled") for i in items)
    return TenantHealth(
        status="ok" if ok else "degraded", mailboxes=len(items), by_status=by_status, items=items
    )


def tenant_stats(items: list[MailboxHealth]) -> TenantStats:
    processed = sum(i.processed_24h for i in items)
    weighted = sum((i.avg_processing_ms or 0) * i.processed_24h for i in items)
    return TenantStats(
        processed_24h=processed,
        failed_24h=sum(i.failed_24h for i in items),
        errors_24h=sum(i.errors_24h for i in items),
        avg_processing_ms=round(weighted / processed, 2) if processed else None,
        queue_size=sum(i.queue_size for i in items),
        mailboxes=[
            MailboxStats(
                mailbox_id=i.mailbox_id,
                processed_24h=i.processed_24h,
                failed_24h=i.failed_24h,
                errors_24h=i.errors_24h,
                avg_processing_ms=i.avg_processing_ms,
                queue_size=i.queue_size,
            )
            for i in items
        ],
    )
