"""The push bed: the fake push receiver registered, tenants and mailboxes on the real database,
an HTTP client for the live server, and an orchestrator (its own service graph) running the
fake connector."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from sqlalchemy import select

from mailport.bootstrap import Services
from mailport.clock import utc_now
from mailport.connectors.push import register_receiver, unregister_receiver
from mailport.crypto import Secret
from mailport.mailboxes.models import (
    AuthMethod,
    Mailbox,
    NewMailbox,
    ProcessingSettings,
    Security,
    ServerSettings,
)
from mailport.push import NewChannel
from mailport.store.tables import mailbox_wakeups
from mailport.sync import Orchestrator, WatcherOptions
from tests.connectors.push_fake import KEY, FakePushConnector, FakePushReceiver
from tests.fixtures.api import LiveServer, SecretWatch

OTHER_KEY = "push_fake_other"  # a second push connector: its channels must not serve KEY


@pytest.fixture
def receivers() -> Iterator[None]:
    register_receiver(KEY, FakePushReceiver())
    register_receiver(OTHER_KEY, FakePushReceiver())
    yield
    unregister_receiver(KEY)
    unregister_receiver(OTHER_KEY)


@pytest.fixture
async def http(
    live_server: LiveServer, receivers: None, secret_watch: SecretWatch
) -> AsyncIterator[httpx.AsyncClient]:
    """A client without any key (as the providers call), every answer watched for secrets."""
    async with httpx.AsyncClient(
        base_url=live_server.url, timeout=15, event_hooks={"response": [secret_watch.record]}
    ) as client:
        yield client


@dataclass
class PushBed:
    services: Services
    secret_watch: SecretWatch
    connectors: dict[str, FakePushConnector] = field(default_factory=dict)

    async def tenant(self) -> str:
        tenant, _key = await self.services.tenants.create_tenant(f"t-{uuid.uuid4().hex[:8]}")
        return tenant.id

    async def mailbox(self, tenant_id: str, email: str) -> Mailbox:
        new = NewMailbox(
            email=email,
            auth_method=AuthMethod.PASSWORD,
            imap=ServerSettings("imap.example.com", 993, Security.SSL),  # the fake never connects
            password=Secret("unused"),
            settings=ProcessingSettings(check_interval=3600),  # no tick gets in the way
        )
        return await self.services.mailboxes.repository.create(tenant_id, new, now=utc_now())

    async def channel(self, tenant_id: str, mailbox_id: str | None, *, connector: str = KEY) -> NewChannel:
        channel = await self.services.push.channels.create(
            tenant_id, connector, mailbox_id=mailbox_id, now=utc_now()
        )
        self.secret_watch.add(channel.secret.reveal())
        return channel

    def orchestrator(self) -> Orchestrator:
        def factory(mailbox: Mailbox) -> FakePushConnector:
            connector = self.connectors[mailbox.id] = FakePushConnector(mailbox)
            return connector

        return Orchestrator(
            self.services,
            connector_factory=factory,
            reconcile_interval=0.2,
            options=WatcherOptions(backoff_base=0.2, backoff_cap=1.0),
        )

    async def wakeups(self) -> dict[str, int]:
        """The recorded wake-ups: mailbox -> requests coalesced."""
        query = select(mailbox_wakeups.c.mailbox_id, mailbox_wakeups.c.requests)
        async with self.services.database.connect() as conn:
            return {row.mailbox_id: row.requests for row in await conn.execute(query)}


@pytest.fixture
def bed(services: Services, secret_watch: SecretWatch) -> PushBed:
    return PushBed(services, secret_watch)


def notification(*secrets: str | None, account: str | None = None) -> dict[str, object]:
    """A body in the fake receiver's (Graph's) shape, one item per secret."""
    items = []
    for secret in secrets:
        item: dict[str, object] = {"changeType": "created", "resource": "me/messages/AAk"}
        if secret is not None:
            item["clientState"] = secret
        if account is not None:
            item["account"] = account
        items.append(item)
    return {"value": items}
