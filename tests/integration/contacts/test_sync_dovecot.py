"""Harvesting over the real Dovecot: the crafted corpus (tests/data/contacts) delivered into INBOX
and Sent of a fresh user gives exactly the expected contacts (the same set as
tests/unit/contacts/test_corpus.py, with the same identity); then new mail arrives through the
event stream and the scheduled re-sync, a deleted contact stays deleted after a full re-sync, a
run stopped half-way resumes without counting anything twice, ``sent_only`` and a short period
harvest less, and two mailboxes of one owner share a book that another owner's does not see.
On SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from mailport import leases
from mailport.bootstrap import Services
from mailport.config import Settings
from mailport.contacts import schedule
from mailport.contacts.feed import LEASE, ContactFeed
from mailport.contacts.models import ContactSettings, StoredContact
from mailport.contacts.store import load
from mailport.contacts.sync import ContactSync, SyncReport
from mailport.contacts.worker import ContactWorker
from mailport.crypto import Secret
from mailport.errors import ContactsNotEnabledError
from mailport.mailboxes.models import (
    AuthMethod,
    Mailbox,
    NewMailbox,
    ProcessingSettings,
    Security,
    ServerSettings,
)
from mailport.mailboxes.schemas import ContactsPatch, MailboxUpdate, SendingPatch, SettingsPatch
from mailport.messages.headers import date, parse_block
from mailport.store.tables import (
    contact_blocklist,
    contact_exclusions,
    contact_messages,
    contact_tombstones,
    contacts,
)
from mailport.sync import Orchestrator, WatcherOptions
from tests.integration.sync.conftest import wait_for
from tests.mailstack.dovecot import Dovecot
from tests.unit.contacts.test_corpus import CORPUS, EXPECTED_EXCLUDED

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)  # the corpus is of November 2026
ALIASES = ("me@alias.example", "john.smith@gmail.com")
EXPECTED_NAMES = {
    "alice@example.org": "Alice Martin",
    "bob@example.net": "Bob Stone",
    "joerg@xn--exmple-cua.de": "Jörg Müller",
    "dave@away.example": "Dave Reed",
    "frank@example.com": "Frank Ott",
    "eringray@gmail.com": "Erin Gray",
    "grace@example.net": "Grace Hall",
    "grace-team@example.net": "Grace's Team",
}
# (sent_to, received_from, copied) by key, as the corpus has them
EXPECTED_FIGURES = {
    "alice@example.org": (2, 2, 0),
    "bob@example.net": (0, 0, 2),
    "joerg@xn--exmple-cua.de": (1, 1, 0),
    "dave@away.example": (1, 0, 0),
    "frank@example.com": (1, 0, 0),
    "eringray@gmail.com": (0, 2, 0),
    "grace@example.net": (0, 1, 0),
    "grace-team@example.net": (0, 1, 0),
}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Dovecot listens on 127.0.0.1: the operator allows exactly that address."""
    return settings.model_copy(update={"allowed_hosts": ["127.0.0.1"]})


def corpus(direction: str) -> list[tuple[bytes, datetime]]:
    """The corpus's header blocks as whole messages (a body line added), with their Date."""
    out = []
    for path in sorted((CORPUS / direction).glob("*.eml")):
        block = path.read_bytes()
        when = date(dict(parse_block(block))["Date"])
        assert when is not None
        out.append(((block.rstrip(b"\n") + b"\n\nhello\n").replace(b"\n", b"\r\n"), when))
    return out


def message(sender: str, to: str, subject: str, *, message_id: str | None = None) -> bytes:
    mid = f"Message-ID: <{message_id}>\r\n" if message_id else ""
    return (
        f"Date: Mon, 30 Nov 2026 10:00:00 +0000\r\nFrom: {sender}\r\nTo: {to}\r\n{mid}"
        f"Subject: {subject}\r\n\r\nhello\r\n"
    ).encode()


