"""Contact groups: the tenant's own groups, filled by hand or by a rule, and one automatic group
per organisation (issue 18: "tenant-defined groups, plus automatic groups by organisation").

**Kinds.** ``custom`` groups are the user's: a unique name per book, a description and an optional
:class:`Rule`. ``organisation`` groups are made when the first contact of an organisation domain
appears (:mod:`mailport.contacts.organisations`: free mail has none), named by the domain; their
name and rule are fixed (the name *is* the domain), their description is editable, and deleting
one is allowed: it comes back when a contact of that domain is next harvested or changed. A custom
group that already holds a domain's name stands in for it: no organisation group is made then.

**Membership** is one row per (group, contact) with its source:

- ``manual``: added by hand; stays whatever the rule says;
- ``rule``: the group's rule matches the contact; goes when it no longer does;
- ``organisation``: the contact's organisation is the group's domain; moves when it changes;
- ``removed``: the user removed a rule or organisation member by hand: the rule does not add
  it back (adding it by hand does, as ``manual``). Not a member.

**Rules** (:mod:`mailport.contacts.group_rules`) are a small JSON object whose conditions must
all hold: ``domains``, ``organisation``, ``address_contains``, ``two_way``, ``min_messages``.

**Upkeep** (:func:`refresh`): :func:`mailport.contacts.store.record` calls it for the contacts a
harvest batch touched. Per 500 contacts it reads their memberships and their facts (two or three
statements, whatever the number of groups), decides every rule on those facts, and writes only
the difference; never a query per contact. A changed rule recomputes its group over the book,
:data:`PAGE` contacts at a time.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar, get_args

from sqlalchemy import ColumnElement, delete, func, literal, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from mailport.clock import Clock, utc_now
from mailport.contacts.group_rules import Facts, Rule
from mailport.contacts.models import Book, StoredContact
from mailport.contacts.store import CHUNK, in_book, load, lock_book
from mailport.errors import (
    ContactBookMismatchError,
    ContactGroupExistsError,
    ContactGroupNotFoundError,
    ContactNotFoundError,
    InputError,
)
from mailport.store import Database
from mailport.store.database import dialect_insert
from mailport.store.ids import new_id, plausible_id
from mailport.store.pagination import DEFAULT_LIMIT, decode_cursor, encode_cursor
from mailport.store.rows import from_row
from mailport.store.tables import contact_addresses, contact_group_members, contact_groups, contacts

T = TypeVar("T")
Kind = Literal["custom", "organisation"]
Source = Literal["manual", "rule", "organisation", "removed"]
KINDS: tuple[str, ...] = get_args(Kind)
MEMBER_SOURCES = ("manual", "rule", "organisation")  # "removed" is no member
PAGE = 1000  # contacts per statement when a whole group is recomputed
members = contact_group_members


@dataclass(frozen=True, slots=True)
class ContactGroup:
    """One row of ``contact_groups``, with its member count (``removed`` rows not counted)."""

    id: str
    tenant_id: str
    owner: str
    name: str
    kind: Kind
    rule: Rule | None
    description: str | None
    created_at: datetime
    updated_at: datetime
    members: int = 0

    @property
    def book(self) -> Book:
        return Book(self.tenant_id, self.owner)


@dataclass(frozen=True, slots=True)
class Member:
    contact: StoredContact
    source: Source
    added_at: datetime


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list and the cursor of the next (None: the last page)."""

    items: list[T]
    next_cursor: str | None


def group_json(group: ContactGroup) -> dict[str, Any]:
    """The public shape of a group (the API's item)."""
    return {
        "id": group.id,
        "owner": group.owner or None,
        "name": group.name,
        "kind": group.kind,
        "description": group.description,
        "rule": group.rule.to_json() if group.rule is not None else None,
        "members": group.members,
        "created_at": group.created_at.isoformat(),
        "updated_at": group.updated_at.isoformat(),
    }


def _group(row: Any, count: int = 0) -> ContactGroup:
    if row.kind == "organisation":  # its rule is its name (a domain, or what a user called it)
        rule: Rule | None = Rule(organisation=row.name)
    else:
        rule = Rule.parse(json.loads(row.rule)) if row.rule else None
    return from_row(ContactGroup, row, rule=rule, members=count)


def is_member_of(group_id: str) -> ColumnElement[bool]:
    """A condition on ``contacts``: the contact is a member of the group (for ``?group=``)."""
    return contacts.c.id.in_(
        select(members.c.contact_id).where(
            members.c.group_id == group_id, members.c.source.in_(MEMBER_SOURCES)
        )
    )


