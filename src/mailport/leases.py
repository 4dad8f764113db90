"""Leases: which process does a job now, and a guard that lets a write prove it still may.

Why a module of its own: the mailbox watchers, the webhook dispatcher, the janitor, the device
sign-in pollers and the token refresh each kept a lease of their own, written by hand five
times, and the copies disagreed (only the watchers took over a dead local process's lease at
once). They all use this one now, on SQLite and PostgreSQL alike.

A lease is a row of ``leases``:

* ``name`` — the job: ``watcher:<mailbox id>``, ``dispatcher``, ``janitor``,
  ``device_poll:<flow id>``, ``token_refresh:<mailbox id>`` (:func:`name`);
* ``holder`` — the process holding it, ``host:pid:nonce`` (:func:`new_holder`); NULL once released;
* ``expires_at`` — until when; the holder renews it well before;
* ``token`` — the **fencing token**: it grows by one every time the lease changes hands (taken
  from another holder, or taken again after a release) and never when its holder renews it or
  takes it again before anyone else did. A token therefore names one tenure.

The rules:

* :func:`acquire` takes a lease that is free (never taken, released), expired, or held by a
  process of this host that no longer exists (:func:`holder_is_dead`: a restart after a crash
  need not wait for the expiry). Two processes racing for it: one compare-and-swap on the row
  (on the token it read) decides, so exactly one wins.
* :func:`renew` extends a lease while it is still its holder's (same token); None reports the loss.
* :func:`fence` runs inside the transaction of a write that must only happen while its lease is
  current, and raises :class:`~mailport.errors.LeaseLostError` (``lease_lost``) when the token
  moved on: the write is rolled back, and the refusal is counted in
  ``mailport_fenced_writes_refused_total{what}``. :func:`ready` is asked right before an action
  outside the database that no rollback undoes (a message moved on the server): the same
  refusal, and False for a lease that ran out unrenewed (its holder was paused: wait). A
  writer under a lease is handed a :class:`Guard` (both, bound to one tenure). "Current"
  means nobody took the lease since: an expired lease that nobody took is still current,
  because whoever takes it next waits for this transaction (the fence locks the row:
  ``FOR SHARE`` on PostgreSQL, SQLite's write lock).
* Rows stay after a release, so that a token does not repeat while a holder of an older one
  might still act on it. A job that can never come back
  (a finished device sign-in) deletes its row (:func:`drop`), and the janitor forgets the
  leases that ran out a day ago (:func:`purge`).

No clock of its own: callers pass ``now`` from their injected :data:`mailport.clock.Clock`, and
nothing here sleeps — waiting for a lease is the caller's business. Why rows and not PostgreSQL
advisory locks: those need a connection pinned per lease, carry no token and do not exist on
SQLite. :class:`Leases` runs each step in a transaction of its own, for callers that guard
nothing else with the same transaction.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import ColumnElement, bindparam, delete, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from mailport.clock import Clock, utc_now
from mailport.errors import LeaseLostError
from mailport.metrics import FENCED_WRITES_REFUSED
from mailport.store.database import Database, dialect_insert
from mailport.store.tables import leases as _leases

WATCHER = "watcher"
DISPATCHER = "dispatcher"
JANITOR = "janitor"
DEVICE_POLL = "device_poll"
TOKEN_REFRESH = "token_refresh"


class Fence(Protocol):
    """What a writer under a lease is handed (:func:`guard`).

    Called in a write's transaction, it raises ``LeaseLostError`` when the lease moved on
    (``what`` names the refused write in ``mailport_fenced_writes_refused_total``);
    :meth:`ready` is asked before an action outside the database that no rollback can undo."""

    def __call__(self, conn: AsyncConnection, /, *, what: str | None = None) -> Awaitable[None]: ...

    def ready(
        self, conn: AsyncConnection, /, *, now: datetime, what: str | None = None
    ) -> Awaitable[bool]: ...


@dataclass(frozen=True, slots=True)
class Lease:
    """A lease as its holder took it; ``token`` is the fencing token of this tenure."""

    name: str
    holder: str
    token: int
    expires_at: datetime


def name(kind: str, key: str | None = None) -> str:
    """The lease of a job: ``kind`` alone (``dispatcher``) or ``kind:key`` (``watcher:mbx_…``)."""
    return kind if key is None else f"{kind}:{key}"


def new_holder() -> str:
    """A holder id for one process's part: ``host:pid:nonce`` (the nonce tells apart several
    parts or service graphs in one process)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def holder_is_dead(holder: str) -> bool:
    """Is ``holder`` (``host:pid:nonce``) a process of this host that no longer exists? Its
    leases are then taken at once instead of after their expiry. A holder on another host
    cannot be checked: its leases run out."""
    host, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # it exists, as another user
        return False
    return False