@dataclass
class Bed:
    services: Services
    dovecot: Dovecot
    user: str
    password: str
    tenant_id: str

    async def append(self, folder: str, raw: bytes, when: datetime) -> None:
        await self.append_all([(folder, raw, when)])

    async def append_all(self, messages: list[tuple[str, bytes, datetime]]) -> None:
        """As another mail client filing mail: APPEND over one connection of its own."""
        client = await self.dovecot.client(self.user, self.password, command_timeout=30)
        try:
            for folder, raw, when in messages:
                await client.append(folder, raw, flags=["\\Seen"], internaldate=when)
        finally:
            await client.logout()

    async def fill(self) -> None:
        await self.append_all(
            [("INBOX", raw, when) for raw, when in corpus("received")]
            + [("Sent", raw, when) for raw, when in corpus("sent")]
        )

    async def mailbox(
        self,
        email: str = "me@example.com",
        *,
        owner: str | None = None,
        contacts: ContactSettings | None = None,
    ) -> Mailbox:
        return await self.services.mailboxes.create(
            self.tenant_id,
            NewMailbox(
                email=email,
                auth_method=AuthMethod.PASSWORD,
                imap=ServerSettings("127.0.0.1", self.dovecot.imap_port, Security.NONE, self.user),
                password=Secret(self.password),
                settings=ProcessingSettings(contacts=contacts),
                owner=owner,
            ),
        )

    async def switch_on(self, mailbox: Mailbox, **fields: Any) -> Mailbox:
        patch = ContactsPatch.model_validate({"aliases": list(ALIASES), **fields})
        update = MailboxUpdate(settings=SettingsPatch(contacts=patch))
        return await self.services.mailboxes.update(self.tenant_id, mailbox.id, update)

    def sync(self, **options: Any) -> ContactSync:
        options.setdefault("clock", lambda: NOW)
        return ContactSync(self.services.events, self.services.mailboxes, self.services.connector, **options)

    async def book(self, owner: str = "") -> dict[str, StoredContact]:
        async with self.services.database.connect() as conn:
            ids = (
                await conn.execute(
                    select(contacts.c.id).where(
                        contacts.c.tenant_id == self.tenant_id, contacts.c.owner == owner
                    )
                )
            ).scalars()
            return {c.keys[0]: c for c in await load(conn, list(ids))}

    async def state(self, mailbox: Mailbox) -> schedule.SyncState:
        async with self.services.database.connect() as conn:
            found = await schedule.get(conn, mailbox.id)
        assert found is not None
        return found


@pytest.fixture
async def bed(services: Services, dovecot: Dovecot) -> AsyncIterator[Bed]:
    user, password = dovecot.dyn_user(f"c{uuid.uuid4().hex[:10]}")
    tenant, _key = await services.tenants.create_tenant(f"contacts-{uuid.uuid4().hex[:6]}")
    yield Bed(services, dovecot, user, password, tenant.id)


def figures(book: dict[str, StoredContact]) -> dict[str, tuple[int, int, int]]:
    return {key: (c.sent_to, c.received_from, c.copied) for key, c in book.items()}


async def test_the_backfill_harvests_exactly_the_expected_contacts(bed: Bed) -> None:
    await bed.fill()
    mailbox = await bed.mailbox()
    assert mailbox.settings.contacts is None
    with pytest.raises(ContactsNotEnabledError):
        await bed.sync().run(mailbox.id)

    mailbox = await bed.switch_on(mailbox)
    state = await bed.state(mailbox)
    assert state.state == schedule.PENDING and state.folders == {}

    report = await bed.sync().run(mailbox.id)

    book = await bed.book()
    assert {key: c.name for key, c in book.items()} == EXPECTED_NAMES
    assert figures(book) == EXPECTED_FIGURES
    alice = book["alice@example.org"]
    assert set(alice.addresses) == {"Alice@Example.ORG", "alice@example.org", "ALICE@example.org"}
    assert (alice.first_seen, alice.last_seen, alice.two_way) == (
        datetime(2026, 11, 2, 9, tzinfo=UTC),
        datetime(2026, 11, 12, 9, tzinfo=UTC),
        True,
    )
    async with bed.services.database.connect() as conn:
        rows = await conn.execute(
            select(contact_exclusions.c.key, contact_exclusions.c.reason).where(
                contact_exclusions.c.mailbox_id == mailbox.id
            )
        )
        excluded: dict[str, set[str]] = {}
        for row in rows:
            excluded.setdefault(row.key, set()).add(row.reason)
    expected = {k: v for k, v in EXPECTED_EXCLUDED.items() if k != "j.o.h.n.smith+lists@gmail.com"}
    expected["johnsmith@gmail.com"] = {"own_alias"}
    expected["dave@away.example"] = {"auto_submitted"}  # his auto-reply; he is a contact by sent mail
    assert excluded == expected
    # INBOX and Sent only (Junk, Trash and Drafts are never read); every message counted once
    assert report.folders == {"INBOX": 13, "Sent": 2}
    assert report.messages == 15
    state = await bed.state(mailbox)
    assert state.state == schedule.IDLE and state.messages == report.messages and state.last_error is None
    assert state.next_at == NOW + timedelta(hours=24)
    assert set(state.folders) == {"INBOX", "Sent"}
    assert state.positions()["INBOX"] == datetime(2026, 11, 10, 10, tzinfo=UTC) - timedelta(days=1)


