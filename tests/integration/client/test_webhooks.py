"""``verify_webhook`` on deliveries the real service signed and sent to a local receiver."""

from __future__ import annotations

import asyncio
import uuid
from email.message import EmailMessage

import pytest

from mailport.client import AsyncClient, WebhookSignatureError, models, verify_webhook
from tests.fixtures.webhook_receiver import MakeReceiver
from tests.integration.client.conftest import LiveServe, imap_mailbox
from tests.mailstack.dovecot import Dovecot

pytestmark = pytest.mark.xdist_group("client-serve")


async def test_a_delivery_of_the_service_verifies_and_a_changed_one_does_not(
    live: LiveServe, dovecot: Dovecot, password_user, make_receiver: MakeReceiver
):
    receiver = make_receiver()
    email, password = password_user
    _, key = live.tenant()
    async with AsyncClient(live.url, key) as mp:
        hook = await mp.webhooks.create(models.WebhookCreate(url=receiver.url, events=["message.received"]))
        assert hook.secret and hook.secret.startswith("whsec_")
        mailbox = await mp.mailboxes.create(imap_mailbox(dovecot, email, password))
        subject = f"Signed {uuid.uuid4().hex[:8]}"
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = "bob@example.com", email, subject
        msg.set_content("hello")
        await asyncio.to_thread(dovecot.deliver, email, msg.as_bytes())
        delivered = (await receiver.wait_for(1, timeout=60))[0]

        event = verify_webhook(hook.secret, delivered.headers, delivered.body)
        assert event["type"] == "message.received"
        assert event["data"]["mailbox_id"] == mailbox.id
        assert event["id"] == delivered.headers["webhook-id"]
        # headers in any case, as frameworks hand them over
        upper = {name.upper(): value for name, value in delivered.headers.items()}
        assert verify_webhook(hook.secret, upper, delivered.body.decode())["id"] == event["id"]

        attempts = [d async for d in mp.webhooks.iter_deliveries(hook.id, limit=1)]
        assert event["id"] in {d.event_id for d in attempts}

        with pytest.raises(WebhookSignatureError) as changed:
            verify_webhook(hook.secret, delivered.headers, delivered.body.replace(b"message", b"massage"))
        assert changed.value.code == "webhook_signature_invalid"
        other = (await mp.webhooks.create(models.WebhookCreate(url=receiver.url + "/other"))).secret
        assert other
        with pytest.raises(WebhookSignatureError):
            verify_webhook(other, delivered.headers, delivered.body)
        unsigned = {k: v for k, v in delivered.headers.items() if k != "webhook-signature"}
        with pytest.raises(WebhookSignatureError):
            verify_webhook(hook.secret, unsigned, delivered.body)