# ------------------------------------------------------------------ in the caller's transaction


async def acquire(
    conn: AsyncConnection,
    lease: str,
    holder: str,
    *,
    now: datetime,
    until: datetime,
    reentrant: bool = True,
) -> Lease | None:
    """Take the lease ``lease`` for ``holder`` until ``until``; None when another holds it.

    Its holder taking it again keeps the token (a renewal), unless ``reentrant`` is False: then
    it is refused while unexpired (a claim that must lapse before it is made again, the
    janitor's hour)."""
    row = (
        await conn.execute(
            select(_leases.c.holder, _leases.c.token, _leases.c.expires_at).where(_leases.c.name == lease)
        )
    ).first()
    if row is None:
        inserted = await conn.execute(
            dialect_insert(conn, _leases)
            .values(name=lease, holder=holder, token=1, expires_at=until, acquired_at=now)
            .on_conflict_do_nothing(index_elements=["name"])
        )
        return Lease(lease, holder, 1, until) if inserted.rowcount else None
    token = int(row.token)
    if row.holder == holder:
        if not reentrant and row.expires_at > now:
            return None
        return await renew(conn, Lease(lease, holder, token, row.expires_at), until=until)
    dead = row.holder is not None and row.expires_at > now and holder_is_dead(row.holder)
    if row.holder is not None and row.expires_at > now and not dead:
        return None
    # Compare-and-swap on what was read: a racing acquire, or a renewal by the holder, wins.
    takeable = or_(_leases.c.holder.is_(None), _leases.c.expires_at <= now)
    if dead:
        takeable = _leases.c.holder == row.holder
    taken = await conn.execute(
        update(_leases)
        .where(_leases.c.name == lease, _leases.c.token == token, takeable)
        .values(holder=holder, token=token + 1, expires_at=until, acquired_at=now)
    )
    return Lease(lease, holder, token + 1, until) if taken.rowcount else None


async def renew(conn: AsyncConnection, lease: Lease, *, until: datetime) -> Lease | None:
    """Extend ``lease`` to ``until`` while it is still this tenure; None when it was lost."""
    renewed = await conn.execute(
        update(_leases)
        .where(_leases.c.name == lease.name, _leases.c.holder == lease.holder, _leases.c.token == lease.token)
        .values(expires_at=until)
    )
    return replace(lease, expires_at=until) if renewed.rowcount else None


async def renew_all(conn: AsyncConnection, holder: str, *, prefix: str, until: datetime) -> set[str]:
    """Extend every lease of ``holder`` whose name starts with ``prefix``; returns their names
    (those it still holds), in two statements however many there are."""
    mine = (_leases.c.holder == holder) & _leases.c.name.startswith(prefix, autoescape=True)
    await conn.execute(update(_leases).where(mine).values(expires_at=until))
    return {row.name for row in await conn.execute(select(_leases.c.name).where(mine))}


async def release(conn: AsyncConnection, lease: str, holder: str) -> bool:
    """Give the lease up (when ``holder`` holds it): free at once for anyone; False if not held."""
    released = await conn.execute(
        update(_leases).where(_leases.c.name == lease, _leases.c.holder == holder).values(holder=None)
    )
    return bool(released.rowcount)


async def release_all(conn: AsyncConnection, holder: str, *, prefix: str) -> set[str]:
    """Give up every lease of ``holder`` whose name starts with ``prefix``; returns their names."""
    mine = (_leases.c.holder == holder) & _leases.c.name.startswith(prefix, autoescape=True)
    names = {row.name for row in await conn.execute(select(_leases.c.name).where(mine))}
    if names:
        await conn.execute(
            update(_leases).where(_leases.c.name.in_(names), _leases.c.holder == holder).values(holder=None)
        )
    return names


