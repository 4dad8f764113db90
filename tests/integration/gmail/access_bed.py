"""The Gmail mailbox-access bed: the real service graph on the fake's providers file and a
connected ``gmail_api`` mailbox (a fresh fake account per test), its connector as the command
pool lends it, and the fake account as "another client" that puts mail and reads labels back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from mailport.bootstrap import Services, build
from mailport.config import Settings
from mailport.connectors.base import Connector, MessageRef
from mailport.mailboxes.models import Mailbox
from tests.fakes.gmail import Account, GmailFake
from tests.fixtures.gmail import configure_gmail, connect_gmail_mailbox
from tests.mailstack.idp import MockIdP


@dataclass
class GmailAccessBed:
    services: Services
    fake: GmailFake
    mailbox: Mailbox
    account: Account
    connector: Connector

    def put(
        self,
        raw: bytes,
        labels: tuple[str, ...] = ("INBOX", "UNREAD"),
        *,
        at: datetime | None = None,
    ) -> str:
        """Mail arrives from outside (another client); its Gmail id."""
        return self.account.add_message(raw, labels, internal_date=at)

    def labels_of(self, ref: MessageRef) -> set[str] | None:
        """The message's label ids as Gmail holds them; None when it is gone for good."""
        stored = self.account.messages.get(ref.item)
        return None if stored is None else set(stored.labels)


@pytest.fixture
async def gmail_services(settings: Settings, gmail_providers_file: Path) -> AsyncIterator[Services]:
    built = await build(configure_gmail(settings, gmail_providers_file), migrate=True)
    try:
        yield built
    finally:
        await built.aclose()


@pytest.fixture
async def gbed(
    gmail_services: Services, idp: MockIdP, gmail_fake: GmailFake
) -> AsyncIterator[GmailAccessBed]:
    mailbox, account = await connect_gmail_mailbox(gmail_services, idp, gmail_fake, provider_id="google")
    connector = gmail_services.connector(mailbox)
    await connector.connect()
    try:
        yield GmailAccessBed(gmail_services, gmail_fake, mailbox, account, connector)
    finally:
        await connector.disconnect()
