"""Mail read by the in-memory ``fake`` connector reaches a signed webhook, and the acceptance
runs the after-processing action through the connector: the delivery path knows no protocol."""

from __future__ import annotations

import httpx
import pytest

from mailport.bootstrap import Services
from mailport.connectors.base import MessageRef
from mailport.crypto import Secret
from mailport.mailboxes.models import AuthMethod, NewMailbox, ProcessingSettings, Security, ServerSettings
from mailport.sync import Orchestrator, WatcherOptions
from tests.connectors.fake import FakeServer
from tests.fixtures.api import TenantHandle, create_tenant
from tests.fixtures.webhook_receiver import MakeDispatcher, WebhookReceiver
from tests.integration.sync.conftest import make_message, wait_for


@pytest.fixture
async def tenant(delivery_services: Services) -> TenantHandle:
    return await create_tenant(delivery_services, "fake-delivery")


async def test_fake_mail_reaches_the_webhook_and_its_acceptance_marks_it_read(
    delivery_services: Services,
    tenant: TenantHandle,
    api: httpx.AsyncClient,
    fake_connector: FakeServer,
    webhook_receiver: WebhookReceiver,
    make_dispatcher: MakeDispatcher,
) -> None:
    made = await api.post("/v1/webhooks", json={"url": webhook_receiver.url, "events": ["message.received"]})
    assert made.status_code == 201, made.text
    await make_dispatcher()
    mailbox = await delivery_services.mailboxes.create(
        tenant.id,
        NewMailbox(
            email="fake@example.test",
            auth_method=AuthMethod.PASSWORD,
            imap=ServerSettings("127.0.0.1", 993, Security.SSL),  # unused by the fake connector
            password=Secret("pw"),
            settings=ProcessingSettings(after_processing="mark_read"),
            connector="fake",
        ),
    )
    remote = fake_connector[mailbox.email]
    orchestrator = Orchestrator(
        delivery_services, reconcile_interval=0.05, options=WatcherOptions(backoff_base=0.05, backoff_cap=0.2)
    )
    await orchestrator.start()
    try:
        remote.append(make_message("through the fake"))
        if mailbox.id in orchestrator.watchers:  # past its first catch-up, maybe: the fake has no
            orchestrator.watchers[mailbox.id].wake()  # push, and its next poll is 60 s away
        (received,) = await webhook_receiver.wait_for(1)
        data = received.json()["data"]
        assert (data["subject"], data["connector"], data["source"]) == (
            "through the fake",
            "fake",
            {"fake": {"n": 1}},
        )
        assert MessageRef.decode(data["ref"]) == MessageRef("INBOX", "1", "m1")

        async def read() -> set[str]:
            return remote.read

        assert await wait_for(read, timeout=10) == {"m1"}  # the 2xx accepted it: mark_read ran
    finally:
        await orchestrator.stop()
    shown = (await api.get(f"/v1/mailboxes/{mailbox.id}")).json()
    assert shown["connector"] == "fake"