# --------------------------------------------------------------------------- upkeep


async def refresh(conn: AsyncConnection, book: Book, contact_ids: Sequence[str], *, now: datetime) -> None:
    """Recompute the rule and organisation memberships of ``contact_ids`` (of ``book``): after a
    harvest, a merge or a change of a contact's organisation. ``manual`` and ``removed`` rows stay."""
    if not contact_ids:
        return
    rules = await _rule_groups(conn, book)
    for start in range(0, len(contact_ids), CHUNK):
        await _sync(conn, book, contact_ids[start : start + CHUNK], rules, organisations=True, now=now)


async def _rule_groups(conn: AsyncConnection, book: Book) -> list[tuple[str, Rule]]:
    rows = await conn.execute(
        select(contact_groups.c.id, contact_groups.c.rule).where(
            in_book(contact_groups, book),
            contact_groups.c.kind == "custom",
            contact_groups.c.rule.is_not(None),
        )
    )
    return [(row.id, Rule.parse(json.loads(row.rule))) for row in rows]


async def _sync(
    conn: AsyncConnection,
    book: Book,
    part: Sequence[str],
    rules: Sequence[tuple[str, Rule]],
    *,
    organisations: bool,
    now: datetime,
) -> None:
    """Bring the derived memberships of the contacts ``part`` in line: read their memberships and
    their facts (a statement each, whatever the number of rules), decide here, write only the
    difference. A harvest that changes no membership, the usual case, writes nothing.

    Rules are decided in Python rather than in SQL: ``LIKE`` over the keys of a batch of ids
    took PostgreSQL 100-300 ms per rule and batch with bound parameters (its plan for a fresh
    table scans every key of the book per contact); reading the facts once is plan-independent."""
    part = list(part)
    stored: dict[tuple[str, str], str] = {
        (row.group_id, row.contact_id): row.source
        for row in await conn.execute(
            select(members.c.group_id, members.c.contact_id, members.c.source).where(
                members.c.contact_id.in_(part)
            )
        )
    }
    facts = await _facts(conn, book, part, keys=any(rule.reads_keys for _, rule in rules))
    wanted: dict[tuple[str, str], Source] = {}
    for group_id, rule in rules:
        wanted.update({(group_id, cid): "rule" for cid, fact in facts.items() if rule.matches(fact)})
    if organisations:
        organisation_of = {cid: f.organisation for cid, f in facts.items() if f.organisation is not None}
        pairs = await _organisation_pairs(conn, book, organisation_of, now)
        wanted.update({pair: "organisation" for pair in pairs})
    rule_groups = {group_id for group_id, _ in rules}
    stale: dict[str, list[str]] = {}
    for (group_id, contact_id), source in stored.items():
        derived = (source == "rule" and group_id in rule_groups) or (
            source == "organisation" and organisations
        )
        if derived and (group_id, contact_id) not in wanted:
            stale.setdefault(group_id, []).append(contact_id)
    for group_id, gone in stale.items():
        await conn.execute(
            delete(members).where(
                members.c.group_id == group_id,
                members.c.contact_id.in_(gone),
                members.c.source.in_(("rule", "organisation")),
            )
        )
    new = [
        {"group_id": group_id, "contact_id": contact_id, "source": source, "added_at": now}
        for (group_id, contact_id), source in sorted(wanted.items())
        if (group_id, contact_id) not in stored
    ]
    if new:
        insert = dialect_insert(conn, members).on_conflict_do_nothing(
            index_elements=["group_id", "contact_id"]
        )
        await conn.execute(insert, new)


async def _facts(conn: AsyncConnection, book: Book, part: Sequence[str], *, keys: bool) -> dict[str, Facts]:
    """The facts of the contacts ``part`` of ``book`` (their address keys only if ``keys``)."""
    found: dict[str, list[str]] = {}
    if keys:
        for row in await conn.execute(
            select(contact_addresses.c.contact_id, contact_addresses.c.key).where(
                contact_addresses.c.contact_id.in_(part)
            )
        ):
            found.setdefault(row.contact_id, []).append(row.key)
    # The book is checked here, not in SQL: PostgreSQL would pick the book's index and test each
    # of its contacts against the whole id list (~90 ms per 500 ids in a book of 3,000).
    rows = await conn.execute(
        select(
            contacts.c.id,
            contacts.c.organisation,
            contacts.c.two_way,
            contacts.c.sent_to + contacts.c.received_from + contacts.c.copied,
            contacts.c.tenant_id,
            contacts.c.owner,
        ).where(contacts.c.id.in_(part))
    )
    return {
        row[0]: Facts(row[1], bool(row[2]), int(row[3]), tuple(found.get(row[0], ())))
        for row in rows
        if Book(row[4], row[5]) == book
    }