async def test_new_mail_arrives_from_the_event_stream_and_a_re_sync_counts_it_once(bed: Bed) -> None:
    await bed.fill()
    mailbox = await bed.switch_on(await bed.mailbox())
    await bed.sync().run(mailbox.id)
    orchestrator = Orchestrator(
        bed.services,
        reconcile_interval=0.2,
        options=WatcherOptions(backoff_base=0.2, backoff_cap=1.0, auth_retry_seconds=600),
    )
    feed = ContactFeed(bed.services.events, bed.services.mailboxes, poll_seconds=0.2)
    await orchestrator.start()
    feed.start()
    try:
        await wait_for(lambda: _connected(bed, mailbox))
        await bed.append(
            "INBOX", message("Zed New <zed@new.example>", "me@example.com", "hi", message_id="z1@new"), NOW
        )
        # no Message-ID: counted by the digest of its header fields, the same either way
        await bed.append(
            "INBOX", message('"Yan" <yan@new.example>', "me@example.com, bob@example.net", "yo"), NOW
        )
        book = await wait_for(lambda: _having(bed, "zed@new.example", "yan@new.example"))
        # one reader at a time: another process's feed finds the lease taken
        taken = await leases.Leases(bed.services.database).acquire(
            LEASE, "other:1:x", ttl=timedelta(seconds=30)
        )
        assert taken is None
    finally:
        await feed.stop()
        await orchestrator.stop()
    assert book["zed@new.example"].name == "Zed New" and book["zed@new.example"].received_from == 1
    assert book["yan@new.example"].received_from == 1
    assert book["bob@example.net"].copied == 2 + 1  # a recipient of received mail is copied
    before = figures(book)

    report = await bed.sync(clock=lambda: NOW + timedelta(days=2)).run(mailbox.id)

    assert report.read >= 2 and report.messages == 0  # read again from the position, counted before
    assert figures(await bed.book()) == before
    async with bed.services.database.connect() as conn:
        counted = await conn.scalar(
            select(func.count())
            .select_from(contact_messages)
            .where(contact_messages.c.mailbox_id == mailbox.id)
        )
    assert counted == 15 + 2


async def _connected(bed: Bed, mailbox: Mailbox) -> bool:
    found = await bed.services.mailboxes.get(bed.tenant_id, mailbox.id)
    return found.health.status.value == "connected"


async def _having(bed: Bed, *keys: str) -> dict[str, StoredContact] | None:
    book = await bed.book()
    return book if all(k in book for k in keys) else None


