"""Contacts in the database: the one write path of harvesting (:func:`record`) and the reads
every other part shares (:func:`load`, :func:`recompute`, :func:`emit`).

How a contact's figures are kept (tables in :mod:`mailport.store.tables`):

- ``contact_messages`` remembers every message counted, per mailbox, by
  :func:`~mailport.contacts.harvest.message_digest`: the backfill, a scheduled re-sync, the event
  stream and the same message in two folders (Gmail's All Mail) count it once;
- ``contact_stats`` holds, per mailbox and address key, what that mailbox's mail says (messages
  sent to, received from, copied; first and last seen); a contact's figures are the sums over its
  keys (:func:`recompute`), so a merge, a deleted mailbox or a re-harvest never drifts;
- ``contact_exclusions`` counts, per mailbox, address and reason, the messages that left an
  address out (the contact history shows them); a key of a deleted contact
  (``contact_tombstones``) is recorded there with reason ``deleted`` and never becomes a contact
  again;
- ``contact_addresses`` maps each key of a book to its one contact.

Everything :func:`record` writes commits with the caller's transaction, with the
``contact.created`` / ``contact.updated`` events (opt-in types) it appends, so a crash neither
loses nor double-counts a message. On PostgreSQL a transaction-scoped advisory lock per book
serializes writers of one book (two mailboxes of one owner harvesting at once); SQLite has one
writer anyway.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, bindparam, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from mailport.contacts.harvest import Observation
from mailport.contacts.models import Book, StoredContact
from mailport.contacts.organisations import organisation_of
from mailport.contacts.rank import (
    COPIED_WEIGHT,
    HALF_LIFE_DAYS,
    RECEIVED_WEIGHT,
    SENT_WEIGHT,
    TWO_WAY_BOOST,
    Contacts,
    most_frequent,
)
from mailport.events import EventType, NewEvent, append_many
from mailport.store.ids import new_id
from mailport.store.rows import from_row
from mailport.store.tables import (
    contact_addresses,
    contact_exclusions,
    contact_messages,
    contact_stats,
    contact_tombstones,
    contacts,
)

CHUNK = 500  # keys per IN (...) list: well under SQLite's 32,766 bound variables
DELETED = "deleted"  # the exclusion reason of a deleted contact's keys
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NEVER_SEEN_RANK = -1.0e9  # a contact made by hand with no mail sorts last
NAME_MAX = 200  # contacts.name: a longer display name from a header is cut


@dataclass(frozen=True, slots=True)
class HarvestedMessage:
    """One message's observations and the digest it is remembered by."""

    digest: str
    observations: Sequence[Observation]


@dataclass(slots=True)
class Recorded:
    """What one :func:`record` call changed."""

    messages: int = 0  # messages counted (not seen before by this mailbox)
    created: list[str] = field(default_factory=list)  # contact ids
    updated: list[str] = field(default_factory=list)  # contact ids (not the created ones)


def rank_key(
    sent_to: int, received_from: int, copied: int, two_way: bool, last_seen: datetime | None
) -> float:
    """A sort key that orders contacts as :func:`mailport.contacts.rank.score` does at any moment.

    ``score = activity × boost × 2^(−(now − last_seen)/90 d)``, so
    ``log2(score) = log2(activity × boost) + last_seen/90 d − now/90 d``: the last term is the
    same for every contact, so ordering by the rest is ordering by score, today or in a year,
    without rewriting any row as time passes.
    """
    activity = (
        SENT_WEIGHT * math.log1p(sent_to)
        + RECEIVED_WEIGHT * math.log1p(received_from)
        + COPIED_WEIGHT * math.log1p(copied)
    )
    if activity <= 0 or last_seen is None:
        return NEVER_SEEN_RANK
    boost = TWO_WAY_BOOST if two_way else 1.0
    days = (last_seen - _EPOCH).total_seconds() / 86_400
    return math.log2(activity * boost) + days / HALF_LIFE_DAYS


def _insert(conn: AsyncConnection, table: Any) -> Any:
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


def _least(conn: AsyncConnection, a: Any, b: Any) -> Any:
    return func.least(a, b) if conn.dialect.name == "postgresql" else func.min(a, b)


def _greatest(conn: AsyncConnection, a: Any, b: Any) -> Any:
    return func.greatest(a, b) if conn.dialect.name == "postgresql" else func.max(a, b)


