"""Who owes an event, and when it counts as accepted: the acceptance rule, in one place.

Why a module of its own: acceptance gates the after-processing actions (a ``delete`` removes
mail from the server) and retention (only accepted events are purged), and it used to be
decided in three places that disagreed, so events appended before a tenant's first webhook
were owed by nobody and never accepted. Every consumer now settles through :func:`settle`, and
the waiting count reads the same expressions (:func:`waiting_counts`).

The rule (``docs/webhooks.md`` has the table of cases)
-------------------------------------------------------
* **Webhook endpoints** owe the events they have a delivery row for: the fan-out gives an active
  endpoint every event of a subscribed type appended after its creation (``seq > start_seq``);
  ``backfill`` adds the waiting events nobody else owed. Before the fan-out has read an event
  the endpoints it *will* get are counted as owing it already (no pull acknowledgement can
  slip in between). A disabled endpoint keeps owing its dead letters (it can replay them); a
  deleted endpoint owes nothing any more.
* **Pull consumers** (``pull_consumers``: a name and a scope, every mailbox or one) owe every
  event of their scope that no webhook endpoint owes, whenever it was appended, and accept
  what they acknowledge (``acked_seq``, a cursor).
* An event owed by nobody — no webhook endpoint took it and no pull consumer covers it yet — is
  **unclaimed**: it is not "waiting" for anyone, is never accepted and keeps its message
  untouched, until a pull consumer covering it appears or an endpoint backfills it.
* An event is **accepted** once every consumer that owes it has accepted it: every delivery
  row answered 2xx, or — owed by pull consumers — every covering consumer acknowledged it.
  ``events.accepted_at`` records that moment; the after-processing actions and retention read
  only that column.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    Update,
    and_,
    bindparam,
    case,
    exists,
    func,
    literal,
    not_,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from mailport import events as event_log
from mailport.store.tables import (
    delivery_state,
    events,
    pull_consumers,
    webhook_deliveries,
    webhook_endpoints,
)

ALL_MAILBOXES = ""  # the scope of a pull consumer of every mailbox
FANOUT_ROW = "dispatcher"  # delivery_state row holding the fan-out cursor
ENDPOINT_ACTIVE = "active"  # webhook_endpoints.status (mailport.delivery.models.EndpointStatus)
DELIVERED = "delivered"  # webhook_deliveries.status (mailport.delivery.models.DeliveryStatus)
BATCH = 1000

_d = webhook_deliveries.alias("owing_delivery")
_ep = webhook_endpoints.alias("owing_endpoint")
_pc = pull_consumers.alias("owing_consumer")
_e = events


def _fanout_seq() -> ColumnElement[int]:
    """The fan-out cursor, read in the same statement as the rule (one snapshot)."""
    cursor = select(delivery_state.c.fanout_seq).where(delivery_state.c.name == FANOUT_ROW)
    return func.coalesce(cursor.scalar_subquery(), 0)


def _subscribes() -> ColumnElement[bool]:
    """``_ep`` subscribes to ``_e``'s type (``events``: space-separated types, NULL = all but
    the opt-in ones, :data:`mailport.events.OPT_IN_TYPES`)."""
    escaped = func.replace(_e.c.type, "_", "\\_")  # "_" is a LIKE wildcard
    return or_(
        and_(_ep.c.events.is_(None), _e.c.type.not_in(sorted(event_log.OPT_IN_TYPES))),
        (literal(" ") + _ep.c.events + literal(" ")).like(
            literal("% ") + escaped + literal(" %"), escape="\\"
        ),
    )


def has_delivery() -> ColumnElement[bool]:
    return exists().where(_d.c.event_seq == _e.c.seq)


def _open_delivery() -> ColumnElement[bool]:
    return exists().where(_d.c.event_seq == _e.c.seq, _d.c.status != DELIVERED)


def predicted() -> ColumnElement[bool]:
    """Not fanned out yet, and an active endpoint of the tenant will get it."""
    endpoint_will_get = exists().where(
        _ep.c.tenant_id == _e.c.tenant_id,
        _ep.c.status == ENDPOINT_ACTIVE,
        _ep.c.start_seq < _e.c.seq,
        _subscribes(),
    )
    return and_(_e.c.seq > _fanout_seq(), endpoint_will_get)


def _covering() -> ColumnElement[bool]:
    return and_(
        _pc.c.tenant_id == _e.c.tenant_id,
        or_(_pc.c.mailbox_id == ALL_MAILBOXES, _pc.c.mailbox_id == _e.c.mailbox_id),
    )


def owed_by_webhook() -> ColumnElement[bool]:
    return or_(has_delivery(), predicted())


def owed() -> ColumnElement[bool]:
    """Some consumer owes the event (it is waiting for that consumer, or accepted)."""
    return or_(owed_by_webhook(), exists().where(_covering()))


def acceptable() -> ColumnElement[bool]:
    """Every consumer that owes the event has accepted it (see the module docstring)."""
    pull_done = and_(
        exists().where(_covering()),
        ~exists().where(_covering(), _pc.c.acked_seq < _e.c.seq),
    )
    return and_(
        not_(predicted()),
        or_(
            and_(has_delivery(), ~_open_delivery()),
            and_(~has_delivery(), pull_done),
        ),
    )


@dataclass(frozen=True)
class Settled:
    """An event that :func:`settle` just marked accepted."""

    id: str
    created_at: datetime


async def settle(
    conn: AsyncConnection,
    *,
    now: datetime,
    tenant_id: str | None = None,
    through: int | None = None,
    mailbox_id: str | None = None,
    pull_owned: bool = False,
) -> list[Settled]:
    """Mark accepted the unaccepted events, among those selected, that :func:`acceptable` says
    every owing consumer has accepted (in ``conn``'s transaction). Select by
    ``tenant_id`` (with ``through``: ``seq <= through``; ``mailbox_id``: that mailbox only);
    ``pull_owned`` skips the events with webhook deliveries (a pull acknowledgement cannot
    change theirs, and during an endpoint's outage they are many)."""
    base = [_e.c.accepted_at.is_(None), acceptable()]
    if pull_owned:
        base.append(~has_delivery())
    if tenant_id is not None:
        base.append(_e.c.tenant_id == tenant_id)
    if through is not None:
        base.append(_e.c.seq <= through)
    if mailbox_id is not None:
        base.append(_e.c.mailbox_id == mailbox_id)
    settled: list[Settled] = []
    query = select(_e.c.seq, _e.c.id, _e.c.created_at).where(*base).order_by(_e.c.seq)
    last = 0
    while True:
        rows = (await conn.execute(query.where(_e.c.seq > last).limit(BATCH))).all()
        settled.extend(await _accept(conn, rows, now))
        if len(rows) < BATCH:
            return settled
        last = int(rows[-1].seq)


@functools.cache
def _settle_delivered() -> Update:
    """:func:`settle_delivered`'s statement, built once: the rule is ~30 clauses (~13 of them
    subqueries), and building it and its cache key for every batch of webhook results made
    garbage cycles for the collector besides (issue 21)."""
    return (
        update(_e)
        .where(_e.c.accepted_at.is_(None), acceptable(), _e.c.seq.in_(bindparam("b_seqs", expanding=True)))
        .values(accepted_at=bindparam("b_now", type_=_e.c.accepted_at.type))
    )


async def settle_delivered(conn: AsyncConnection, seqs: Iterable[int], *, now: datetime) -> int:
    """:func:`settle` of ``seqs`` (events whose deliveries just answered 2xx), counting them
    only: one ``UPDATE`` per chunk with the rule in it, the rows found by ``seq`` (the rowid on
    SQLite). It runs once per batch of webhook results; on SQLite every row a statement returns
    is a step of its own, each taking the GIL back from the event loop (issue 21)."""
    count = 0
    wanted = sorted(set(seqs))
    for i in range(0, len(wanted), BATCH):
        accepted = await conn.execute(_settle_delivered(), {"b_seqs": wanted[i : i + BATCH], "b_now": now})
        count += int(accepted.rowcount or 0)
    if count:
        event_log.note_accepted(conn)
    return count


async def _accept(conn: AsyncConnection, rows: Sequence[Any], now: datetime) -> list[Settled]:
    if not rows:
        return []
    await event_log.mark_accepted(conn, [row.id for row in rows], now=now)
    return [Settled(row.id, row.created_at) for row in rows]


def pull_owned_waiting(tenant_id: str, *, through: int, types: Iterable[str] | None) -> Select[Any]:
    """The tenant's unaccepted events up to ``through`` that no webhook endpoint owes (of
    ``types``; None: all): what a new endpoint's ``backfill`` takes over."""
    query = select(_e.c.seq, _e.c.id, _e.c.type, _e.c.mailbox_id).where(
        _e.c.tenant_id == tenant_id,
        _e.c.seq <= through,
        _e.c.accepted_at.is_(None),
        ~owed_by_webhook(),
    )
    if types is not None:
        query = query.where(_e.c.type.in_(list(types)))
    return query.order_by(_e.c.seq)


@dataclass(frozen=True)
class Waiting:
    """Unaccepted events of a mailbox: ``owed`` by a consumer, and ``unclaimed`` (by none)."""

    owed: int = 0
    unclaimed: int = 0


async def waiting_counts(conn: AsyncConnection, mailbox_ids: Iterable[str]) -> dict[str, Waiting]:
    ids = list(mailbox_ids)
    if not ids:
        return {}
    is_owed = owed()
    result = await conn.execute(
        select(
            _e.c.mailbox_id,
            func.sum(case((is_owed, 1), else_=0)).label("owed"),
            func.sum(case((is_owed, 0), else_=1)).label("unclaimed"),
        )
        .where(_e.c.mailbox_id.in_(ids), _e.c.accepted_at.is_(None))
        .group_by(_e.c.mailbox_id)
    )
    return {row.mailbox_id: Waiting(int(row.owed or 0), int(row.unclaimed or 0)) for row in result}