async def test_a_re_sync_finds_mail_filed_since_and_a_deleted_contact_stays_deleted(bed: Bed) -> None:
    await bed.fill()
    mailbox = await bed.switch_on(await bed.mailbox())
    await bed.sync().run(mailbox.id)
    bob = (await bed.book())["bob@example.net"]
    async with bed.services.database.transaction() as conn:  # as DELETE /v1/contacts/{id} does
        await conn.execute(
            contact_tombstones.insert().values(
                tenant_id=bed.tenant_id, owner="", key="bob@example.net", contact_id=bob.id, deleted_at=NOW
            )
        )
        await conn.execute(contacts.delete().where(contacts.c.id == bob.id))
    later = NOW + timedelta(days=1)
    await bed.append(
        "Sent", message("Me <me@example.com>", "Bob <bob@example.net>, ivy@example.org", "x"), later
    )

    report = await bed.sync(clock=lambda: later).run(mailbox.id)

    book = await bed.book()
    assert "bob@example.net" not in book
    assert book["ivy@example.org"].sent_to == 1  # filed after the backfill: found by the re-sync
    assert report.messages == 1
    full = await bed.sync(clock=lambda: later).run(mailbox.id, full=True)
    assert full.read == 16 and full.messages == 0
    assert "bob@example.net" not in await bed.book()
    assert figures(await bed.book()) == figures(book)
    async with bed.services.database.connect() as conn:
        reasons = (
            await conn.execute(
                select(contact_exclusions.c.reason, contact_exclusions.c.messages).where(
                    contact_exclusions.c.mailbox_id == mailbox.id,
                    contact_exclusions.c.key == "bob@example.net",
                )
            )
        ).all()
    assert [tuple(r) for r in reasons] == [("deleted", 1)]  # the new mail to Bob, left out and said why


class Crash(BaseException):
    """The process dies (nothing is caught on the way out)."""


async def test_a_run_stopped_half_way_resumes_without_counting_twice(bed: Bed) -> None:
    await bed.fill()
    mailbox = await bed.switch_on(await bed.mailbox())
    chunks = 0

    async def die_after_two(report: SyncReport) -> None:
        nonlocal chunks
        chunks += 1
        if chunks == 2:
            raise Crash

    with pytest.raises(Crash):
        await bed.sync(chunk=4, on_chunk=die_after_two).run(mailbox.id)
    state = await bed.state(mailbox)
    assert state.state == schedule.RUNNING and state.messages == 8 and "INBOX" in state.folders
    assert 0 < sum(c.received_from + c.sent_to + c.copied for c in (await bed.book()).values())

    # another process takes the run over once the dead one's claim ran out
    later = NOW + timedelta(minutes=10)
    worker = ContactWorker(bed.sync(clock=lambda: later, chunk=4))
    assert await worker.run_once() == [mailbox.id]
    await worker.idle()

    book = await bed.book()
    assert {key: c.name for key, c in book.items()} == EXPECTED_NAMES
    assert figures(book) == EXPECTED_FIGURES
    state = await bed.state(mailbox)
    assert state.state == schedule.IDLE and state.next_at == later + timedelta(hours=24)


async def test_sent_only_then_widened_and_a_period_that_leaves_old_mail_out(bed: Bed) -> None:
    await bed.fill()
    mailbox = await bed.switch_on(await bed.mailbox(), policy="sent_only")
    await bed.sync().run(mailbox.id)
    assert figures(await bed.book()) == {
        "alice@example.org": (2, 0, 0),
        "dave@away.example": (1, 0, 0),
        "frank@example.com": (1, 0, 0),
        "joerg@xn--exmple-cua.de": (1, 0, 0),
    }
    # widened: read from the period's start again; received mail was not remembered, so it counts now
    mailbox = await bed.switch_on(mailbox, policy="sent_and_received")
    assert (await bed.state(mailbox)).state == schedule.PENDING
    await bed.sync().run(mailbox.id)
    assert figures(await bed.book()) == EXPECTED_FIGURES

    other = await bed.mailbox("me2@example.com", owner="short")  # the same server account, its own period
    other = await bed.switch_on(other, backfill_days=24, aliases=[*ALIASES, "me@example.com"])
    await bed.sync().run(other.id)  # since 7 November, 12:00: mail of 2 to 7 November is left out
    assert figures(await bed.book("short")) == {
        "alice@example.org": (2, 0, 0),
        "dave@away.example": (1, 0, 0),
        "frank@example.com": (1, 0, 0),
        "joerg@xn--exmple-cua.de": (1, 0, 0),
        "eringray@gmail.com": (0, 2, 0),
        "grace@example.net": (0, 1, 0),
        "grace-team@example.net": (0, 1, 0),
    }
    assert (await bed.state(other)).since == NOW - timedelta(days=24)
    other = await bed.switch_on(
        other, backfill_days=365, aliases=[*ALIASES, "me@example.com"]
    )  # from its start
    await bed.sync().run(other.id)
    assert figures(await bed.book("short")) == EXPECTED_FIGURES