def _chunks(items: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def lock_book(conn: AsyncConnection, book: Book) -> None:
    """Serialize writers of ``book`` until the transaction ends (PostgreSQL; SQLite has one writer)."""
    if conn.dialect.name != "postgresql":
        return
    digest = hashlib.sha256(f"contacts\x1f{book.tenant_id}\x1f{book.owner}".encode()).digest()
    await conn.execute(
        text("SELECT pg_advisory_xact_lock(:k)"), {"k": int.from_bytes(digest[:8], "big", signed=True)}
    )


def in_book(table: Any, book: Book) -> Any:
    """The rows of ``table`` (with ``tenant_id`` and ``owner``) in ``book``."""
    return and_(table.c.tenant_id == book.tenant_id, table.c.owner == book.owner)


async def _new_digests(conn: AsyncConnection, mailbox_id: str, digests: list[str], now: datetime) -> set[str]:
    new: set[str] = set()
    for part in _chunks(digests):
        statement = (
            _insert(conn, contact_messages)
            .on_conflict_do_nothing(index_elements=["mailbox_id", "digest"])
            .returning(contact_messages.c.digest)
        )
        result = await conn.execute(
            statement, [{"mailbox_id": mailbox_id, "digest": d, "seen_at": now} for d in part]
        )
        new.update(result.scalars().all())
    return new


async def _tombstoned(conn: AsyncConnection, book: Book, keys: list[str]) -> set[str]:
    found: set[str] = set()
    for part in _chunks(keys):
        query = select(contact_tombstones.c.key).where(
            in_book(contact_tombstones, book), contact_tombstones.c.key.in_(part)
        )
        found.update((await conn.execute(query)).scalars().all())
    return found


async def _contact_ids(conn: AsyncConnection, book: Book, keys: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for part in _chunks(keys):
        query = select(contact_addresses.c.key, contact_addresses.c.contact_id).where(
            in_book(contact_addresses, book), contact_addresses.c.key.in_(part)
        )
        found.update({row.key: row.contact_id for row in await conn.execute(query)})
    return found


async def record(
    conn: AsyncConnection,
    book: Book,
    mailbox_id: str,
    messages: Sequence[HarvestedMessage],
    *,
    now: datetime,
    events: bool = True,
) -> Recorded:
    """Count ``messages`` of ``mailbox_id`` into ``book``: new ones only, in the caller's
    transaction; ``contact.created`` / ``contact.updated`` events unless ``events`` is False (a
    backfill: :func:`announce_book` then announces each contact once, not once per batch)."""
    done = Recorded()
    if not messages:
        return done
    await lock_book(conn, book)
    new = await _new_digests(conn, mailbox_id, sorted({m.digest for m in messages}), now)
    aggregate = Contacts()
    excluded: dict[tuple[str, str], list[Any]] = {}  # (key, reason) -> [messages, first, last]
    counted: set[str] = set()
    for message in messages:
        if message.digest not in new or message.digest in counted:
            continue
        counted.add(message.digest)
        aggregate.add_message(message.observations)
        seen: set[tuple[str, str]] = set()
        for obs in message.observations:
            if obs.excluded is not None and (obs.key, obs.excluded) not in seen:
                seen.add((obs.key, obs.excluded))
                _note(excluded, obs.key, obs.excluded, obs.seen_at, 1)
    done.messages = len(counted)
    gone = await _tombstoned(conn, book, sorted(aggregate.contacts))
    for key in gone:
        contact = aggregate.contacts.pop(key)
        total = contact.sent_to + contact.received_from + contact.copied
        _note(excluded, key, DELETED, contact.first_seen, total, last=contact.last_seen)
    await _save_exclusions(conn, book, mailbox_id, excluded)
    if not aggregate.contacts:
        return done
    await _save_stats(conn, book, mailbox_id, aggregate)
    keys = sorted(aggregate.contacts)
    ids = await _contact_ids(conn, book, keys)
    done.created = await _create(conn, book, [key for key in keys if key not in ids], ids, now=now)
    names: dict[str, Counter[str]] = {}
    addresses: dict[str, set[str]] = {}
    for key, contact in aggregate.contacts.items():
        names.setdefault(ids[key], Counter()).update(contact.names)
        addresses.setdefault(ids[key], set()).update(contact.addresses)
    touched = sorted(set(ids[key] for key in keys))
    await recompute(conn, touched, now=now, names=names, addresses=addresses)
    created = set(done.created)
    done.updated = [cid for cid in touched if cid not in created]
    await _refresh_groups(conn, book, touched, now=now)
    if events:
        await announce(conn, touched, mailbox_id=mailbox_id, now=now)
    return done


async def _create(
    conn: AsyncConnection, book: Book, keys: Sequence[str], ids: dict[str, str], *, now: datetime
) -> list[str]:
    """A new contact for each of ``keys`` (added to ``ids``); their ids. One multi-row statement
    per table and chunk: a statement per contact cost more than the rest of :func:`record`."""
    made = {key: new_id("ct") for key in keys}
    ids.update(made)
    rows = [
        {
            "id": contact_id,
            "tenant_id": book.tenant_id,
            "owner": book.owner,
            "email": key,
            "organisation": organisation_of(key),
            "version": 0,
            "created_at": now,
            "updated_at": now,
        }
        for key, contact_id in made.items()
    ]
    links = [
        {"tenant_id": book.tenant_id, "owner": book.owner, "key": key, "contact_id": contact_id}
        for key, contact_id in made.items()
    ]
    for part in _chunks(rows, CHUNK // 10):  # 8 columns a row: well under SQLite's bound variables
        await conn.execute(contacts.insert(), list(part))
    for part in _chunks(links, CHUNK // 5):
        await conn.execute(contact_addresses.insert(), list(part))
    return list(made.values())


async def _refresh_groups(conn: AsyncConnection, book: Book, ids: Sequence[str], *, now: datetime) -> None:
    """Rule and organisation groups of the touched contacts (imported here: groups reads this module)."""
    from mailport.contacts.groups import refresh

    await refresh(conn, book, ids, now=now)


def _note(
    excluded: dict[tuple[str, str], list[Any]],
    key: str,
    reason: str,
    at: datetime,
    count: int,
    *,
    last: datetime | None = None,
) -> None:
    entry = excluded.get((key, reason))
    last = last or at
    if entry is None:
        excluded[(key, reason)] = [count, at, last]
    else:
        entry[0] += count
        entry[1] = min(entry[1], at)
        entry[2] = max(entry[2], last)


async def _save_exclusions(
    conn: AsyncConnection, book: Book, mailbox_id: str, excluded: dict[tuple[str, str], list[Any]]
) -> None:
    if not excluded:
        return
    rows = [
        {
            "mailbox_id": mailbox_id,
            "key": key,
            "reason": reason,
            "tenant_id": book.tenant_id,
            "owner": book.owner,
            "messages": count,
            "first_seen": first,
            "last_seen": last,
        }
        for (key, reason), (count, first, last) in sorted(excluded.items())
    ]
    statement = _insert(conn, contact_exclusions)
    statement = statement.on_conflict_do_update(
        index_elements=["mailbox_id", "key", "reason"],
        set_={
            "messages": contact_exclusions.c.messages + statement.excluded.messages,
            "first_seen": _least(conn, contact_exclusions.c.first_seen, statement.excluded.first_seen),
            "last_seen": _greatest(conn, contact_exclusions.c.last_seen, statement.excluded.last_seen),
        },
    )
    for part in _chunks(rows):
        await conn.execute(statement, list(part))


async def _save_stats(conn: AsyncConnection, book: Book, mailbox_id: str, aggregate: Contacts) -> None:
    rows = [
        {
            "mailbox_id": mailbox_id,
            "key": key,
            "tenant_id": book.tenant_id,
            "owner": book.owner,
            "sent_to": c.sent_to,
            "received_from": c.received_from,
            "copied": c.copied,
            "first_seen": c.first_seen,
            "last_seen": c.last_seen,
        }
        for key, c in sorted(aggregate.contacts.items())
    ]
    statement = _insert(conn, contact_stats)
    statement = statement.on_conflict_do_update(
        index_elements=["mailbox_id", "key"],
        set_={
            "sent_to": contact_stats.c.sent_to + statement.excluded.sent_to,
            "received_from": contact_stats.c.received_from + statement.excluded.received_from,
            "copied": contact_stats.c.copied + statement.excluded.copied,
            "first_seen": _least(conn, contact_stats.c.first_seen, statement.excluded.first_seen),
            "last_seen": _greatest(conn, contact_stats.c.last_seen, statement.excluded.last_seen),
        },
    )
    for part in _chunks(rows):
        await conn.execute(statement, list(part))


async def recompute(
    conn: AsyncConnection,
    contact_ids: Sequence[str],
    *,
    now: datetime,
    names: dict[str, Counter[str]] | None = None,
    addresses: dict[str, set[str]] | None = None,
) -> None:
    """Set the figures of ``contact_ids`` to the sums of their keys' stats, add ``names`` and
    ``addresses`` seen, re-pick the shown name (unless the user set one) and the rank, and count
    a new version of each. Call it after anything that moves keys or stats (a merge, a re-harvest)."""
    names = names or {}
    addresses = addresses or {}
    for part in _chunks(list(contact_ids)):
        sums = {
            row.contact_id: row
            for row in await conn.execute(
                select(
                    contact_addresses.c.contact_id,
                    func.sum(contact_stats.c.sent_to).label("sent_to"),
                    func.sum(contact_stats.c.received_from).label("received_from"),
                    func.sum(contact_stats.c.copied).label("copied"),
                    func.min(contact_stats.c.first_seen).label("first_seen"),
                    func.max(contact_stats.c.last_seen).label("last_seen"),
                )
                .select_from(
                    contact_addresses.join(
                        contact_stats,
                        and_(
                            contact_stats.c.tenant_id == contact_addresses.c.tenant_id,
                            contact_stats.c.owner == contact_addresses.c.owner,
                            contact_stats.c.key == contact_addresses.c.key,
                        ),
                    )
                )
                .where(contact_addresses.c.contact_id.in_(part))
                .group_by(contact_addresses.c.contact_id)
            )
        }
        changes: list[dict[str, Any]] = []
        for current in await load(conn, part):
            row = sums.get(current.id)
            sent_to = int(row.sent_to or 0) if row else 0
            received_from = int(row.received_from or 0) if row else 0
            copied = int(row.copied or 0) if row else 0
            first_seen = _utc(row.first_seen) if row else None
            last_seen = _utc(row.last_seen) if row else None
            seen_names = current.names + names.get(current.id, Counter())
            seen_addresses = sorted(set(current.addresses) | addresses.get(current.id, set()))
            two_way = sent_to > 0 and received_from > 0
            name = current.name
            if current.name_source == "harvest":
                name = most_frequent(seen_names)[:NAME_MAX] or None
            changes.append(
                {
                    "_id": current.id,
                    "name": name,
                    "names": json.dumps(dict(seen_names), ensure_ascii=False, sort_keys=True),
                    "addresses": json.dumps(seen_addresses, ensure_ascii=False),
                    "first_seen": first_seen,
                    "last_seen": last_seen,
                    "sent_to": sent_to,
                    "received_from": received_from,
                    "copied": copied,
                    "two_way": two_way,
                    "rank": rank_key(sent_to, received_from, copied, two_way, last_seen),
                    "search": search_text(
                        name, seen_names, seen_addresses, current.keys, current.organisation
                    ),
                    "version": current.version + 1,
                    "updated_at": now,
                }
            )
        if changes:  # one executemany: an UPDATE built and sent per contact was most of record()'s time
            await conn.execute(_RECOMPUTED, changes)


_RECOMPUTED = (
    update(contacts)
    .where(contacts.c.id == bindparam("_id"))
    .values(
        {
            column: bindparam(column)
            for column in (
                "name",
                "names",
                "addresses",
                "first_seen",
                "last_seen",
                "sent_to",
                "received_from",
                "copied",
                "two_way",
                "rank",
                "search",
                "version",
                "updated_at",
            )
        }
    )
)


def _utc(value: datetime | str | None) -> datetime | None:
    """An aggregate's datetime: SQLite gives aggregates back as text, without the type's decoding."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def search_text(
    name: str | None,
    names: Iterable[str],
    addresses: Iterable[str],
    keys: Iterable[str],
    organisation: str | None,
) -> str:
    """What a search by name, address or domain matches: every name, address and key, lowercased."""
    parts = [name or "", *names, *addresses, *keys, organisation or ""]
    return "\n".join(sorted({p.casefold() for p in parts if p}))


async def load(conn: AsyncConnection, contact_ids: Sequence[str]) -> list[StoredContact]:
    """The contacts of ``contact_ids`` that exist (any book: callers check the book), with keys."""
    out: list[StoredContact] = []
    for part in _chunks(list(contact_ids)):
        keys: dict[str, list[str]] = {}
        for row in await conn.execute(
            select(contact_addresses.c.contact_id, contact_addresses.c.key)
            .where(contact_addresses.c.contact_id.in_(part))
            .order_by(contact_addresses.c.key)
        ):
            keys.setdefault(row.contact_id, []).append(row.key)
        for row in await conn.execute(select(contacts).where(contacts.c.id.in_(part))):
            own = keys.get(row.id, [])
            ordered = [row.email, *(k for k in own if k != row.email)] if row.email in own else own
            out.append(from_contact_row(row, ordered))
    order = {cid: i for i, cid in enumerate(contact_ids)}
    return sorted(out, key=lambda c: order[c.id])


def from_contact_row(row: Any, keys: Sequence[str]) -> StoredContact:
    """A ``contacts`` row (and its keys, the primary first) as a :class:`StoredContact`."""
    return from_row(
        StoredContact,
        row,
        names=Counter(json.loads(row.names or "{}")),
        addresses=tuple(json.loads(row.addresses or "[]")),
        two_way=bool(row.two_way),
        rank=float(row.rank),
        keys=tuple(keys),
    )


async def emit(
    conn: AsyncConnection,
    loaded: Sequence[StoredContact],
    kind: EventType,
    *,
    mailbox_id: str | None = None,
    now: datetime,
) -> None:
    """Append one ``kind`` event per contact (``contact.created`` / ``contact.updated``), keyed by
    the contact's version so a repeated write appends nothing. The payload is the contact's
    public JSON (:func:`mailport.contacts.views.contact_json`)."""
    from mailport.contacts.views import contact_json

    await append_many(
        conn,
        [
            NewEvent(
                tenant_id=c.tenant_id,
                mailbox_id=mailbox_id,
                type=kind,
                payload=contact_json(c, now=now),
                idempotency_key=f"contact:{c.id}:{c.version}",
            )
            for c in loaded
        ],
        now=now,
    )
    if loaded:
        await conn.execute(_ANNOUNCED, [{"_id": c.id, "announced": c.version} for c in loaded])


async def emit_deleted(
    conn: AsyncConnection,
    gone: Sequence[StoredContact],
    *,
    merged_into: str | None = None,
    now: datetime,
) -> None:
    """``contact.deleted`` for contacts a user deleted, or merged into ``merged_into``: a host
    application mirroring the contacts drops (or repoints) its copy. Keyed ``contact:<id>:deleted``."""
    await append_many(
        conn,
        [
            NewEvent(
                tenant_id=c.tenant_id,
                mailbox_id=None,
                type=EventType.CONTACT_DELETED,
                payload={
                    "id": c.id,
                    "owner": c.owner or None,
                    "email": c.email,
                    "emails": list(c.keys),
                    "merged_into": merged_into,
                    "deleted_at": now.isoformat(),
                },
                idempotency_key=f"contact:{c.id}:deleted",
            )
            for c in gone
        ],
        now=now,
    )


_ANNOUNCED = (
    update(contacts).where(contacts.c.id == bindparam("_id")).values(announced=bindparam("announced"))
)


async def announce(
    conn: AsyncConnection, contact_ids: Sequence[str], *, mailbox_id: str | None = None, now: datetime
) -> int:
    """Announce the contacts of ``contact_ids`` changed since their last event: ``contact.created``
    for one never announced, else ``contact.updated``. Returns how many events were appended."""
    pending = [c for c in await load(conn, contact_ids) if c.version > c.announced]
    created = [c for c in pending if c.announced == 0]
    updated = [c for c in pending if c.announced > 0]
    await emit(conn, created, EventType.CONTACT_CREATED, mailbox_id=mailbox_id, now=now)
    await emit(conn, updated, EventType.CONTACT_UPDATED, mailbox_id=mailbox_id, now=now)
    return len(pending)


async def announce_book(
    conn: AsyncConnection, book: Book, *, mailbox_id: str | None = None, now: datetime, limit: int = CHUNK
) -> int:
    """Announce up to ``limit`` contacts of ``book`` changed since their last event (call it until
    it answers 0). What a backfill recorded with ``events=False`` is announced here, once per
    contact, also after a crash: the ``announced`` column says what is still owed."""
    query = (
        select(contacts.c.id)
        .where(in_book(contacts, book), contacts.c.version > contacts.c.announced)
        .order_by(contacts.c.id)
        .limit(limit)
    )
    ids = list((await conn.execute(query)).scalars().all())
    return await announce(conn, ids, mailbox_id=mailbox_id, now=now) if ids else 0
