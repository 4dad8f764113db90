"""Dovecot to the host application's webhook, the whole way: a message delivered by LMTP to an
idling mailbox reaches a real HTTP receiver within 2 s, signed per Standard Webhooks, on SQLite
and PostgreSQL; after-processing (mark_read) happens once the receiver has answered 2xx."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from standardwebhooks.webhooks import Webhook

from mailport.bootstrap import Services
from mailport.delivery.schemas import WebhookCreate
from mailport.sync import Orchestrator
from tests.fixtures.webhook_receiver import MakeDispatcher, WebhookReceiver
from tests.integration.sync.conftest import Bed, make_message, wait_for
from tests.mailstack.dovecot import Dovecot


@pytest.fixture
async def hooked(
    delivery_services: Services, dovecot: Dovecot, password_user: tuple[str, str]
) -> AsyncIterator[Bed]:
    tenant, _key = await delivery_services.tenants.create_tenant("end-to-end")
    yield Bed(delivery_services, dovecot, password_user[0], password_user[1], tenant.id)


@pytest.mark.serial
async def test_a_delivered_message_reaches_the_webhook_signed_within_two_seconds(
    hooked: Bed, webhook_receiver: WebhookReceiver, make_dispatcher: MakeDispatcher
) -> None:
    bed = hooked
    _endpoint, secret = await bed.services.webhooks.create(
        bed.tenant_id, WebhookCreate(url=webhook_receiver.url)
    )
    assert secret is not None
    mailbox = await bed.add_mailbox(after_processing="mark_read")
    await make_dispatcher()
    orchestrator = bed.orchestrator()
    await orchestrator.start()
    try:

        async def idling() -> bool:
            watcher = orchestrator.watchers.get(mailbox.id)
            return watcher is not None and watcher.status.state == "connected" and watcher.status.push

        await wait_for(idling, timeout=10)
        connected = await webhook_receiver.wait_for(1, timeout=5)  # mailbox.connected
        assert connected[0].json()["type"] == "mailbox.connected"
        started = time.monotonic()
        await asyncio.to_thread(bed.dovecot.deliver, bed.user, make_message("to the app", "grüße"))
        received = (await webhook_receiver.wait_for(2, timeout=5))[1]
        assert received.at - started < 2.0, f"{received.at - started:.3f} s"
        event = Webhook(secret.reveal()).verify(received.body, received.headers)
        assert event["type"] == "message.received" and event["mailbox_id"] == mailbox.id
        assert event["data"]["subject"] == "to the app" and event["data"]["text"].strip() == "grüße"
        assert received.headers["webhook-id"] == event["id"]

        async def marked_read() -> bool:
            result = await asyncio.to_thread(
                bed.dovecot.doveadm, "fetch", "-u", bed.user, "flags", "mailbox", "INBOX", "all"
            )
            return "\\Seen" in result.stdout.decode()

        await wait_for(marked_read, timeout=10, interval=0.1)
    finally:
        await orchestrator.stop()


@pytest.mark.serial
async def test_orchestrator_stop_is_prompt_with_idle_watchers(hooked: Bed) -> None:
    """Shutdown of idling watchers takes well under a second (nothing waits out a timeout)."""
    bed = hooked
    mailbox = await bed.add_mailbox()
    orchestrator: Orchestrator = bed.orchestrator()
    await orchestrator.start()

    async def idling() -> bool:
        watcher = orchestrator.watchers.get(mailbox.id)
        return watcher is not None and watcher.status.state == "connected"

    await wait_for(idling, timeout=10)
    started = time.monotonic()
    await orchestrator.stop()
    assert time.monotonic() - started < 3.0  # not the IDLE renewal (minutes) nor a command timeout