async def test_mailboxes_of_one_owner_share_a_book_and_another_owner_sees_none_of_it(
    bed: Bed, dovecot: Dovecot
) -> None:
    await bed.fill()
    first = await bed.switch_on(await bed.mailbox(owner="ann"))
    second_user, second_password = dovecot.dyn_user(f"c{uuid.uuid4().hex[:10]}")
    second = Bed(bed.services, dovecot, second_user, second_password, bed.tenant_id)
    await second.append(
        "INBOX", message("Alice <alice@example.org>", "ann@work.example", "x", message_id="w1@x"), NOW
    )
    await second.append(
        "INBOX", message("Kim <kim@example.org>", "ann@work.example", "y", message_id="w2@x"), NOW
    )
    second_mailbox = await second.switch_on(await second.mailbox("ann@work.example", owner="ann"))
    third_user, third_password = dovecot.dyn_user(f"c{uuid.uuid4().hex[:10]}")
    third = Bed(bed.services, dovecot, third_user, third_password, bed.tenant_id)
    await third.append(
        "INBOX", message("Alice <alice@example.org>", "ben@example.com", "z", message_id="b1@x"), NOW
    )
    third_mailbox = await third.switch_on(await third.mailbox("ben@example.com", owner="ben"))

    for sync_mailbox in (first, second_mailbox, third_mailbox):
        await bed.sync().run(sync_mailbox.id)

    ann = await bed.book("ann")
    assert set(ann) == set(EXPECTED_NAMES) | {"kim@example.org"}
    assert ann["alice@example.org"].received_from == 3  # two from the first mailbox, one from the second
    ben = await bed.book("ben")
    assert set(ben) == {"alice@example.org"} and ben["alice@example.org"].received_from == 1
    assert ben["alice@example.org"].id != ann["alice@example.org"].id
    assert await bed.book("") == {}


async def test_the_tenants_block_list_and_the_sending_aliases_count_and_a_disabled_mailbox_is_not_read(
    bed: Bed,
) -> None:
    await bed.fill()
    async with bed.services.database.transaction() as conn:  # as PUT /v1/contacts/blocklist does
        await conn.execute(
            contact_blocklist.insert(),
            [
                {"tenant_id": bed.tenant_id, "kind": kind, "value": value, "created_at": NOW}
                for kind, value in (("address", "frank@example.com"), ("domain", "example.net"))
            ],
        )
    mailbox = await bed.mailbox()
    sending = SendingPatch(aliases=["me@alias.example"])  # an alias of sending counts as one of its own
    await bed.services.mailboxes.update(
        bed.tenant_id, mailbox.id, MailboxUpdate(settings=SettingsPatch(sending=sending))
    )
    mailbox = await bed.switch_on(mailbox, aliases=["john.smith@gmail.com"])
    await bed.services.mailboxes.set_enabled(bed.tenant_id, mailbox.id, False)
    idle = await bed.sync().run(mailbox.id)
    assert idle.read == 0 and (await bed.state(mailbox)).next_at == NOW + timedelta(hours=24)
    await bed.services.mailboxes.set_enabled(bed.tenant_id, mailbox.id, True)

    await bed.sync().run(mailbox.id, full=True)

    expected = {k: v for k, v in EXPECTED_FIGURES.items() if k not in ("frank@example.com",)}
    expected = {k: v for k, v in expected.items() if not k.endswith("@example.net")}
    assert figures(await bed.book()) == expected
    async with bed.services.database.connect() as conn:
        columns = (contact_exclusions.c.key, contact_exclusions.c.reason, contact_exclusions.c.messages)
        rows = await conn.execute(select(*columns).where(contact_exclusions.c.mailbox_id == mailbox.id))
        reasons = {(row.key, row.reason): row.messages for row in rows}
    assert reasons[("frank@example.com", "blocked_address")] == 1
    assert reasons[("bob@example.net", "blocked_domain")] == 2
    assert reasons[("postmaster@example.net", "blocked_domain")] == 1
    assert reasons[("me@alias.example", "own_alias")] >= 1
