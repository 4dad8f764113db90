"""The write path of harvesting (mailport.contacts.store.record) on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from mailport.bootstrap import Services
from mailport.contacts import Identity, harvest
from mailport.contacts.harvest import message_digest
from mailport.contacts.models import Book
from mailport.contacts.store import HarvestedMessage, announce_book, load, rank_key, record
from mailport.crypto import Secret
from mailport.mailboxes.models import AuthMethod, NewMailbox, Security, ServerSettings
from mailport.store.tables import contact_exclusions, contact_tombstones, contacts, events

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
ME = Identity.of(["me@example.com"])


def mail(number: int, sender: str, to: str = "me@example.com", extra: str = "") -> bytes:
    return (
        f"From: {sender}\r\nTo: {to}\r\nMessage-ID: <m{number}@example.org>\r\n{extra}Subject: s\r\n\r\n"
    ).encode()


def harvested(block: bytes, at: datetime = T0) -> HarvestedMessage:
    return HarvestedMessage(message_digest(block), harvest(block, None, at, identity=ME))


async def _mailbox(services: Services, owner: str | None = None) -> tuple[str, str]:
    tenant, _ = await services.tenants.create_tenant(f"t-{owner}")
    mailbox = await services.mailboxes.create(
        tenant.id,
        NewMailbox(
            email="me@example.com",
            auth_method=AuthMethod.PASSWORD,
            password=Secret("pw"),
            imap=ServerSettings("imap.example.com", 993, Security.SSL),
            owner=owner,
        ),
    )
    assert mailbox.owner == owner
    return tenant.id, mailbox.id


async def test_a_message_counts_once_and_figures_are_summed(services: Services) -> None:
    tenant_id, mailbox_id = await _mailbox(services, "user-1")
    book = Book(tenant_id, "user-1")
    first = [harvested(mail(1, '"Alice M" <Alice@Example.org>')), harvested(mail(2, "alice@example.org"))]
    async with services.database.transaction() as conn:
        done = await record(conn, book, mailbox_id, first, now=T0)
    assert done.messages == 2 and len(done.created) == 1 and done.updated == []
    async with services.database.transaction() as conn:
        again = await record(
            conn,
            book,
            mailbox_id,
            first + [harvested(mail(3, "bob@example.net"), T0 + timedelta(days=1))],
            now=T0,
        )
    assert again.messages == 1 and len(again.created) == 1  # the repeated two count nothing
    async with services.database.connect() as conn:
        rows = (await conn.execute(select(contacts).order_by(contacts.c.email))).all()
        loaded = await load(conn, [r.id for r in rows])
        types = (await conn.execute(select(events.c.type).order_by(events.c.seq))).scalars().all()
    alice, bob = loaded
    assert (alice.email, alice.name, alice.received_from, alice.owner) == (
        "alice@example.org",
        "Alice M",
        2,
        "user-1",
    )
    assert alice.first_seen == T0 and alice.keys == ("alice@example.org",)
    assert bob.received_from == 1 and bob.last_seen == T0 + timedelta(days=1)
    assert alice.rank == rank_key(0, 2, 0, False, T0)
    assert types == ["contact.created", "contact.created"]


async def test_a_tombstoned_key_stays_out_and_is_explained(services: Services) -> None:
    tenant_id, mailbox_id = await _mailbox(services)
    book = Book(tenant_id)
    async with services.database.transaction() as conn:
        await conn.execute(
            contact_tombstones.insert().values(
                tenant_id=tenant_id, owner="", key="gone@example.org", contact_id="ct_x", deleted_at=T0
            )
        )
        done = await record(
            conn,
            book,
            mailbox_id,
            [harvested(mail(1, "gone@example.org")), harvested(mail(2, "noreply@shop.example"))],
            now=T0,
        )
    assert done.created == [] and done.messages == 2
    async with services.database.connect() as conn:
        reasons = {(r.key, r.reason, r.messages) for r in await conn.execute(select(contact_exclusions))}
    assert reasons == {
        ("gone@example.org", "deleted", 1),
        ("noreply@shop.example", "no_reply", 1),
        ("me@example.com", "own_address", 2),
    }


async def test_a_backfill_announces_each_contact_once_and_a_long_name_is_cut(services: Services) -> None:
    tenant_id, mailbox_id = await _mailbox(services)
    book = Book(tenant_id)
    long_name = "N" * 300
    batches = [
        [harvested(mail(n, f'"{long_name}" <ann@example.org>')) for n in range(0, 3)],
        [harvested(mail(n, "ann@example.org")) for n in range(3, 6)] + [harvested(mail(9, "bo@example.org"))],
    ]
    for batch in batches:
        async with services.database.transaction() as conn:
            await record(conn, book, mailbox_id, batch, now=T0, events=False)
    async with services.database.transaction() as conn:
        assert await announce_book(conn, book, now=T0, limit=1) == 1  # in pages
        assert await announce_book(conn, book, now=T0) == 1
        assert await announce_book(conn, book, now=T0) == 0  # nothing owed any more
    async with services.database.transaction() as conn:  # new mail later: one update, announced
        await record(conn, book, mailbox_id, [harvested(mail(20, "ann@example.org"))], now=T0)
    async with services.database.connect() as conn:
        types = (await conn.execute(select(events.c.type).order_by(events.c.seq))).scalars().all()
        (ann,) = [
            c
            for c in await load(conn, [*(await conn.execute(select(contacts.c.id))).scalars()])
            if c.email == "ann@example.org"
        ]
    assert types == ["contact.created", "contact.created", "contact.updated"]
    assert ann.name == "N" * 200 and ann.received_from == 7 and ann.announced == ann.version