async def drop(conn: AsyncConnection, lease: str) -> None:
    """Forget the lease of a job that can never come back (its token history goes with it)."""
    await conn.execute(delete(_leases).where(_leases.c.name == lease))


async def purge(conn: AsyncConnection, *, before: datetime) -> int:
    """Forget the leases that ran out before ``before`` (the janitor passes a day ago): no holder
    acts on a tenure that ended that long ago, and jobs that never come back (a deleted mailbox,
    a device sign-in nobody finished) leave no rows behind."""
    result = await conn.execute(delete(_leases).where(_leases.c.expires_at < before))
    return int(result.rowcount or 0)


def _this_tenure(lease: Lease) -> ColumnElement[bool]:
    return (
        (_leases.c.name == lease.name) & (_leases.c.holder == lease.holder) & (_leases.c.token == lease.token)
    )


def is_held_by(lease: str, holder: str) -> ColumnElement[bool]:
    """A SQL condition: ``holder`` holds ``lease`` now (for a write only the holder may make,
    in the same statement, so that the lease cannot change hands in between)."""
    return exists().where(_leases.c.name == lease, _leases.c.holder == holder)


def still_held(lease: Lease) -> ColumnElement[bool]:
    """A SQL condition: ``lease`` is still this tenure, for a write's ``WHERE`` on SQLite (its
    fence in the same statement). A writing statement takes SQLite's one write lock, on the
    newest snapshot, before it reads, and the transaction keeps it until it ends: nobody can
    take the lease in between, which is what :func:`fence` guarantees. A statement that then
    changed no row must fall back to :func:`fence` (which raises if the lease moved on). Not
    on PostgreSQL: there only :func:`fence` locks the lease row."""
    return exists().where(_this_tenure(lease))


# this tenure of a lease with its values as bind parameters (held_params)
_TENURE_PARAMS = (
    (_leases.c.name == bindparam("held_name", type_=_leases.c.name.type))
    & (_leases.c.holder == bindparam("held_holder", type_=_leases.c.holder.type))
    & (_leases.c.token == bindparam("held_token", type_=_leases.c.token.type))
)


def still_held_by_params() -> ColumnElement[bool]:
    """:func:`still_held` with the lease as bind parameters (:func:`held_params`), for a
    statement built once and executed with each lease's values: building the condition anew
    for every chunk was a fifth of the watcher's CPU in storing one message (issue 21)."""
    return exists().where(_TENURE_PARAMS)


def held_params(lease: Lease) -> dict[str, Any]:
    """The values of :func:`still_held_by_params`'s parameters for ``lease``."""
    return {"held_name": lease.name, "held_holder": lease.holder, "held_token": lease.token}


async def held(conn: AsyncConnection, lease: Lease) -> bool:
    """Is ``lease`` still this tenure (nobody took it since, not released)? A plain read: to
    guard a write, use :func:`fence`."""
    return (await conn.execute(select(_leases.c.token).where(_this_tenure(lease)))).first() is not None


async def fence(conn: AsyncConnection, lease: Lease, *, what: str | None = None) -> None:
    """Refuse the transaction's writes unless ``lease`` is still this tenure.

    Locks the lease row until the transaction ends, so the lease cannot change hands before the
    writes commit: ``SELECT … FOR SHARE`` on PostgreSQL (fences of one holder do not wait for
    each other; a taker waits), a no-op ``UPDATE`` on SQLite (its write lock). Call it after the
    transaction's other writes: a fence taken first would hold the row while waiting for them.
    After an ordered append (:func:`mailport.events.append_prepared`) too: a transaction then
    waits for the event lock without holding a lease row, and a holder of the event lock waits
    for no one who does (a fence taken before it could close a cycle with a renewal of many
    leases, :func:`renew_all`, and the transactions that append before they fence).

    Raises :class:`~mailport.errors.LeaseLostError` (``lease_lost``), counted in
    ``mailport_fenced_writes_refused_total{what}`` (``what`` defaults to the lease's kind)."""
    if conn.dialect.name == "postgresql":
        found = (await conn.execute(_FENCE_POSTGRES, held_params(lease))).first() is not None
    else:
        found = bool((await conn.execute(_FENCE_SQLITE, held_params(lease))).rowcount)
    if not found:
        raise _refused(lease, what)


