"""Gmail push, end to end against the fake's Pub/Sub: ``users.watch`` on the tenant's topic, the
fake pushing to the real ``/v1/push/gmail_api/<channel>`` route of a live server, duplicated and
delayed notifications (each message once), a dropped one (the fallback poll still delivers),
Pub/Sub pull mode (acknowledged after the wake-ups are recorded), and the watch's daily renewal
with a clock moved by hand."""

from __future__ import annotations

import json
import time
import uuid
from datetime import timedelta
from pathlib import Path

from mailport.clock import utc_now
from mailport.connectors.base import Feature
from mailport.connectors.gmail.connector import GmailConnector
from mailport.connectors.gmail.pull import build_puller
from mailport.mailboxes.models import Mailbox
from mailport.push.shared import SharedChannels
from mailport.push.subscriptions import MAILBOX_SCOPE
from mailport.sync import Orchestrator
from tests.fixtures.api import LiveServer
from tests.integration.gmail.sync_bed import GmailBed, add, exactly_once, gmail_bed, gmail_services, wait_for

__all__ = ["gmail_bed", "gmail_services"]  # fixtures


def topic_name() -> str:
    return f"projects/mailport-test/topics/t{uuid.uuid4().hex[:12]}"


async def push_tenant(bed: GmailBed, public_url: str) -> tuple[str, str, str]:
    """A tenant with its Gmail push channel; the fake's push subscription calls its endpoint."""
    tenant, _ = await bed.services.tenants.create_tenant(f"push-{uuid.uuid4().hex[:6]}")
    topic = bed.fake.pubsub.create_topic(topic_name())
    created = await SharedChannels(bed.services.push.channels, public_url=public_url).create(
        tenant.id, "gmail_api", topic=topic
    )
    name = f"projects/mailport-test/subscriptions/s{uuid.uuid4().hex[:12]}"
    bed.fake.pubsub.create_subscription(name, topic, push_endpoint=created.push_endpoint)
    return tenant.id, topic, name


async def started(bed: GmailBed) -> Orchestrator:
    orchestrator = bed.orchestrator()
    await orchestrator.start()
    return orchestrator


async def test_push_to_the_serve_route_delivers_each_message_once(
    gmail_bed: GmailBed, live_server: LiveServer
) -> None:
    tenant_id, topic, subscription = await push_tenant(gmail_bed, live_server.url)
    mailbox, account = await gmail_bed.mailbox(tenant_id=tenant_id)  # polls hourly, every 300 s with push
    orchestrator = await started(gmail_bed)
    try:
        await wait_for(lambda: gmail_bed.events(mailbox.id, "mailbox.connected"))
        connected = await gmail_bed.events(mailbox.id, "mailbox.connected")
        assert connected[0].payload["push"] is True
        assert account.watch is not None and account.watch.topic == topic
        record = await gmail_bed.services.subscriptions.get(mailbox.id, MAILBOX_SCOPE)
        assert record is not None and record.resource == topic and record.expires_at is not None
        assert timedelta(days=6) < record.expires_at - utc_now() <= timedelta(days=7)

        started_at = time.monotonic()
        ids = [add(account, "pushed")]
        await gmail_bed.wait_delivered(mailbox, ids, timeout=15)
        assert time.monotonic() - started_at < 15  # neither poll (300 s, 3600 s) came: the push did

        gmail_bed.fake.pubsub.disturb("duplicate")
        ids.append(add(account, "notified twice"))
        await gmail_bed.wait_delivered(mailbox, ids, timeout=15)
        gmail_bed.fake.pubsub.disturb("delay", delay=1.0)
        ids.append(add(account, "notified late"))
        keys = await gmail_bed.wait_delivered(mailbox, ids, timeout=15)
        exactly_once(keys, mailbox, ids)

        async def pushes() -> list[dict[str, object]]:
            # the fake records a push once mailport answered it, which may be after the watcher
            # (woken in-process by that very push) delivered the message
            deliveries = gmail_bed.fake.pubsub.deliveries
            found = [d for d in deliveries if d["subscription"] == subscription and d["status"] == 202]
            return found if len(found) >= 4 else []

        assert len(await wait_for(pushes, timeout=5)) >= 4  # three notifications, one of them twice
    finally:
        await orchestrator.stop()
    assert account.watch is not None  # stopping the watchers never stops the watch


