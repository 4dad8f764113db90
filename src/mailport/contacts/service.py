"""The contacts a tenant's mailboxes harvested: list and search, read, change by hand, merge,
delete, explain, export; and the tenant's block list. What the API, the CLI and the web page call.

Every method takes the tenant and ``owner``: None reaches every book of the tenant (a tenant API
key), a string only that owner's book (``""`` the unowned one; issue 19's callers pass their
user). Another tenant's or another owner's contact is ``contact_not_found``, never "forbidden".

Every change is one transaction with its ``contact.created`` / ``contact.updated`` event
(:func:`mailport.contacts.store.emit`), under the book's lock
(:func:`mailport.contacts.store.lock_book`) so a harvest of the same book waits for it.

Choices the issue leaves open:

- a contact made by hand is keyed by its canonical address and, when provider folding changes
  it (``j.doe@gmail.com`` → ``jdoe@gmail.com``), by the folded one too, so the harvest finds it
  whether or not the mailbox folds; making it clears a deletion of those keys;
- a delete remembers every key (``contact_tombstones``) and drops the contact; the per-mailbox
  figures stay, so making the contact again by hand brings its figures back;
- a merge moves keys and group memberships to the contact that stays, sums the figures again,
  unions the names and addresses seen, keeps its notes followed by the others', and keeps its
  name and organisation unless only a merged contact's were set by hand. The merged contacts
  are deleted without tombstones: their addresses now belong to the contact that stays.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from mailport.clock import Clock, utc_now
from mailport.contacts import blocklist as blocks
from mailport.contacts import history as hist
from mailport.contacts.addresses import canonical, fold
from mailport.contacts.export import ContactCard, csv_rows, vcards
from mailport.contacts.models import Book, StoredContact
from mailport.contacts.organisations import organisation_of
from mailport.contacts.queries import (
    ContactQuery,
    Position,
    decode_position,
    domain_filter,
    encode_position,
    select_page,
)
from mailport.contacts.rules import Identity, address_reason
from mailport.contacts.schemas import ContactCreate, ContactUpdate
from mailport.contacts.store import emit, load, lock_book, recompute
from mailport.contacts.views import current_score
from mailport.errors import (
    ContactBookMismatchError,
    ContactExistsError,
    ContactGroupNotFoundError,
    ContactNotFoundError,
    InputError,
    InvalidEmailError,
)
from mailport.events import EventLog, EventType
from mailport.store.database import dialect_insert
from mailport.store.ids import new_id, plausible_id
from mailport.store.tables import (
    contact_addresses,
    contact_group_members,
    contact_groups,
    contact_tombstones,
    contacts,
)

ExportFormat = Literal["csv", "vcard"]
EXPORT_CHUNK = 500  # contacts read per query while an export streams


@dataclass(frozen=True, slots=True)
class ContactPage:
    items: list[StoredContact]
    next_cursor: str | None


def _keys_of(address: str, *, field: str) -> tuple[str, ...]:
    """The canonical key of ``address`` and its provider-folded one (when they differ)."""
    key = canonical(address)
    if key is None:
        raise InvalidEmailError(f"{address!r} is not an email address", field=field)
    return tuple(dict.fromkeys((key, fold(key))))


class ContactService:
    def __init__(self, events: EventLog, *, clock: Clock = utc_now, export_chunk: int = EXPORT_CHUNK) -> None:
        self.events = events
        self.database = events.database
        self.clock = clock
        self.export_chunk = export_chunk

    # ------------------------------------------------------------------ reads

    async def list_contacts(
        self, tenant_id: str, query: ContactQuery, *, owner: str | None = None
    ) -> ContactPage:
        after = decode_position(query.cursor, query.sort)
        query = _checked(query)
        async with self.database.connect() as conn:
            await self._check_group(conn, tenant_id, owner, query.group)
            rows = (
                await conn.execute(select_page(tenant_id, owner, query, after=after, limit=query.limit + 1))
            ).all()
            page = rows[: query.limit]
            items = await load(conn, [row.id for row in page])
        more = len(rows) > query.limit
        cursor = encode_position(Position(query.sort, page[-1].sort_value, page[-1].id)) if more else None
        return ContactPage(items, cursor)

    async def get(self, tenant_id: str, contact_id: str, *, owner: str | None = None) -> StoredContact:
        async with self.database.connect() as conn:
            return await _find(conn, tenant_id, contact_id, owner)

    async def history(self, tenant_id: str, contact_id: str, *, owner: str | None = None) -> hist.History:
        """Which mailboxes' mail made the contact, what left its addresses out, its groups."""
        async with self.database.connect() as conn:
            contact = await _find(conn, tenant_id, contact_id, owner)
            return hist.History(
                contact.id,
                await hist.sources(conn, contact.book, contact.keys),
                await hist.exclusions(conn, tenant_id, contact.owner, contact.keys),
                (await hist.groups_of(conn, [contact.id])).get(contact.id, []),
            )

    async def exclusions(
        self, tenant_id: str, address: str, *, owner: str | None = None
    ) -> hist.AddressReport:
        """Why ``address`` was left out, per mailbox and reason, whether or not it is a contact:
        its exclusions, a deletion, and a rule that leaves it out of every harvest."""
        keys = _keys_of(address, field="address")
        async with self.database.connect() as conn:
            query = select(contact_addresses.c.contact_id, contact_addresses.c.owner).where(
                contact_addresses.c.tenant_id == tenant_id, contact_addresses.c.key.in_(keys)
            )
            if owner is not None:
                query = query.where(contact_addresses.c.owner == owner)
            found = sorted({(row.contact_id, row.owner) for row in await conn.execute(query)})
            rule = address_reason(keys[0], Identity(), await blocks.load_blocklist(conn, tenant_id))
            return hist.AddressReport(
                address=address,
                keys=keys,
                contacts=found,
                rule=rule,
                rule_description=hist.DESCRIPTIONS[rule] if rule else None,
                deleted=await hist.deletions(conn, tenant_id, owner, keys),
                exclusions=await hist.exclusions(conn, tenant_id, owner, keys),
            )

    async def _check_group(
        self, conn: AsyncConnection, tenant_id: str, owner: str | None, group_id: str | None
    ) -> None:
        if group_id is None:
            return
        query = select(contact_groups.c.id).where(
            contact_groups.c.id == group_id, contact_groups.c.tenant_id == tenant_id
        )
        if owner is not None:
            query = query.where(contact_groups.c.owner == owner)
        if not plausible_id(group_id) or (await conn.execute(query)).first() is None:
            raise ContactGroupNotFoundError("no such contact group", field="group")

    # ------------------------------------------------------------------ changes

    async def create(self, tenant_id: str, body: ContactCreate, *, owner: str | None = None) -> StoredContact:
        """A contact made by hand (``contact_exists`` when one of its keys is a contact's)."""
        if owner is not None and body.owner is not None and body.owner != owner:
            raise ContactBookMismatchError("the contact would be in another owner's book", field="owner")
        book = Book.of(tenant_id, body.owner if owner is None else owner)
        keys = _keys_of(body.email, field="email")
        now = self.clock()
        contact_id = new_id("ct")
        async with self.events.transaction() as conn:
            await lock_book(conn, book)
            taken = (
                await conn.execute(
                    select(contact_addresses.c.key, contact_addresses.c.contact_id).where(
                        contact_addresses.c.tenant_id == book.tenant_id,
                        contact_addresses.c.owner == book.owner,
                        contact_addresses.c.key.in_(keys),
                    )
                )
            ).first()
            if taken is not None:
                raise ContactExistsError(
                    f"{taken.key} is an address of contact {taken.contact_id}", contact_id=taken.contact_id
                )
            await conn.execute(
                delete(contact_tombstones).where(
                    contact_tombstones.c.tenant_id == book.tenant_id,
                    contact_tombstones.c.owner == book.owner,
                    contact_tombstones.c.key.in_(keys),
                )
            )
            organisation = body.organisation or organisation_of(keys[0])
            await conn.execute(
                contacts.insert().values(
                    id=contact_id,
                    tenant_id=book.tenant_id,
                    owner=book.owner,
                    email=keys[0],
                    name=body.name,
                    name_source="user" if body.name else "harvest",
                    organisation=organisation,
                    organisation_source="user" if body.organisation else "harvest",
                    notes=body.notes,
                    addresses=json.dumps([body.email], ensure_ascii=False),
                    version=0,
                    created_at=now,
                    updated_at=now,
                )
            )
            try:
                await conn.execute(
                    contact_addresses.insert(),
                    [
                        {"tenant_id": book.tenant_id, "owner": book.owner, "key": k, "contact_id": contact_id}
                        for k in keys
                    ],
                )
            except IntegrityError as exc:  # made meanwhile by a writer SQLite let in first
                raise ContactExistsError(f"{keys[0]} became a contact meanwhile") from exc
            return await self._changed(conn, contact_id, EventType.CONTACT_CREATED, now)

    async def update(
        self, tenant_id: str, contact_id: str, body: ContactUpdate, *, owner: str | None = None
    ) -> StoredContact:
        """Change what the user may change (only the fields sent); ``contact.updated``."""
        given = body.model_fields_set
        now = self.clock()
        async with self.events.transaction() as conn:
            current = await _find(conn, tenant_id, contact_id, owner)
            await lock_book(conn, current.book)
            values: dict[str, Any] = {}
            if "email" in given and body.email is not None:
                values["email"] = _one_of(body.email, current.keys)
            primary = values.get("email", current.email)
            if "name" in given:
                values.update(name=body.name, name_source="user" if body.name else "harvest")
            if "organisation" in given and body.organisation is not None:
                values.update(organisation=body.organisation, organisation_source="user")
            elif "organisation" in given or ("email" in values and current.organisation_source == "harvest"):
                values.update(organisation=organisation_of(primary), organisation_source="harvest")
            if "notes" in given:
                values["notes"] = body.notes
            if not values:
                return current
            await conn.execute(update(contacts).where(contacts.c.id == current.id).values(**values))
            return await self._changed(conn, current.id, EventType.CONTACT_UPDATED, now)

    async def delete(self, tenant_id: str, contact_id: str, *, owner: str | None = None) -> None:
        """Delete the contact and remember its keys, so harvesting never brings it back."""
        now = self.clock()
        async with self.events.transaction() as conn:
            current = await _find(conn, tenant_id, contact_id, owner)
            await lock_book(conn, current.book)
            statement = dialect_insert(conn, contact_tombstones)
            statement = statement.on_conflict_do_update(
                index_elements=["tenant_id", "owner", "key"],
                set_={
                    "contact_id": statement.excluded.contact_id,
                    "deleted_at": statement.excluded.deleted_at,
                },
            )
            await conn.execute(
                statement,
                [
                    {
                        "tenant_id": current.tenant_id,
                        "owner": current.owner,
                        "key": key,
                        "contact_id": current.id,
                        "deleted_at": now,
                    }
                    for key in current.keys
                ],
            )
            await _drop(conn, [current.id])

    async def merge(
        self, tenant_id: str, into: str, merged: Sequence[str], *, owner: str | None = None
    ) -> StoredContact:
        """Merge ``merged`` into ``into`` (one book); ``contact.updated`` for ``into``."""
        merged = list(dict.fromkeys(merged))
        if not merged or into in merged:
            raise InputError("merge at least one contact, other than `into`", field="from")
        now = self.clock()
        async with self.events.transaction() as conn:
            found = {c.id: c for c in await load(conn, [i for i in (into, *merged) if plausible_id(i)])}
            for contact_id in (into, *merged):
                _visible(found.get(contact_id), tenant_id, contact_id, owner)
            target, others = found[into], [found[i] for i in merged]
            if any(other.book != target.book for other in others):
                raise ContactBookMismatchError("the contacts are in different owners' books", field="from")
            await lock_book(conn, target.book)
            await conn.execute(
                update(contact_addresses)
                .where(contact_addresses.c.contact_id.in_(merged))
                .values(contact_id=into)
            )
            members = await conn.execute(
                select(contact_group_members).where(contact_group_members.c.contact_id.in_(merged))
            )
            moved = [{**row._asdict(), "contact_id": into} for row in members]
            if moved:
                statement = dialect_insert(conn, contact_group_members).on_conflict_do_nothing(
                    index_elements=["group_id", "contact_id"]
                )
                await conn.execute(statement, moved)
            await _drop(conn, merged)
            values = _adopted(target, others)
            if values:
                await conn.execute(update(contacts).where(contacts.c.id == into).values(**values))
            names = sum((other.names for other in others), Counter[str]())
            addresses = {address for other in others for address in other.addresses}
            await recompute(conn, [into], now=now, names={into: names}, addresses={into: addresses})
            return await self._changed(conn, into, EventType.CONTACT_UPDATED, now, recomputed=True)

    async def _changed(
        self,
        conn: AsyncConnection,
        contact_id: str,
        kind: EventType,
        now: datetime,
        *,
        recomputed: bool = False,
    ) -> StoredContact:
        """Sum the figures again (a new version, a new search text) and append the event."""
        if not recomputed:
            await recompute(conn, [contact_id], now=now)
        loaded = await load(conn, [contact_id])
        await emit(conn, loaded, kind, now=now)
        return loaded[0]

    # ------------------------------------------------------------------ block list

    async def blocklist(self, tenant_id: str) -> blocks.Entries:
        async with self.database.connect() as conn:
            return await blocks.entries(conn, tenant_id)

    async def set_blocklist(
        self, tenant_id: str, addresses: Sequence[str], domains: Sequence[str]
    ) -> blocks.Entries:
        """Replace the tenant's block list (every entry checked first: one bad entry changes nothing)."""
        keys = [blocks.blocked_address(a, field="addresses") for a in addresses]
        names = [blocks.blocked_domain(d, field="domains") for d in domains]
        async with self.database.transaction() as conn:
            await blocks.replace(conn, tenant_id, keys, names, now=self.clock())
            return await blocks.entries(conn, tenant_id)

    async def block(
        self, tenant_id: str, *, address: str | None = None, domain: str | None = None
    ) -> blocks.Entries:
        kind, value = _entry(address, domain)
        async with self.database.transaction() as conn:
            await blocks.add(conn, tenant_id, kind, [value], now=self.clock())
            return await blocks.entries(conn, tenant_id)

    async def unblock(
        self, tenant_id: str, *, address: str | None = None, domain: str | None = None
    ) -> blocks.Entries:
        kind, value = _entry(address, domain)
        async with self.database.transaction() as conn:
            await blocks.remove(conn, tenant_id, kind, value)
            return await blocks.entries(conn, tenant_id)

    # ------------------------------------------------------------------ export

    async def export(
        self, tenant_id: str, fmt: ExportFormat, query: ContactQuery, *, owner: str | None = None
    ) -> AsyncIterator[str]:
        """The contacts ``query`` selects (every page; ``limit`` and ``cursor`` are ignored), as
        CSV or vCard 4.0 text, a chunk at a time. Bad filters raise before the first chunk."""
        now = self.clock()
        query = _checked(query)
        async with self.database.connect() as conn:
            await self._check_group(conn, tenant_id, owner, query.group)
        if fmt == "csv":
            yield "".join(csv_rows((), header=True))
        after: Position | None = None
        while True:
            async with self.database.connect() as conn:
                rows = (
                    await conn.execute(
                        select_page(tenant_id, owner, query, after=after, limit=self.export_chunk)
                    )
                ).all()
                loaded = await load(conn, [row.id for row in rows])
                groups = await hist.groups_of(conn, [c.id for c in loaded])
            cards = [_card(c, [g.name for g in groups.get(c.id, [])], now) for c in loaded]
            if cards:
                if fmt == "csv":
                    yield "".join(csv_rows(cards, header=False))
                else:
                    yield b"".join(vcards(cards)).decode("utf-8")
            if len(rows) < self.export_chunk:
                return
            after = Position(query.sort, rows[-1].sort_value, rows[-1].id)


