"""Contact groups kept by the harvest write path (mailport.contacts.groups.refresh through
mailport.contacts.store.record), on SQLite and PostgreSQL, with real header blocks."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, select, update

from mailport.contacts import Identity, harvest
from mailport.contacts import groups as group_module
from mailport.contacts.group_rules import Rule
from mailport.contacts.groups import ContactGroup, GroupService, refresh
from mailport.contacts.harvest import message_digest
from mailport.contacts.history import groups_of
from mailport.contacts.models import Book
from mailport.contacts.store import HarvestedMessage, record
from mailport.crypto import Secret
from mailport.mailboxes.models import AuthMethod, NewMailbox, Security, ServerSettings
from mailport.services import Services
from mailport.store.tables import contact_group_members, contacts

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
ME = "me@example.com"
_numbers = itertools.count(1)


def received(sender: str, to: str = ME, *, extra: str = "") -> bytes:
    """A received message's header block, as the server hands it to the harvest."""
    number = next(_numbers)
    return (
        f"From: {sender}\r\nTo: {to}\r\nMessage-ID: <g{number}@example.org>\r\n{extra}"
        f"Date: Mon, 1 Jun 2026 12:00:00 +0000\r\nSubject: s{number}\r\n\r\n"
    ).encode()


def sent(to: str) -> bytes:
    return received(ME, to)


async def mailbox(services: Services, tenant_id: str, owner: str | None = None) -> str:
    created = await services.mailboxes.create(
        tenant_id,
        NewMailbox(
            email=f"me-{next(_numbers)}@example.com",  # the harvest's identity is ME either way
            auth_method=AuthMethod.PASSWORD,
            password=Secret("pw"),
            imap=ServerSettings("imap.example.com", 993, Security.SSL),
            owner=owner,
        ),
    )
    return created.id


async def harvest_into(
    services: Services, book: Book, mailbox_id: str, *blocks: bytes, at: datetime = T0
) -> dict[str, str]:
    """Record ``blocks`` through the one write path; the book's contact ids by address."""
    identity = Identity.of([ME])
    messages = [HarvestedMessage(message_digest(b), harvest(b, None, at, identity=identity)) for b in blocks]
    async with services.database.transaction() as conn:
        await record(conn, book, mailbox_id, messages, now=at)
        rows = await conn.execute(
            select(contacts.c.email, contacts.c.id).where(
                contacts.c.tenant_id == book.tenant_id, contacts.c.owner == book.owner
            )
        )
        return {row.email: row.id for row in rows}


async def book_with_mailbox(services: Services, owner: str | None = None) -> tuple[Book, str]:
    tenant, _ = await services.tenants.create_tenant(f"groups-{next(_numbers)}")
    return Book.of(tenant.id, owner), await mailbox(services, tenant.id, owner)


async def memberships(services: Services, group_id: str) -> dict[str, str]:
    """contact email -> source, ``removed`` rows included."""
    async with services.database.connect() as conn:
        rows = await conn.execute(
            select(contacts.c.email, contact_group_members.c.source)
            .join(contacts, contacts.c.id == contact_group_members.c.contact_id)
            .where(contact_group_members.c.group_id == group_id)
        )
        return {row.email: row.source for row in rows}


async def organisation_groups(services: Services, book: Book) -> dict[str, ContactGroup]:
    found = await services.contact_groups.list(book.tenant_id, owner=book.owner, kind="organisation")
    return {g.name: g for g in found.items}


# --------------------------------------------------------------------------- upkeep on harvest