async def test_a_dropped_notification_is_caught_up_by_the_fallback_poll(
    gmail_bed: GmailBed, live_server: LiveServer
) -> None:
    gmail_bed.services.settings.api_poll_seconds = 1.0  # the fallback poll while push is on
    tenant_id, _topic, _name = await push_tenant(gmail_bed, live_server.url)
    mailbox, account = await gmail_bed.mailbox(tenant_id=tenant_id)
    orchestrator = await started(gmail_bed)
    try:
        await wait_for(lambda: gmail_bed.events(mailbox.id, "mailbox.connected"))
        assert orchestrator.watchers[mailbox.id].connector.supports(Feature.PUSH)
        gmail_bed.fake.pubsub.disturb("drop", 3)
        ids = [add(account, f"never announced {i}") for i in range(3)]
        keys = await gmail_bed.wait_delivered(mailbox, ids, timeout=20)
        exactly_once(keys, mailbox, ids)
    finally:
        await orchestrator.stop()


async def test_pull_mode_wakes_every_tenants_mailbox_and_acknowledges(
    gmail_bed: GmailBed, tmp_path: Path
) -> None:
    fake = gmail_bed.fake
    topic = fake.pubsub.create_topic(topic_name())
    subscription = f"projects/mailport-test/subscriptions/pull{uuid.uuid4().hex[:10]}"
    fake.pubsub.create_subscription(subscription, topic)
    key_file = tmp_path / "pubsub-key.json"
    key_file.write_text(json.dumps(fake.pubsub.service_account()))
    settings = gmail_bed.services.settings
    settings.gmail_pubsub_topic = topic  # the operator's topic
    settings.gmail_pubsub_subscription = subscription
    settings.gmail_pubsub_credentials_file = key_file
    gmail_bed.services.__dict__.pop("push_context", None)  # built from the settings on first use
    mailbox, account = await gmail_bed.mailbox()
    puller = build_puller(gmail_bed.services)
    assert puller is not None
    puller.idle_seconds = 0.1
    orchestrator = await started(gmail_bed)
    puller.start()
    try:
        await wait_for(lambda: gmail_bed.events(mailbox.id, "mailbox.connected"))
        assert account.watch is not None and account.watch.topic == topic
        ids = [add(account, f"pulled {i}") for i in range(2)]
        keys = await gmail_bed.wait_delivered(mailbox, ids, timeout=15)
        exactly_once(keys, mailbox, ids)

        async def acknowledged() -> bool:
            return puller.pulled >= 2 and fake.pubsub.backlog(subscription) == 0

        await wait_for(acknowledged)
    finally:
        await puller.stop()
        await orchestrator.stop()


def _connector(bed: GmailBed, mailbox: Mailbox, now: list) -> GmailConnector:  # type: ignore[type-arg]
    token_source, force_refresh = bed.services._tokens(mailbox)
    return GmailConnector(
        mailbox,
        api=bed.services._mail_api(mailbox),
        token_source=token_source,
        force_refresh=force_refresh,
        guard=bed.services.guard,
        push=bed.services.push_context,
        clock=lambda: now[0],
    )


async def test_the_watch_is_renewed_daily_and_shared(gmail_bed: GmailBed) -> None:
    tenant, _ = await gmail_bed.services.tenants.create_tenant(f"renew-{uuid.uuid4().hex[:6]}")
    topic = gmail_bed.fake.pubsub.create_topic(topic_name())
    await SharedChannels(gmail_bed.services.push.channels, public_url="https://mail.example.com").create(
        tenant.id, "gmail_api", topic=topic
    )
    mailbox, account = await gmail_bed.mailbox(tenant_id=tenant.id)
    now = [utc_now()]
    inbox = _connector(gmail_bed, mailbox, now)
    await inbox.connect()
    try:
        assert inbox.keeper is not None and inbox.keeper.renewals == 1
        assert inbox.supports(Feature.PUSH) and account.watch is not None
        first = await gmail_bed.services.subscriptions.get(mailbox.id, MAILBOX_SCOPE)
        assert first is not None

        sent = _connector(gmail_bed, mailbox, now)  # another folder's watcher: shares the watch
        await sent.connect()
        assert sent.keeper is not None and sent.keeper.renewals == 0 and sent.supports(Feature.PUSH)
        await sent.disconnect()

        now[0] += timedelta(hours=2)
        await inbox.keepalive()
        assert inbox.keeper.renewals == 1  # not due yet

        now[0] += timedelta(hours=23)
        await inbox.keepalive()
        assert inbox.keeper.renewals == 2
        renewed = await gmail_bed.services.subscriptions.get(mailbox.id, MAILBOX_SCOPE)
        assert renewed is not None and renewed.state["watched_at"] != first.state["watched_at"]
        health = await inbox.health()
        assert health.push and health.details["watch_topic"] == topic
    finally:
        await inbox.disconnect()
    assert account.watch is not None  # a disconnect leaves it
    await inbox.connect()
    await inbox.unsubscribe()  # the mailbox is being deleted
    await inbox.disconnect()
    assert account.watch is None
    assert await gmail_bed.services.subscriptions.get(mailbox.id, MAILBOX_SCOPE) is None
