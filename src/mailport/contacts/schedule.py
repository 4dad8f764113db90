"""The ``contact_sync`` rows: each harvesting mailbox's progress, schedule and claim.

One row per mailbox that was ever switched on. Its ``state``:

- ``pending`` — a run is wanted now (harvesting switched on, the period widened, a sync
  requested); the worker claims it at once;
- ``running`` — a process holds the claim (``claimed_by`` until ``claim_until``, renewed with
  every batch it records); a claim that ran out (the process died) is taken again and the run
  resumes from the folders' positions;
- ``idle`` — done; due again at ``next_at`` (the end of the run plus ``resync_hours``);
  ``next_at`` NULL: harvesting is switched off;
- ``failed`` — the last run failed (``last_error`` {code, message, attempts}); due again at
  ``next_at`` (a backoff), or never (``next_at`` NULL: a connector that cannot harvest).

``folders`` maps each harvested folder to its position: the newest arrival recorded there,
minus a day (so mail a server files late, or with a clock a little behind, is still read); the
next run reads from there, and the digest of every counted message makes the overlap harmless.
``since`` is the start of the harvested period. Every write by a claimant names the claimant in
its ``WHERE`` (the fence): a run whose claim was taken over or withdrawn writes nothing more.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from mailport.contacts.models import ContactSettings
from mailport.store.database import dialect_insert
from mailport.store.rows import from_row
from mailport.store.tables import contact_sync

PENDING, RUNNING, IDLE, FAILED = "pending", "running", "idle", "failed"


class ClaimLostError(Exception):
    """Another process took the run over, or harvesting was switched off or restarted: stop."""


@dataclass(frozen=True, slots=True)
class SyncState:
    """One ``contact_sync`` row."""

    mailbox_id: str
    state: str
    since: datetime
    next_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    messages: int
    claimed_by: str | None
    claim_until: datetime | None
    updated_at: datetime
    folders: dict[str, str] = field(default_factory=dict)
    last_error: dict[str, Any] | None = None

    def positions(self) -> dict[str, datetime]:
        return {path: datetime.fromisoformat(at) for path, at in self.folders.items()}

    def to_json(self) -> dict[str, Any]:
        """The public shape (``GET /v1/mailboxes/{id}/contacts`` → ``sync``)."""

        def iso(value: datetime | None) -> str | None:
            return None if value is None else value.isoformat()

        return {
            "state": self.state,
            "since": iso(self.since),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "next_at": iso(self.next_at),
            "messages": self.messages,
            "last_error": self.last_error,
            "folders": dict(self.folders),
        }


def _state(row: Any) -> SyncState:
    return from_row(
        SyncState,
        row,
        folders=json.loads(row.folders or "{}"),
        last_error=json.loads(row.last_error) if row.last_error else None,
    )


async def get(conn: AsyncConnection, mailbox_id: str) -> SyncState | None:
    row = (await conn.execute(select(contact_sync).where(contact_sync.c.mailbox_id == mailbox_id))).first()
    return None if row is None else _state(row)


def _on(settings: ContactSettings | None) -> bool:
    return settings is not None and settings.policy != "off"


async def _start(conn: AsyncConnection, mailbox_id: str, settings: ContactSettings, *, now: datetime) -> None:
    """A run from the period's start, wanted now (any claim is withdrawn)."""
    values = {
        "state": PENDING,
        "since": now - timedelta(days=settings.backfill_days),
        "folders": "{}",
        "next_at": now,
        "messages": 0,
        "last_error": None,
        "claimed_by": None,
        "claim_until": None,
        "updated_at": now,
    }
    statement = dialect_insert(conn, contact_sync).values(mailbox_id=mailbox_id, **values)
    await conn.execute(statement.on_conflict_do_update(index_elements=["mailbox_id"], set_=values))


async def follow(
    conn: AsyncConnection,
    mailbox_id: str,
    before: ContactSettings | None,
    after: ContactSettings | None,
    *,
    now: datetime,
) -> None:
    """Follow a change of a mailbox's ``settings.contacts`` (in the mailbox write's transaction).

    Switched on, or the period made longer, or the policy widened to received mail: a run from
    the period's start, now. Other folders: a run now, from where each folder was. Switched off:
    the run in progress stops at its next batch and nothing is scheduled."""
    current = await get(conn, mailbox_id)
    if not _on(after):
        if current is not None:
            await conn.execute(
                update(contact_sync)
                .where(contact_sync.c.mailbox_id == mailbox_id)
                .values(
                    state=IDLE if current.state in (PENDING, RUNNING) else current.state,
                    next_at=None,
                    claimed_by=None,
                    claim_until=None,
                    updated_at=now,
                )
            )
        return
    assert after is not None
    if current is None or not _on(before) or before is None:
        await _start(conn, mailbox_id, after, now=now)
        return
    widened = after.policy == "sent_and_received" and before.policy == "sent_only"
    if after.backfill_days > before.backfill_days or widened or after.fold != before.fold:
        await _start(conn, mailbox_id, after, now=now)
    elif after.folders != before.folders:
        await request(conn, mailbox_id, now=now)
    elif after.resync_hours != before.resync_hours and current.state == IDLE:
        await conn.execute(
            update(contact_sync)
            .where(contact_sync.c.mailbox_id == mailbox_id)
            .values(
                next_at=(current.finished_at or now) + timedelta(hours=after.resync_hours), updated_at=now
            )
        )


