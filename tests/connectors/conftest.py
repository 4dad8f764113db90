"""The connector contract: every connector runs the same test files (as every django-anymail
backend does) against its own server — IMAP against the real Dovecot, the in-memory fake as a
poller without ``move`` and as a pusher with every feature. A new connector adds a
:class:`Harness` here and passes them all."""

from __future__ import annotations

import asyncio
import email
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest

from mailport.bootstrap import Services
from mailport.config import Settings
from mailport.connectors import registry
from mailport.connectors.base import Batch, Connector, Cursor, Feature
from mailport.crypto import Secret
from mailport.mailboxes.models import (
    AuthMethod,
    Mailbox,
    NewMailbox,
    ProcessingSettings,
    Security,
    ServerSettings,
)
from tests.connectors.fake import ALL, FakeServer
from tests.integration.sync.conftest import make_message
from tests.mailstack.dovecot import Dovecot

SCOPE = "Work"


@dataclass
class Harness:
    """One connector, connected, over a remote mailbox the test can fill."""

    name: str
    connector: Connector
    mailbox: Mailbox
    deliver_raw: Callable[[bytes], Awaitable[None]]
    new_epoch: Callable[[], Awaitable[None]]

    async def deliver(self, *subjects: str) -> None:
        """Put mail in the scope; then open it again, as the watcher catches up after a change
        (an IMAP session learns of new mail from a command, not on its own)."""
        for subject in subjects:
            await self.deliver_raw(make_message(subject))
        if self.connector.is_connected:
            await self.connector.open(SCOPE)

    async def reconnect(self) -> None:
        await self.connector.disconnect()
        await self.connector.connect()

    async def fetch(self, cursor: Cursor, *, chunk: int = 200) -> list[Batch]:
        return [batch async for batch in self.connector.fetch_since(cursor, chunk=chunk)]

    async def subjects(self, cursor: Cursor) -> list[str]:
        return [subject(m.raw) for batch in await self.fetch(cursor) for m in batch.messages]


def subject(raw: bytes | None) -> str:
    return str(email.message_from_bytes(raw or b"")["Subject"])


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"allowed_hosts": ["127.0.0.1"]})


async def _mailbox(
    services: Services, connector: str, user: str, password: str, port: int, *, folder: str = SCOPE
) -> Mailbox:
    tenant, _key = await services.tenants.create_tenant("contract")
    return await services.mailboxes.create(
        tenant.id,
        NewMailbox(
            email=user,
            auth_method=AuthMethod.PASSWORD,
            imap=ServerSettings("127.0.0.1", port, Security.NONE),
            password=Secret(password),
            settings=ProcessingSettings(folder=folder),
            connector=connector,
        ),
    )


async def _imap(request: pytest.FixtureRequest, services: Services) -> Harness:
    dovecot: Dovecot = request.getfixturevalue("dovecot")
    user, password = request.getfixturevalue("password_user")

    def doveadm(*args: str) -> Awaitable[object]:
        return asyncio.to_thread(dovecot.doveadm, "mailbox", *args, "-u", user, SCOPE)

    await doveadm("create")
    mailbox = await _mailbox(services, "imap", user, password, dovecot.imap_port)

    async def deliver(raw: bytes) -> None:
        await asyncio.to_thread(dovecot.deliver, user, raw, SCOPE)

    async def new_epoch() -> None:  # a recreated folder has a new UIDVALIDITY
        await doveadm("delete")
        await doveadm("create")

    return Harness("imap", registry.create(mailbox, registry.ConnectorContext()), mailbox, deliver, new_epoch)


async def _fake(request: pytest.FixtureRequest, services: Services, features: frozenset[Feature]) -> Harness:
    server: FakeServer = request.getfixturevalue("fake_connector")
    mailbox = await _mailbox(services, "fake", "fake@example.test", "pw", 993)
    remote = server[mailbox.email]
    remote.features = features

    async def deliver(raw: bytes) -> None:
        remote.append(raw, scope=SCOPE)

    async def new_epoch() -> None:
        remote.change_epoch()

    return Harness(
        request.param, registry.create(mailbox, registry.ConnectorContext()), mailbox, deliver, new_epoch
    )


@pytest.fixture(params=["imap", "fake", "fake-push"])
async def harness(request: pytest.FixtureRequest, services: Services) -> AsyncIterator[Harness]:
    if request.param == "imap":
        made = await _imap(request, services)
    elif request.param == "fake":
        made = await _fake(request, services, ALL - {Feature.PUSH, Feature.MOVE})
    else:
        made = await _fake(request, services, ALL)
    await made.connector.connect()
    try:
        yield made
    finally:
        await made.connector.disconnect()


@pytest.fixture(params=["imap", "imap-dotted", "fake"])
async def bed(request: pytest.FixtureRequest) -> AsyncIterator[object]:
    """A connected connector for the mailbox-access contract (tests/connectors/mailbed.py)."""
    from tests.connectors.mailbed import make_bed

    async for made in make_bed(request.param, request):
        yield made