def _checked(query: ContactQuery) -> ContactQuery:
    """``query`` with its domain filter normalized (422 before anything is read or sent)."""
    return replace(query, domain=domain_filter(query.domain)) if query.domain else query


def _card(contact: StoredContact, groups: list[str], now: datetime) -> ContactCard:
    return ContactCard(
        id=contact.id,
        display_name=contact.name,
        emails=contact.keys,
        organisation=contact.organisation,
        groups=tuple(groups),
        first_seen=contact.first_seen,
        last_seen=contact.last_seen,
        sent_to=contact.sent_to,
        received_from=contact.received_from,
        two_way=contact.two_way,
        score=round(current_score(contact, now), 4),
        updated_at=contact.updated_at,
    )


def _visible(
    contact: StoredContact | None, tenant_id: str, contact_id: str, owner: str | None
) -> StoredContact:
    """``contact`` when the caller may see it, else ``contact_not_found``."""
    if contact is None or contact.tenant_id != tenant_id or (owner is not None and contact.owner != owner):
        shown = contact_id if plausible_id(contact_id) else "with that id"
        raise ContactNotFoundError(f"no contact {shown}")
    return contact


async def _find(conn: AsyncConnection, tenant_id: str, contact_id: str, owner: str | None) -> StoredContact:
    found = await load(conn, [contact_id]) if plausible_id(contact_id) else []
    return _visible(found[0] if found else None, tenant_id, contact_id, owner)