async def _organisation_pairs(
    conn: AsyncConnection, book: Book, organisation_of: dict[str, str], now: datetime
) -> set[tuple[str, str]]:
    """(organisation group, contact) for contacts with an organisation; missing groups are made."""
    if not organisation_of:
        return set()
    domains = sorted(set(organisation_of.values()))
    groups = await _organisation_groups(conn, book, domains)
    missing = [d for d in domains if d not in groups]
    if missing:
        await conn.execute(
            dialect_insert(conn, contact_groups).on_conflict_do_nothing(
                index_elements=["tenant_id", "owner", "name"]
            ),
            [_organisation_row(book, domain, now) for domain in missing],
        )
        groups.update(await _organisation_groups(conn, book, missing))
    pairs: set[tuple[str, str]] = set()
    for contact_id, domain in organisation_of.items():
        group_id = groups.get(domain)
        if group_id is not None:  # None: a custom group holds the name
            pairs.add((group_id, contact_id))
    return pairs


async def _organisation_groups(
    conn: AsyncConnection, book: Book, names: Sequence[str]
) -> dict[str, str | None]:
    """Group id by name, for names taken in the book; None where a custom group holds the name."""
    rows = await conn.execute(
        select(contact_groups.c.id, contact_groups.c.name, contact_groups.c.kind).where(
            in_book(contact_groups, book), contact_groups.c.name.in_(list(names))
        )
    )
    return {row.name: row.id if row.kind == "organisation" else None for row in rows}


def _organisation_row(book: Book, domain: str, now: datetime) -> dict[str, Any]:
    return {
        "id": new_id("cg"),
        "tenant_id": book.tenant_id,
        "owner": book.owner,
        "name": domain,
        "kind": "organisation",
        "rule": None,  # its name is its rule (:func:`_group`)
        "description": None,
        "created_at": now,
        "updated_at": now,
    }


async def recompute_group(
    conn: AsyncConnection, group_id: str, book: Book, rule: Rule | None, *, now: datetime
) -> None:
    """Apply a changed rule to every contact of the book, :data:`PAGE` contacts at a time; no
    rule any more: the rule's members and ``removed`` marks go (the hand-added stay)."""
    if rule is None:
        await conn.execute(
            delete(members).where(members.c.group_id == group_id, members.c.source.in_(("rule", "removed")))
        )
        return
    after = ""
    while True:
        page = list(
            (
                await conn.execute(
                    select(contacts.c.id)
                    .where(in_book(contacts, book), contacts.c.id > after)
                    .order_by(contacts.c.id)
                    .limit(PAGE)
                )
            ).scalars()
        )
        if not page:
            return
        await _sync(conn, book, page, [(group_id, rule)], organisations=False, now=now)
        after = page[-1]


async def move_members(conn: AsyncConnection, into_id: str, from_ids: Sequence[str]) -> None:
    """A merge: ``into_id`` joins the groups ``from_ids`` were in (its own rows win); call
    :func:`refresh` for ``into_id`` after its figures are recomputed."""
    rows = select(
        members.c.group_id,
        literal(into_id, members.c.contact_id.type),
        members.c.source,
        members.c.added_at,
    ).where(members.c.contact_id.in_(list(from_ids)))
    await conn.execute(
        dialect_insert(conn, members)
        .from_select(["group_id", "contact_id", "source", "added_at"], rows)
        .on_conflict_do_nothing(index_elements=["group_id", "contact_id"])
    )


# --------------------------------------------------------------------------- the service


