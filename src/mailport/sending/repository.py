"""Every SQL statement on ``outbound_messages``: the service's inserts and reads, the worker's
claims and state changes. The states and their rules are drawn in
:mod:`mailport.sending.models`; here each change is one conditional ``UPDATE`` that names the
state it leaves (and the claimant), so two processes never both act on a row: the loser's
``UPDATE`` matches nothing.

Claims: PostgreSQL takes due rows with ``FOR UPDATE SKIP LOCKED`` inside the claiming
``UPDATE``; SQLite has one writer, so the same statement is atomic there too.

**A claim is a tenure, like a lease's fencing token** (:mod:`mailport.leases`): every claim adds
one to ``attempts``, and each later step of that claim names it (``claimed_by`` *and* the
``attempts`` it claimed with, :class:`Tenure`). The owner id alone is not enough: a process
paused past its claim (GC, SIGSTOP, a partition) whose row was taken over, given back and
claimed again *by the same process* (another lane) would otherwise find ``claimed_by`` its own
and send the final dot a second time. A step whose tenure ended matches no row: nothing is
written, and the worker counts it in ``mailport_fenced_writes_refused_total``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, func, null, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from mailport.sending.draft import Composed
from mailport.sending.models import (
    FINAL,
    OutboundMessage,
    SendError,
    SendState,
    SentCopyState,
)
from mailport.sending.transport import Accepted
from mailport.store.rows import from_row
from mailport.store.tables import outbound_messages as om

# every column but the bytes: what a listing reads
_PUBLIC = [c for c in om.c if c.name != "raw"]


@dataclass(frozen=True, slots=True)
class NewSend:
    """One row to insert (the service fills it from a composed message)."""

    id: str
    tenant_id: str
    mailbox_id: str
    state: SendState
    composed: Composed = field(repr=False)
    subject: str | None
    in_reply_to: str | None
    idempotency_key: str | None
    request_hash: str | None
    send_at: datetime | None
    next_attempt_at: datetime | None
    sent_copy: SentCopyState
    draft_ref: str | None
    now: datetime


@dataclass(frozen=True, slots=True)
class KeyedSend:
    """The send an Idempotency-Key already names."""

    id: str
    tenant_id: str
    request_hash: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Tenure:
    """One claim of one row: who claimed it and the ``attempts`` it was claimed with."""

    send_id: str
    owner: str
    attempt: int

    def held(self) -> ColumnElement[bool]:
        """The row is still in this claim (a SQL condition for the step's ``UPDATE``)."""
        return and_(om.c.id == self.send_id, om.c.claimed_by == self.owner, om.c.attempts == self.attempt)


@dataclass(frozen=True, slots=True)
class Claimed:
    """A row a worker claimed to send: what the transport needs, and what the events say."""

    message: OutboundMessage
    raw: bytes = field(repr=False)
    eight_bit: bool
    smtputf8: bool
    draft_ref: str | None

    def tenure(self, owner: str) -> Tenure:
        return Tenure(self.message.id, owner, self.message.attempts)


@dataclass(frozen=True, slots=True)
class AfterSend:
    """A sent row whose Sent copy or draft deletion is still to do."""

    message: OutboundMessage
    raw: bytes | None = field(repr=False)
    draft_ref: str | None
    sent_copy_attempts: int
    search: bool = True  # look for an earlier copy first (False: handed over right after sending)


def to_message(row: Any) -> OutboundMessage:
    return from_row(
        OutboundMessage,
        row,
        state=SendState(row.state),
        recipients=tuple(json.loads(row.recipients)),
        last_error=SendError.from_json(json.loads(row.last_error) if row.last_error else None),
        refused=json.loads(row.refused) if row.refused else {},
        sent_copy=SentCopyState(row.sent_copy),
        size=int(row.size),
        attempts=int(row.attempts),
        confirmed=bool(row.confirmed),
    )


# --- the service ----------------------------------------------------------------------


async def insert(conn: AsyncConnection, new: NewSend) -> None:
    """Insert one send; a concurrent insert with the same Idempotency-Key raises
    ``IntegrityError`` (the unique constraint decides which request won)."""
    composed = new.composed
    await conn.execute(
        om.insert().values(
            id=new.id,
            tenant_id=new.tenant_id,
            mailbox_id=new.mailbox_id,
            state=new.state.value,
            idempotency_key=new.idempotency_key,
            request_hash=new.request_hash,
            message_id=composed.message_id,
            message_id_key=composed.message_id.lower(),
            in_reply_to=new.in_reply_to,
            sender=composed.sender,
            recipients=json.dumps(list(composed.recipients), ensure_ascii=False),
            subject=new.subject,
            raw=composed.raw,
            size=len(composed.raw),
            eight_bit=composed.eight_bit,
            smtputf8=composed.smtputf8,
            send_at=new.send_at,
            next_attempt_at=new.next_attempt_at,
            attempts=0,
            confirmed=True,
            sent_copy=new.sent_copy.value,
            sent_copy_attempts=0,
            draft_ref=new.draft_ref,
            created_at=new.now,
            updated_at=new.now,
        )
    )


async def by_key(conn: AsyncConnection, mailbox_id: str, key: str) -> KeyedSend | None:
    row = (
        await conn.execute(
            select(om.c.id, om.c.tenant_id, om.c.request_hash, om.c.created_at).where(
                om.c.mailbox_id == mailbox_id, om.c.idempotency_key == key
            )
        )
    ).first()
    return None if row is None else from_row(KeyedSend, row)


async def clear_key(conn: AsyncConnection, send_id: str, key: str) -> None:
    """Forget an expired Idempotency-Key (the send itself stays)."""
    await conn.execute(
        update(om).where(om.c.id == send_id, om.c.idempotency_key == key).values(idempotency_key=None)
    )


async def get(conn: AsyncConnection, tenant_id: str, mailbox_id: str, send_id: str) -> OutboundMessage | None:
    row = (
        await conn.execute(
            select(*_PUBLIC).where(
                om.c.id == send_id, om.c.tenant_id == tenant_id, om.c.mailbox_id == mailbox_id
            )
        )
    ).first()
    return None if row is None else to_message(row)


async def page(
    conn: AsyncConnection,
    tenant_id: str,
    mailbox_id: str,
    *,
    state: SendState | None,
    limit: int,
    before_id: str | None,
) -> list[OutboundMessage]:
    """Newest first (ids are time-ordered); ``before_id`` is the last id of the previous page."""
    query = select(*_PUBLIC).where(om.c.tenant_id == tenant_id, om.c.mailbox_id == mailbox_id)
    if state is not None:
        query = query.where(om.c.state == state.value)
    if before_id is not None:
        query = query.where(om.c.id < before_id)
    result = await conn.execute(query.order_by(om.c.id.desc()).limit(limit))
    return [to_message(row) for row in result]


async def cancel(
    conn: AsyncConnection, tenant_id: str, mailbox_id: str, send_id: str, *, now: datetime
) -> bool:
    """Scheduled or queued -> cancelled (the bytes dropped); False when it was in no such state."""
    result = await conn.execute(
        update(om)
        .where(
            om.c.id == send_id,
            om.c.tenant_id == tenant_id,
            om.c.mailbox_id == mailbox_id,
            om.c.state.in_([SendState.SCHEDULED.value, SendState.QUEUED.value]),
        )
        .values(state=SendState.CANCELLED.value, raw=None, next_attempt_at=None, updated_at=now)
    )
    return bool(result.rowcount)


# --- the worker: claims -------------------------------------------------------------------


def _raw_if_copy_pending() -> Any:
    """Keep the bytes only while a Sent copy still needs them."""
    return case((om.c.sent_copy == SentCopyState.PENDING.value, om.c.raw), else_=null())


def _due(now: datetime) -> ColumnElement[bool]:
    """Rows a worker may claim now: queued and due, scheduled and due, or sending with a claim
    that ran out (the process died before the end of DATA: sent again, at least once)."""
    return or_(
        and_(om.c.state == SendState.QUEUED.value, om.c.next_attempt_at <= now),
        and_(om.c.state == SendState.SCHEDULED.value, om.c.send_at <= now),
        and_(om.c.state == SendState.SENDING.value, om.c.claim_until < now),
    )


async def due_mailboxes(conn: AsyncConnection, *, now: datetime, limit: int = 500) -> list[str]:
    """Mailboxes with something to send now."""
    result = await conn.execute(select(om.c.mailbox_id).where(_due(now)).distinct().limit(limit))
    return [row.mailbox_id for row in result]


async def tenant_of(conn: AsyncConnection, mailbox_id: str) -> str | None:
    row = (await conn.execute(select(om.c.tenant_id).where(om.c.mailbox_id == mailbox_id).limit(1))).first()
    return None if row is None else str(row.tenant_id)


async def next_due(conn: AsyncConnection) -> datetime | None:
    """The earliest time a waiting row becomes due (for a worker's sleep)."""
    queued = select(func.min(om.c.next_attempt_at)).where(om.c.state == SendState.QUEUED.value)
    scheduled = select(func.min(om.c.send_at)).where(om.c.state == SendState.SCHEDULED.value)
    times = [(await conn.execute(q)).scalar_one_or_none() for q in (queued, scheduled)]
    found = [t for t in times if t is not None]
    return min(found) if found else None


async def claim(
    conn: AsyncConnection, mailbox_id: str, *, owner: str, now: datetime, until: datetime, limit: int
) -> list[Claimed]:
    """Claim up to ``limit`` of the mailbox's due rows, oldest first: ``sending``, claimed by
    ``owner`` until ``until``, one more attempt."""
    if limit <= 0:
        return []
    chosen = (
        select(om.c.id)
        .where(om.c.mailbox_id == mailbox_id, _due(now))
        .order_by(om.c.created_at, om.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    ids = [row.id for row in await conn.execute(chosen)]  # SQLite: one writer, nobody between
    if not ids:
        return []
    result = await conn.execute(
        update(om)
        .where(om.c.id.in_(ids), _due(now))
        .values(
            state=SendState.SENDING.value,
            claimed_by=owner,
            claim_until=until,
            attempts=om.c.attempts + 1,
            updated_at=now,
        )
        .returning(*om.c)
    )
    rows = sorted(result, key=lambda r: (r.created_at, r.id))
    return [
        Claimed(
            message=to_message(row),
            raw=bytes(row.raw),
            eight_bit=bool(row.eight_bit),
            smtputf8=bool(row.smtputf8),
            draft_ref=row.draft_ref,
        )
        for row in rows
        if row.raw is not None
    ]


async def renew(conn: AsyncConnection, ids: Sequence[str], *, owner: str, until: datetime) -> int:
    """Extend this worker's claims on rows it is still sending."""
    if not ids:
        return 0
    result = await conn.execute(
        update(om)
        .where(
            om.c.id.in_(list(ids)),
            om.c.claimed_by == owner,
            om.c.state.in_([SendState.SENDING.value, SendState.COMMITTING.value]),
        )
        .values(claim_until=until)
    )
    return int(result.rowcount or 0)


async def committing(conn: AsyncConnection, tenure: Tenure, *, now: datetime, until: datetime) -> bool:
    """``sending`` -> ``committing`` (just before the end of DATA); False: the claim was lost."""
    return tenure.send_id in await committing_many(conn, [tenure], now=now, until=until)


async def committing_many(
    conn: AsyncConnection, tenures: Sequence[Tenure], *, now: datetime, until: datetime
) -> set[str]:
    """:func:`committing` for several rows in one statement: the ids it moved (the others'
    claims were lost)."""
    if not tenures:
        return set()
    result = await conn.execute(
        update(om)
        .where(or_(*(t.held() for t in tenures)), om.c.state == SendState.SENDING.value)
        .values(state=SendState.COMMITTING.value, claim_until=until, updated_at=now)
        .returning(om.c.id)
    )
    return {row.id for row in result}


async def mark_sent(
    conn: AsyncConnection,
    tenure: Tenure,
    *,
    accepted: Accepted,
    now: datetime,
    keep_raw: bool,
    keep_until: datetime | None = None,
) -> OutboundMessage | None:
    """``committing`` -> ``sent`` (confirmed); None when the row was not this worker's any more.
    ``keep_until``: the worker keeps its claim for the after-send steps (it does them itself at
    once; when it dies, the claim runs out and any worker finds the row)."""
    values: dict[str, Any] = {
        "state": SendState.SENT.value,
        "smtp_reply": accepted.reply,
        "refused": json.dumps(accepted.refused, ensure_ascii=False) if accepted.refused else None,
        "confirmed": True,
        "sent_at": now,
        "updated_at": now,
        "claimed_by": tenure.owner if keep_until is not None else None,
        "claim_until": keep_until,
        "last_error": None,
        "next_attempt_at": now,  # the Sent copy step is due at once
    }
    if not keep_raw:
        values["raw"] = None
    result = await conn.execute(
        update(om)
        .where(tenure.held(), om.c.state == SendState.COMMITTING.value)
        .values(**values)
        .returning(*_PUBLIC)
    )
    row = result.first()
    return None if row is None else to_message(row)


async def unconfirmed(conn: AsyncConnection, *, now: datetime, limit: int = 100) -> list[OutboundMessage]:
    """``committing`` rows whose claim ran out (the process died at the end of DATA) become
    ``sent`` with ``confirmed = False``: never sent again."""
    stuck = (
        select(om.c.id)
        .where(om.c.state == SendState.COMMITTING.value, om.c.claim_until < now)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    ids = [row.id for row in await conn.execute(stuck)]
    if not ids:
        return []
    result = await conn.execute(
        update(om)
        .where(om.c.id.in_(ids), om.c.state == SendState.COMMITTING.value, om.c.claim_until < now)
        .values(
            state=SendState.SENT.value,
            confirmed=False,
            sent_at=now,
            updated_at=now,
            claimed_by=None,
            claim_until=None,
            next_attempt_at=now,
            raw=_raw_if_copy_pending(),
        )
        .returning(*_PUBLIC)
    )
    return [to_message(row) for row in result]


async def mark_unconfirmed(conn: AsyncConnection, tenure: Tenure, *, now: datetime) -> OutboundMessage | None:
    """``committing`` -> ``sent``, ``confirmed = False``: the final dot went out and no answer came."""
    result = await conn.execute(
        update(om)
        .where(tenure.held(), om.c.state == SendState.COMMITTING.value)
        .values(
            state=SendState.SENT.value,
            confirmed=False,
            sent_at=now,
            updated_at=now,
            claimed_by=None,
            claim_until=None,
            next_attempt_at=now,
            raw=_raw_if_copy_pending(),
        )
        .returning(*_PUBLIC)
    )
    row = result.first()
    return None if row is None else to_message(row)


async def retry_later(
    conn: AsyncConnection,
    tenure: Tenure,
    *,
    error: SendError,
    at: datetime,
    now: datetime,
) -> bool:
    """Back to ``queued`` until ``at`` (a temporary failure before the server accepted)."""
    result = await conn.execute(
        update(om)
        .where(
            tenure.held(),
            om.c.state.in_([SendState.SENDING.value, SendState.COMMITTING.value]),
        )
        .values(
            state=SendState.QUEUED.value,
            next_attempt_at=at,
            last_error=json.dumps(error.to_json(), ensure_ascii=False),
            claimed_by=None,
            claim_until=None,
            updated_at=now,
        )
    )
    return bool(result.rowcount)


async def release(conn: AsyncConnection, tenure: Tenure, *, now: datetime) -> bool:
    """Give a claimed row back without counting the attempt (the worker is stopping, or the
    mailbox is rate limited): queued, due now."""
    result = await conn.execute(
        update(om)
        .where(tenure.held(), om.c.state == SendState.SENDING.value)
        .values(
            state=SendState.QUEUED.value,
            next_attempt_at=now,
            attempts=om.c.attempts - 1,
            claimed_by=None,
            claim_until=None,
            updated_at=now,
        )
    )
    return bool(result.rowcount)


async def mark_failed(
    conn: AsyncConnection, send_id: str, *, tenure: Tenure | None, error: SendError, now: datetime
) -> OutboundMessage | None:
    """-> ``failed`` for good (bytes dropped); ``tenure`` None for a row nobody claimed."""
    where = [om.c.id == send_id, om.c.state.not_in([s.value for s in FINAL])]
    if tenure is not None:
        where.append(tenure.held())
    result = await conn.execute(
        update(om)
        .where(*where)
        .values(
            state=SendState.FAILED.value,
            last_error=json.dumps(error.to_json(), ensure_ascii=False),
            next_attempt_at=None,
            claimed_by=None,
            claim_until=None,
            raw=None,
            sent_copy=SentCopyState.SKIPPED.value,
            updated_at=now,
        )
        .returning(*_PUBLIC)
    )
    row = result.first()
    return None if row is None else to_message(row)


async def defer(conn: AsyncConnection, mailbox_id: str, *, until: datetime, now: datetime) -> int:
    """A rate-limited mailbox: its due rows wait (queued) until ``until``."""
    result = await conn.execute(
        update(om)
        .where(
            om.c.mailbox_id == mailbox_id,
            or_(
                and_(om.c.state == SendState.QUEUED.value, om.c.next_attempt_at < until),
                and_(om.c.state == SendState.SCHEDULED.value, om.c.send_at <= now),
            ),
        )
        .values(state=SendState.QUEUED.value, next_attempt_at=until, updated_at=now)
    )
    return int(result.rowcount or 0)


# --- rate limits ----------------------------------------------------------------------------


async def sends_since(conn: AsyncConnection, mailbox_id: str, since: datetime) -> tuple[int, datetime | None]:
    """How many of the mailbox's messages went out (or are going out) since ``since``, and the
    oldest such send time (when the window frees its first place)."""
    in_flight = om.c.state.in_([SendState.SENDING.value, SendState.COMMITTING.value])
    sent = and_(om.c.state == SendState.SENT.value, om.c.sent_at >= since)
    row = (
        await conn.execute(
            select(func.count(), func.min(om.c.sent_at)).where(
                om.c.mailbox_id == mailbox_id, or_(in_flight, sent)
            )
        )
    ).one()
    return int(row[0]), row[1]


# --- the worker: after sending (Sent copy, draft) ------------------------------------------


def _after_send_due(now: datetime) -> ColumnElement[bool]:
    return and_(
        om.c.state == SendState.SENT.value,
        or_(om.c.sent_copy == SentCopyState.PENDING.value, om.c.draft_ref.is_not(None)),
        om.c.next_attempt_at <= now,
        or_(om.c.claim_until.is_(None), om.c.claim_until < now),
    )


async def claim_after_send(
    conn: AsyncConnection, *, owner: str, now: datetime, until: datetime, limit: int
) -> list[AfterSend]:
    chosen = (
        select(om.c.id)
        .where(_after_send_due(now))
        .order_by(om.c.sent_at, om.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    ids = [row.id for row in await conn.execute(chosen)]
    if not ids:
        return []
    result = await conn.execute(
        update(om)
        .where(om.c.id.in_(ids), _after_send_due(now))
        .values(claimed_by=owner, claim_until=until)
        .returning(*om.c)
    )
    return [
        AfterSend(
            message=to_message(row),
            raw=None if row.raw is None else bytes(row.raw),
            draft_ref=row.draft_ref,
            sent_copy_attempts=int(row.sent_copy_attempts),
        )
        for row in result
    ]


async def still_claimed(
    conn: AsyncConnection, send_ids: Sequence[str], *, owner: str, now: datetime
) -> set[str]:
    """Which of ``send_ids`` are still claimed by ``owner`` for their after-send steps, and
    not run out at ``now``: asked right before storing Sent copies or deleting drafts, which
    no rollback can undo (a row whose claim ran out may be another worker's already)."""
    if not send_ids:
        return set()
    result = await conn.execute(
        select(om.c.id).where(
            om.c.id.in_(list(send_ids)),
            om.c.claimed_by == owner,
            om.c.state == SendState.SENT.value,
            om.c.claim_until > now,
        )
    )
    return {row.id for row in result}


async def after_send_done(
    conn: AsyncConnection,
    send_id: str,
    *,
    owner: str,
    state: SentCopyState,
    ref: str | None,
    attempts: int,
    now: datetime,
) -> bool:
    """The Sent copy stored, skipped or given up, and the draft deleted (or given up): the
    bytes are no longer needed. False: the claim was no longer ``owner``'s (nothing written)."""
    result = await conn.execute(
        update(om)
        .where(om.c.id == send_id, om.c.claimed_by == owner)
        .values(
            sent_copy=state.value,
            sent_copy_ref=ref,
            sent_copy_attempts=attempts,
            raw=None,
            draft_ref=None,
            next_attempt_at=None,
            claimed_by=None,
            claim_until=None,
            updated_at=now,
        )
    )
    return bool(result.rowcount)


async def copy_retry(
    conn: AsyncConnection, send_id: str, *, owner: str, attempts: int, at: datetime, now: datetime
) -> bool:
    """The Sent copy failed: again at ``at``. False: the claim was no longer ``owner``'s."""
    result = await conn.execute(
        update(om)
        .where(om.c.id == send_id, om.c.claimed_by == owner)
        .values(
            sent_copy_attempts=attempts, next_attempt_at=at, claimed_by=None, claim_until=None, updated_at=now
        )
    )
    return bool(result.rowcount)