async def request(
    conn: AsyncConnection,
    mailbox_id: str,
    *,
    now: datetime,
    full: bool = False,
    settings: ContactSettings | None = None,
) -> None:
    """A run wanted now (``full``: from the period's start, ``settings`` giving the period). A
    run in progress goes on (a full one is restarted)."""
    if full:
        assert settings is not None
        await _start(conn, mailbox_id, settings, now=now)
        return
    await conn.execute(
        update(contact_sync)
        .where(contact_sync.c.mailbox_id == mailbox_id, contact_sync.c.state != RUNNING)
        .values(state=PENDING, next_at=now, updated_at=now)
    )


def _due(now: datetime) -> Any:
    return or_(
        contact_sync.c.state == PENDING,
        and_(contact_sync.c.state.in_([IDLE, FAILED]), contact_sync.c.next_at <= now),
        and_(contact_sync.c.state == RUNNING, contact_sync.c.claim_until < now),
    )


def _claimed(owner: str, *, now: datetime, until: datetime) -> dict[str, Any]:
    return {
        "state": RUNNING,
        "claimed_by": owner,
        "claim_until": until,
        "started_at": now,
        "messages": 0,
        "updated_at": now,
    }


async def claim_due(
    conn: AsyncConnection, owner: str, *, now: datetime, until: datetime, limit: int
) -> list[SyncState]:
    """Claim up to ``limit`` due rows for ``owner`` (pending first, then the longest waiting)."""
    if limit <= 0:
        return []
    chosen = (
        select(contact_sync.c.mailbox_id)
        .where(_due(now))
        .order_by((contact_sync.c.state == PENDING).desc(), contact_sync.c.next_at, contact_sync.c.mailbox_id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    ids = [row.mailbox_id for row in await conn.execute(chosen)]
    if not ids:
        return []
    result = await conn.execute(
        update(contact_sync)
        .where(contact_sync.c.mailbox_id.in_(ids), _due(now))
        .values(**_claimed(owner, now=now, until=until))
        .returning(*contact_sync.c)
    )
    return [_state(row) for row in result]


async def claim(
    conn: AsyncConnection, mailbox_id: str, owner: str, *, now: datetime, until: datetime
) -> SyncState | None:
    """Claim one mailbox's row now, due or not, unless another process holds a live claim."""
    free = or_(
        contact_sync.c.state != RUNNING,
        contact_sync.c.claim_until < now,
        contact_sync.c.claimed_by == owner,
    )
    result = await conn.execute(
        update(contact_sync)
        .where(contact_sync.c.mailbox_id == mailbox_id, free)
        .values(**_claimed(owner, now=now, until=until))
        .returning(*contact_sync.c)
    )
    row = result.first()
    return None if row is None else _state(row)


def _fenced(mailbox_id: str, owner: str) -> Any:
    return and_(
        contact_sync.c.mailbox_id == mailbox_id,
        contact_sync.c.claimed_by == owner,
        contact_sync.c.state == RUNNING,
    )


async def progress(
    conn: AsyncConnection,
    mailbox_id: str,
    owner: str,
    *,
    folders: dict[str, datetime],
    messages: int,
    now: datetime,
    until: datetime,
    since: datetime | None = None,
) -> None:
    """Save the positions and the messages counted so far, renewing the claim; raises
    :class:`ClaimLostError` (rolling the caller's batch back) when the claim is gone."""
    values: dict[str, Any] = {
        "folders": json.dumps({path: at.isoformat() for path, at in sorted(folders.items())}),
        "messages": messages,
        "claim_until": until,
        "updated_at": now,
    }
    if since is not None:
        values["since"] = since
    result = await conn.execute(update(contact_sync).where(_fenced(mailbox_id, owner)).values(**values))
    if not result.rowcount:
        raise ClaimLostError(f"the contact sync of {mailbox_id} is no longer this process's")


async def finish(
    conn: AsyncConnection,
    mailbox_id: str,
    owner: str,
    *,
    now: datetime,
    next_at: datetime | None,
    error: dict[str, Any] | None = None,
) -> bool:
    """End the run: ``idle`` (or ``failed`` with ``error``) and due again at ``next_at``; False
    when the claim was gone (harvesting switched off or restarted meanwhile: nothing changed)."""
    result = await conn.execute(
        update(contact_sync)
        .where(_fenced(mailbox_id, owner))
        .values(
            state=FAILED if error is not None else IDLE,
            finished_at=now,
            next_at=next_at,
            last_error=None if error is None else json.dumps(error, ensure_ascii=False),
            claimed_by=None,
            claim_until=None,
            updated_at=now,
        )
    )
    return bool(result.rowcount)


async def release(conn: AsyncConnection, mailbox_id: str, owner: str, *, now: datetime) -> None:
    """Give a claimed row back unfinished (the worker is stopping): due again at once."""
    await conn.execute(
        update(contact_sync)
        .where(_fenced(mailbox_id, owner))
        .values(state=PENDING, claimed_by=None, claim_until=None, updated_at=now)
    )


async def forget(conn: AsyncConnection, mailbox_id: str) -> None:
    """Drop the row (tests; a deleted mailbox's row goes by cascade)."""
    await conn.execute(delete(contact_sync).where(contact_sync.c.mailbox_id == mailbox_id))
