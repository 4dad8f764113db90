"""The Gmail ingestion bed: the real service graph on the fake's providers file, connected
``gmail_api`` mailboxes (a fresh fake account each), an orchestrator with short intervals, and
the exactly-once check by idempotency key."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from mailport.bootstrap import Services, build
from mailport.config import Settings
from mailport.events import Event, message_key, row_to_event
from mailport.mailboxes.models import Mailbox, ProcessingSettings, WatchedFolder
from mailport.store.tables import events
from mailport.sync import Orchestrator, WatcherOptions
from tests.fakes.gmail import Account, GmailFake, make_message
from tests.fixtures.gmail import configure_gmail, connect_gmail_mailbox
from tests.integration.sync.conftest import wait_for
from tests.mailstack.idp import MockIdP


@dataclass
class GmailBed:
    services: Services
    idp: MockIdP
    fake: GmailFake

    async def mailbox(
        self, *, check_interval: int = 3600, folders: tuple[str, ...] = (), tenant_id: str | None = None
    ) -> tuple[Mailbox, Account]:
        settings = ProcessingSettings(
            check_interval=check_interval, folders=tuple(WatchedFolder(f) for f in folders)
        )
        return await connect_gmail_mailbox(
            self.services, self.idp, self.fake, tenant_id=tenant_id, provider_id="google", settings=settings
        )

    def orchestrator(self) -> Orchestrator:
        return Orchestrator(
            self.services,
            reconcile_interval=0.2,
            stagger_seconds=0.0,
            options=WatcherOptions(backoff_base=0.2, backoff_cap=1.0, auth_retry_seconds=600),
        )

    async def events(self, mailbox_id: str, type: str = "message.received") -> list[Event]:
        query = (
            select(events)
            .where(events.c.mailbox_id == mailbox_id, events.c.type == type)
            .order_by(events.c.seq)
        )
        async with self.services.database.connect() as conn:
            return [row_to_event(row) for row in await conn.execute(query)]

    async def keys(self, mailbox_id: str) -> Counter[str]:
        return Counter(e.idempotency_key for e in await self.events(mailbox_id))

    async def wait_delivered(
        self, mailbox: Mailbox, ids: list[str], *, scope: str = "INBOX", timeout: float = 20.0
    ) -> Counter[str]:
        """Wait until every message id has its event; then the keys (each must be there once)."""
        wanted = {message_key(mailbox.id, scope, item, scope) for item in ids}

        async def done() -> Counter[str] | None:
            keys = await self.keys(mailbox.id)
            return keys if wanted <= set(keys) else None

        keys: Counter[str] = await wait_for(done, timeout=timeout, interval=0.05)
        return keys


def add(account: Account, subject: str, labels: tuple[str, ...] = ("INBOX", "UNREAD")) -> str:
    return account.add_message(make_message(subject=subject), labels)


def exactly_once(keys: Counter[str], mailbox: Mailbox, ids: list[str], scope: str = "INBOX") -> None:
    expected = {message_key(mailbox.id, scope, item, scope) for item in ids}
    assert set(keys) == expected, (sorted(set(keys) - expected), sorted(expected - set(keys)))
    assert all(n == 1 for n in keys.values()), [k for k, n in keys.items() if n > 1]


@pytest.fixture
async def gmail_services(settings: Settings, gmail_providers_file: Path) -> AsyncIterator[Services]:
    built = await build(configure_gmail(settings, gmail_providers_file), migrate=True)
    try:
        yield built
    finally:
        await built.aclose()


@pytest.fixture
def gmail_bed(gmail_services: Services, idp: MockIdP, gmail_fake: GmailFake) -> GmailBed:
    return GmailBed(gmail_services, idp, gmail_fake)


@pytest.fixture
async def running(gmail_bed: GmailBed) -> AsyncIterator[Orchestrator]:
    orchestrator = gmail_bed.orchestrator()
    await orchestrator.start()
    try:
        yield orchestrator
    finally:
        await orchestrator.stop()
