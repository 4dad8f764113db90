"""Harvesting over the real Dovecot: the crafted corpus (tests/data/contacts) delivered into INBOX
and Sent of a fresh user gives exactly the expected contacts (the same set as
tests/unit/contacts/test_corpus.py, with the same identity); then new mail arrives through the
event stream and the scheduled re-sync, a deleted contact stays deleted after a full re-sync, a
run stopped half-way resumes without counting anything twice, ``sent_only`` and a short period
harvest less, and two mailboxes of one owner share a book that another owner's does not see.
On SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from mailport.bootstrap import Services
from mailport.config import Settings
from mailport.contacts import schedule
from mailport.contacts.feed import ContactFeed
from mailport.contacts.models import Book, ContactSettings, StoredContact
from mailport.contacts.store import load
from mailport.contacts.sync import ContactSync, SyncReport
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
from mailport.mailboxes.schemas import ContactsPatch, MailboxUpdate, SettingsPatch
from mailport.messages.headers import date, parse_block
from mailport.store.tables import contact_exclusions, contact_messages, contacts
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
        client = await self.dovecot.client(self.user, self.password, command_timeout=30)
        try:
            await client.append(folder, raw, flags=["\\Seen"], internaldate=when)
        finally:
            await client.logout()

    async def fill(self) -> None:
        for raw, when in corpus("received"):
            await self.append("INBOX", raw, when)
        for raw, when in corpus("sent"):
            await self.append("Sent", raw, when)

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