async def test_organisation_groups_appear_with_their_first_contact_and_skip_free_mail(
    services: Services,
) -> None:
    book, mailbox_id = await book_with_mailbox(services, "user-1")
    await harvest_into(
        services, book, mailbox_id, received("Alice <alice@acme.com>"), received("x@gmail.com")
    )
    groups = await organisation_groups(services, book)
    assert list(groups) == ["acme.com"] and groups["acme.com"].members == 1
    assert groups["acme.com"].rule == Rule(organisation="acme.com")
    ids = await harvest_into(
        services, book, mailbox_id, received("bob@eng.acme.com"), received("dave@example.org, y@web.de")
    )
    groups = await organisation_groups(services, book)
    assert sorted(groups) == ["acme.com", "example.org"]
    assert await memberships(services, groups["acme.com"].id) == {
        "alice@acme.com": "organisation",
        "bob@eng.acme.com": "organisation",
    }
    assert await memberships(services, groups["example.org"].id) == {"dave@example.org": "organisation"}
    assert groups["acme.com"].owner == "user-1"
    assert "x@gmail.com" in ids and "y@web.de" in ids  # contacts, in no group
    other = Book(book.tenant_id, "")  # another book of the tenant has no group yet
    assert await organisation_groups(services, other) == {}


async def test_a_changed_organisation_moves_the_contact_to_its_group(services: Services) -> None:
    book, mailbox_id = await book_with_mailbox(services)
    ids = await harvest_into(services, book, mailbox_id, received("alice@acme.com"), received("bob@acme.com"))
    async with services.database.transaction() as conn:  # what a user's PATCH of the contact writes
        await conn.execute(
            update(contacts)
            .where(contacts.c.id == ids["alice@acme.com"])
            .values(organisation="Initech Ltd", organisation_source="user")  # not always a domain
        )
        await refresh(conn, book, [ids["alice@acme.com"]], now=T0)
    groups = await organisation_groups(services, book)
    assert await memberships(services, groups["acme.com"].id) == {"bob@acme.com": "organisation"}
    assert await memberships(services, groups["Initech Ltd"].id) == {"alice@acme.com": "organisation"}
    assert groups["Initech Ltd"].rule == Rule(organisation="Initech Ltd")
    assert groups["acme.com"].members == 1


async def test_a_rule_group_follows_the_harvest(services: Services) -> None:
    book, mailbox_id = await book_with_mailbox(services)
    group = await services.contact_groups.create(
        book.tenant_id, name="Acme, both ways", rule=Rule(domains=("acme.com",), two_way=True)
    )
    await harvest_into(
        services,
        book,
        mailbox_id,
        received("alice@acme.com"),
        sent("alice@acme.com"),
        received("bob@sales.acme.com"),
        received("carol@example.org"),
        sent("carol@example.org"),
    )
    assert await memberships(services, group.id) == {"alice@acme.com": "rule"}
    # Bob is written to: now two-way, and a subdomain of acme.com
    await harvest_into(services, book, mailbox_id, sent("bob@sales.acme.com"), at=T0 + timedelta(days=1))
    assert await memberships(services, group.id) == {"alice@acme.com": "rule", "bob@sales.acme.com": "rule"}
    assert (await services.contact_groups.get(book.tenant_id, group.id)).members == 2


async def test_min_messages_and_address_contains_are_counted_from_the_stats(services: Services) -> None:
    book, mailbox_id = await book_with_mailbox(services)
    group = await services.contact_groups.create(
        book.tenant_id, name="Busy sales", rule=Rule(address_contains="sales", min_messages=3)
    )
    await harvest_into(
        services,
        book,
        mailbox_id,
        received("sales@acme.com"),
        received("sales@acme.com"),
        received("ann@acme.com"),
    )
    assert await memberships(services, group.id) == {}
    await harvest_into(services, book, mailbox_id, sent("sales@acme.com"), received("ann@acme.com"))
    assert await memberships(services, group.id) == {"sales@acme.com": "rule"}