class GroupService:
    """Groups of a tenant's books (API and CLI). Every method takes ``owner``: None for any book
    of the tenant, a string for that owner's book only (another book's group is not found)."""

    def __init__(self, database: Database, *, clock: Clock = utc_now) -> None:
        self.database = database
        self.clock = clock

    async def list(
        self,
        tenant_id: str,
        *,
        owner: str | None = None,
        kind: Kind | None = None,
        cursor: str | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> Page[ContactGroup]:
        after = decode_cursor(cursor)
        query = select(contact_groups).where(contact_groups.c.tenant_id == tenant_id)
        if owner is not None:
            query = query.where(contact_groups.c.owner == owner)
        if kind is not None:
            query = query.where(contact_groups.c.kind == kind)
        if after is not None:
            query = query.where(contact_groups.c.id > after)
        async with self.database.connect() as conn:
            rows = (await conn.execute(query.order_by(contact_groups.c.id).limit(limit + 1))).all()
            more = len(rows) > limit
            rows = rows[:limit]
            counts = await _counts(conn, [row.id for row in rows])
        items = [_group(row, counts.get(row.id, 0)) for row in rows]
        return Page(items, encode_cursor(items[-1].id) if more and items else None)

    async def get(self, tenant_id: str, group_id: str, *, owner: str | None = None) -> ContactGroup:
        async with self.database.connect() as conn:
            return await _get(conn, tenant_id, group_id, owner)

    async def create(
        self,
        tenant_id: str,
        *,
        name: str,
        description: str | None = None,
        rule: Rule | None = None,
        owner: str | None = None,
    ) -> ContactGroup:
        """A ``custom`` group in book (tenant, owner); its rule is applied before this returns."""
        book = Book.of(tenant_id, owner)
        now = self.clock()
        group_id = new_id("cg")
        async with self.database.transaction() as conn:
            await lock_book(conn, book)
            await _check_name_free(conn, book, name)
            try:
                await conn.execute(
                    contact_groups.insert().values(
                        id=group_id,
                        tenant_id=book.tenant_id,
                        owner=book.owner,
                        name=name,
                        kind="custom",
                        rule=json.dumps(rule.to_json()) if rule is not None else None,
                        description=description,
                        created_at=now,
                        updated_at=now,
                    )
                )
            except IntegrityError as exc:  # a concurrent create took the name (SQLite: no lock)
                raise _name_taken(name) from exc
            if rule is not None:
                await recompute_group(conn, group_id, book, rule, now=now)
            return await _get(conn, tenant_id, group_id, None)

    async def update(
        self,
        tenant_id: str,
        group_id: str,
        changes: dict[str, Any],
        *,
        owner: str | None = None,
    ) -> ContactGroup:
        """Change ``name``, ``description`` and ``rule`` (keys present in ``changes``; a rule as a
        :class:`Rule` or None). An organisation group's name and rule are its domain: fixed."""
        now = self.clock()
        async with self.database.transaction() as conn:
            group = await _get(conn, tenant_id, group_id, owner)
            if group.kind == "organisation":
                for fixed in ("name", "rule"):
                    if fixed in changes:
                        raise InputError(
                            f"{fixed}: an organisation group is named by its domain and keeps its rule",
                            field=fixed,
                            hint="Change its description only, or make a custom group with a rule "
                            'such as {"organisation": "acme.com"}.',
                        )
            values: dict[str, Any] = {"updated_at": now}
            if "name" in changes and changes["name"] != group.name:
                await lock_book(conn, group.book)
                await _check_name_free(conn, group.book, changes["name"])
                values["name"] = changes["name"]
            if "description" in changes:
                values["description"] = changes["description"]
            rule_changed = "rule" in changes and changes["rule"] != group.rule
            if rule_changed:
                rule = changes["rule"]
                values["rule"] = json.dumps(rule.to_json()) if rule is not None else None
            try:
                await conn.execute(
                    update(contact_groups).where(contact_groups.c.id == group.id).values(**values)
                )
            except IntegrityError as exc:
                raise _name_taken(str(values.get("name", group.name))) from exc
            if rule_changed:
                await lock_book(conn, group.book)
                await recompute_group(conn, group.id, group.book, changes["rule"], now=now)
            return await _get(conn, tenant_id, group.id, None)

    async def delete(self, tenant_id: str, group_id: str, *, owner: str | None = None) -> None:
        """Delete a group and its membership rows (an organisation group returns with its next member)."""
        async with self.database.transaction() as conn:
            group = await _get(conn, tenant_id, group_id, owner)
            await conn.execute(delete(members).where(members.c.group_id == group.id))
            await conn.execute(delete(contact_groups).where(contact_groups.c.id == group.id))

    async def members(
        self,
        tenant_id: str,
        group_id: str,
        *,
        owner: str | None = None,
        cursor: str | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> Page[Member]:
        after = decode_cursor(cursor)
        async with self.database.connect() as conn:
            group = await _get(conn, tenant_id, group_id, owner, count=False)
            query = select(members.c.contact_id, members.c.source, members.c.added_at).where(
                members.c.group_id == group.id, members.c.source.in_(MEMBER_SOURCES)
            )
            if after is not None:
                query = query.where(members.c.contact_id > after)
            rows = (await conn.execute(query.order_by(members.c.contact_id).limit(limit + 1))).all()
            more = len(rows) > limit
            rows = rows[:limit]
            loaded = {c.id: c for c in await load(conn, [row.contact_id for row in rows])}
        items = [Member(loaded[row.contact_id], row.source, row.added_at) for row in rows]
        return Page(items, encode_cursor(rows[-1].contact_id) if more and rows else None)

    async def add_members(
        self, tenant_id: str, group_id: str, contact_ids: Sequence[str], *, owner: str | None = None
    ) -> ContactGroup:
        """Add contacts by hand (``manual``: kept whatever a rule says, a ``removed`` mark cleared)."""
        now = self.clock()
        async with self.database.transaction() as conn:
            group = await _get(conn, tenant_id, group_id, owner, count=False)
            ids = list(dict.fromkeys(contact_ids))
            await _check_contacts(conn, group, ids, owner)
            statement = dialect_insert(conn, members)
            statement = statement.on_conflict_do_update(
                index_elements=["group_id", "contact_id"],
                set_={"source": "manual", "added_at": statement.excluded.added_at},
            )
            await conn.execute(
                statement,
                [
                    {"group_id": group.id, "contact_id": cid, "source": "manual", "added_at": now}
                    for cid in ids
                ],
            )
            return await _get(conn, tenant_id, group.id, None)

    async def remove_member(
        self, tenant_id: str, group_id: str, contact_id: str, *, owner: str | None = None
    ) -> None:
        """Take a contact out of a group. Where a rule or the organisation would add it again, a
        ``removed`` mark keeps it out; a group filled by hand just forgets it."""
        now = self.clock()
        async with self.database.transaction() as conn:
            group = await _get(conn, tenant_id, group_id, owner, count=False)
            await _check_contacts(conn, group, [contact_id], owner)
            if group.rule is None:
                await conn.execute(
                    delete(members).where(members.c.group_id == group.id, members.c.contact_id == contact_id)
                )
                return
            statement = dialect_insert(conn, members)
            await conn.execute(
                statement.on_conflict_do_update(
                    index_elements=["group_id", "contact_id"],
                    set_={"source": "removed", "added_at": statement.excluded.added_at},
                ),
                {"group_id": group.id, "contact_id": contact_id, "source": "removed", "added_at": now},
            )


async def _counts(conn: AsyncConnection, group_ids: Sequence[str]) -> dict[str, int]:
    if not group_ids:
        return {}
    rows = await conn.execute(
        select(members.c.group_id, func.count())
        .where(members.c.group_id.in_(list(group_ids)), members.c.source.in_(MEMBER_SOURCES))
        .group_by(members.c.group_id)
    )
    return {row[0]: int(row[1]) for row in rows}


async def _get(
    conn: AsyncConnection, tenant_id: str, group_id: str, owner: str | None, *, count: bool = True
) -> ContactGroup:
    row = None
    if plausible_id(group_id):
        query = select(contact_groups).where(
            contact_groups.c.id == group_id, contact_groups.c.tenant_id == tenant_id
        )
        if owner is not None:
            query = query.where(contact_groups.c.owner == owner)
        row = (await conn.execute(query)).first()
    if row is None:
        raise ContactGroupNotFoundError(f"no contact group {group_id!r}")
    counts = await _counts(conn, [row.id]) if count else {}
    return _group(row, counts.get(row.id, 0))


async def _check_name_free(conn: AsyncConnection, book: Book, name: str) -> None:
    taken = await conn.execute(
        select(contact_groups.c.id).where(in_book(contact_groups, book), contact_groups.c.name == name)
    )
    if taken.first() is not None:
        raise _name_taken(name)


def _name_taken(name: str) -> ContactGroupExistsError:
    return ContactGroupExistsError(f"a contact group named {name!r} exists in this book", field="name")


async def _check_contacts(
    conn: AsyncConnection, group: ContactGroup, contact_ids: Sequence[str], owner: str | None
) -> None:
    """Every contact exists in the tenant (and ``owner``'s book, if given) and in the group's book."""
    plausible = [cid for cid in contact_ids if plausible_id(cid)]
    books: dict[str, str] = {}
    for start in range(0, len(plausible), CHUNK):
        rows = await conn.execute(
            select(contacts.c.id, contacts.c.owner).where(
                contacts.c.id.in_(plausible[start : start + CHUNK]), contacts.c.tenant_id == group.tenant_id
            )
        )
        books.update({row.id: row.owner for row in rows})
    for cid in contact_ids:
        if cid not in books or (owner is not None and books[cid] != owner):
            raise ContactNotFoundError(f"no contact {cid!r}", field="contacts")
    for cid in contact_ids:
        if books[cid] != group.owner:
            raise ContactBookMismatchError(
                f"contact {cid} belongs to another owner's book than group {group.id}", field="contacts"
            )