# built once: a fence runs in every chunk's and every webhook result batch's transaction
_FENCE_POSTGRES = select(_leases.c.token).where(_TENURE_PARAMS).with_for_update(read=True)
_FENCE_SQLITE = update(_leases).where(_TENURE_PARAMS).values(token=_leases.c.token)


async def ready(conn: AsyncConnection, lease: Lease, *, now: datetime, what: str | None = None) -> bool:
    """May an action outside the database (a message marked read, moved or deleted on the
    server) start now under ``lease``?

    Such an action cannot be rolled back by a fence, so it is checked right before: raises
    :class:`~mailport.errors.LeaseLostError` (counted like a fence's refusal) when the tenure
    ended; False when it is still this tenure but ran out at ``now`` unrenewed (its holder was
    paused: anyone may take it any moment, so the caller waits for the next renewal)."""
    row = (await conn.execute(select(_leases.c.expires_at).where(_this_tenure(lease)))).first()
    if row is None:
        raise _refused(lease, what)
    return bool(row.expires_at > now)


def _refused(lease: Lease, what: str | None) -> LeaseLostError:
    FENCED_WRITES_REFUSED.labels(what=what or lease.name.partition(":")[0]).inc()
    return LeaseLostError(
        f"the lease {lease.name!r} changed hands (this process held token {lease.token}); nothing was written"
    )


@dataclass(frozen=True, slots=True)
class Guard:
    """:func:`fence` and :func:`ready` bound to one tenure of a lease (a :class:`Fence`)."""

    lease: Lease

    async def __call__(self, conn: AsyncConnection, /, *, what: str | None = None) -> None:
        await fence(conn, self.lease, what=what)

    async def ready(self, conn: AsyncConnection, /, *, now: datetime, what: str | None = None) -> bool:
        return await ready(conn, self.lease, now=now, what=what)


def guard(lease: Lease) -> Guard:
    """:func:`fence` bound to ``lease``: what a writer under the lease is handed."""
    return Guard(lease)


async def current(
    conn: AsyncConnection, names: Iterable[str], *, now: datetime | None = None
) -> dict[str, Lease]:
    """The held leases among ``names`` (unexpired at ``now`` when given), by name."""
    wanted = list(names)
    if not wanted:
        return {}
    query = select(_leases).where(_leases.c.name.in_(wanted), _leases.c.holder.is_not(None))
    if now is not None:
        query = query.where(_leases.c.expires_at > now)
    return {
        row.name: Lease(row.name, row.holder, int(row.token), row.expires_at)
        for row in await conn.execute(query)
    }


# ------------------------------------------------------------------ each in its own transaction


class Leases:
    """:func:`acquire`, :func:`renew` and :func:`release` on ``database``, each in a transaction
    of its own, with durations measured on ``clock``."""

    def __init__(self, database: Database, *, clock: Clock = utc_now) -> None:
        self.database = database
        self.clock = clock

    async def acquire(
        self, lease: str, holder: str, *, ttl: timedelta, reentrant: bool = True
    ) -> Lease | None:
        now = self.clock()
        async with self.database.transaction() as conn:
            return await acquire(conn, lease, holder, now=now, until=now + ttl, reentrant=reentrant)

    async def renew(self, lease: Lease, *, ttl: timedelta) -> Lease | None:
        async with self.database.transaction() as conn:
            return await renew(conn, lease, until=self.clock() + ttl)

    async def release(self, lease: Lease) -> None:
        async with self.database.transaction() as conn:
            await release(conn, lease.name, lease.holder)


__all__ = [
    "DEVICE_POLL",
    "DISPATCHER",
    "JANITOR",
    "TOKEN_REFRESH",
    "WATCHER",
    "Fence",
    "Guard",
    "Lease",
    "LeaseLostError",
    "Leases",
    "acquire",
    "current",
    "drop",
    "fence",
    "guard",
    "held",
    "held_params",
    "holder_is_dead",
    "is_held_by",
    "name",
    "new_holder",
    "purge",
    "ready",
    "release",
    "release_all",
    "renew",
    "renew_all",
    "still_held",
    "still_held_by_params",
]