async def test_a_removed_member_stays_removed_until_added_by_hand(services: Services) -> None:
    book, mailbox_id = await book_with_mailbox(services)
    ids = await harvest_into(services, book, mailbox_id, received("alice@acme.com"))
    group = await services.contact_groups.create(
        book.tenant_id, name="Acme", rule=Rule(domains=("acme.com",))
    )
    assert await memberships(services, group.id) == {"alice@acme.com": "rule"}
    await services.contact_groups.remove_member(book.tenant_id, group.id, ids["alice@acme.com"])
    await harvest_into(services, book, mailbox_id, received("alice@acme.com"), sent("alice@acme.com"))
    assert await memberships(services, group.id) == {"alice@acme.com": "removed"}
    assert (await services.contact_groups.get(book.tenant_id, group.id)).members == 0
    organisation = (await organisation_groups(services, book))["acme.com"]
    await services.contact_groups.remove_member(book.tenant_id, organisation.id, ids["alice@acme.com"])
    await harvest_into(services, book, mailbox_id, received("alice@acme.com"))
    assert await memberships(services, organisation.id) == {"alice@acme.com": "removed"}
    await services.contact_groups.add_members(book.tenant_id, group.id, [ids["alice@acme.com"]])
    assert await memberships(services, group.id) == {"alice@acme.com": "manual"}


async def test_a_changed_rule_recomputes_the_whole_group_in_pages(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(group_module, "PAGE", 2)  # five contacts: three pages
    book, mailbox_id = await book_with_mailbox(services)
    senders = ["a@acme.com", "b@acme.com", "c@initech.example", "d@acme.com", "e@initech.example"]
    ids = await harvest_into(services, book, mailbox_id, *(received(s) for s in senders))
    service: GroupService = services.contact_groups
    group = await service.create(book.tenant_id, name="Partners")
    await service.add_members(book.tenant_id, group.id, [ids["c@initech.example"]])
    changed = await service.update(book.tenant_id, group.id, {"rule": Rule(domains=("acme.com",))})
    assert changed.members == 4 and changed.rule == Rule(domains=("acme.com",))
    await service.remove_member(book.tenant_id, group.id, ids["b@acme.com"])
    await service.update(book.tenant_id, group.id, {"rule": Rule(organisation="initech.example")})
    assert await memberships(services, group.id) == {
        "b@acme.com": "removed",
        "c@initech.example": "manual",
        "e@initech.example": "rule",
    }
    await service.update(book.tenant_id, group.id, {"rule": None})  # by hand only: the hand-added stay
    assert await memberships(services, group.id) == {"c@initech.example": "manual"}


async def test_a_custom_group_named_like_a_domain_stands_in_for_its_organisation(services: Services) -> None:
    book, mailbox_id = await book_with_mailbox(services)
    custom = await services.contact_groups.create(book.tenant_id, name="acme.com")
    await harvest_into(services, book, mailbox_id, received("alice@acme.com"))
    assert await organisation_groups(services, book) == {}
    assert await memberships(services, custom.id) == {}


async def test_a_merge_moves_memberships_and_the_history_lists_them(services: Services) -> None:
    book, mailbox_id = await book_with_mailbox(services)
    ids = await harvest_into(
        services, book, mailbox_id, received("alice@acme.com"), received("a.smith@gmail.com")
    )
    friends = await services.contact_groups.create(book.tenant_id, name="Friends")
    await services.contact_groups.add_members(book.tenant_id, friends.id, [ids["a.smith@gmail.com"]])
    into, gone = ids["alice@acme.com"], ids["a.smith@gmail.com"]
    async with services.database.transaction() as conn:  # what ctapi's merge does around it
        await group_module.move_members(conn, into, [gone])
        await conn.execute(delete(contacts).where(contacts.c.id == gone))
        await refresh(conn, book, [into], now=T0)
        groups = {g.name: g.source for g in (await groups_of(conn, [into]))[into]}
        listed = await conn.execute(select(contacts.c.email).where(group_module.is_member_of(friends.id)))
    assert groups == {"Friends": "manual", "acme.com": "organisation"}
    assert listed.scalars().all() == ["alice@acme.com"]  # what ?group= of GET /v1/contacts filters by
    assert await memberships(services, friends.id) == {"alice@acme.com": "manual"}