async def _drop(conn: AsyncConnection, contact_ids: Sequence[str]) -> None:
    """Delete contacts with their keys and memberships (the foreign keys cascade as well)."""
    ids = list(contact_ids)
    await conn.execute(delete(contact_group_members).where(contact_group_members.c.contact_id.in_(ids)))
    await conn.execute(delete(contact_addresses).where(contact_addresses.c.contact_id.in_(ids)))
    await conn.execute(delete(contacts).where(contacts.c.id.in_(ids)))


def _one_of(address: str, keys: Sequence[str]) -> str:
    """The key of ``keys`` that ``address`` is (as written, or provider-folded); else 422."""
    key = canonical(address)
    for candidate in (key, fold(key)) if key is not None else ():
        if candidate in keys:
            return candidate
    raise InputError(
        "the primary address must be one of the contact's emails",
        field="email",
        hint="Choose one of the contact's `emails`; merge another contact first to add its address.",
    )


def _adopted(target: StoredContact, others: Sequence[StoredContact]) -> dict[str, Any]:
    """What the contact that stays takes from the merged ones: a name and an organisation set
    by hand (when it has none of its own), and their notes after its own."""
    values: dict[str, Any] = {}
    if target.name_source == "harvest":
        named = next((o for o in others if o.name_source == "user"), None)
        if named is not None:
            values.update(name=named.name, name_source="user")
    if target.organisation_source == "harvest":
        organised = next((o for o in others if o.organisation_source == "user"), None)
        if organised is not None:
            values.update(organisation=organised.organisation, organisation_source="user")
    notes = [n for n in dict.fromkeys([target.notes, *(o.notes for o in others)]) if n]
    if len(notes) > (1 if target.notes else 0):
        values["notes"] = "\n\n".join(notes)
    return values


def _entry(address: str | None, domain: str | None) -> tuple[blocks.Kind, str]:
    if address is not None and domain is None:
        return "address", blocks.blocked_address(address)
    if domain is not None and address is None:
        return "domain", blocks.blocked_domain(domain)
    raise InputError("give either `address` or `domain`", field="address")


__all__ = ["ContactPage", "ContactService", "ExportFormat"]
