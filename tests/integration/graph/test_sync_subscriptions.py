"""A folder's Graph subscription on the real store and the fake Graph, with an injected clock:
renewed (PATCH, never a second POST) once 90 % of its life has passed and never asked beyond
``subscription_minutes``, also by a new connector after a restart; recreated when the renewal
finds it gone; no public URL, no subscription."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from mailport.bootstrap import Services
from mailport.clock import utc_now
from mailport.connectors.graph.client import GraphClient
from mailport.connectors.graph.subscribe import FolderSubscription
from tests.integration.graph.sync_bed import SyncBed


class Clock:
    def __init__(self) -> None:
        self.now = utc_now()

    def __call__(self):  # type: ignore[no-untyped-def]
        return self.now


async def test_renewed_before_expiry_within_the_cap_and_after_a_restart(sync_bed: SyncBed, graph_client):  # type: ignore[no-untyped-def]
    services: Services = sync_bed.services
    mailbox, account = await sync_bed.mailbox()
    await sync_bed.subscribed(mailbox.id)  # the watcher's own; this test drives a second folder
    push = replace(services.push_context, subscription_minutes=60)
    clock = Clock()
    folder_id = account.folder_id("archive")
    async with graph_client(account.email) as client:
        client: GraphClient
        first = FolderSubscription(mailbox, push, clock=clock)
        status = await first.ensure(client, "Archive", folder_id)
        assert status.live and status.expires_at is not None
        assert status.expires_at <= clock.now + timedelta(minutes=60, seconds=1)
        row = await services.subscriptions.get(mailbox.id, "Archive")
        assert row is not None and row.remote_id in sync_bed.fake.subscriptions
        posts = _count(sync_bed, "POST", "/v1.0/subscriptions")
        clock.now += timedelta(minutes=50)  # 83 % of its life: not yet
        await first.ensure(client, "Archive", folder_id)
        assert _count(sync_bed, "PATCH", f"/v1.0/subscriptions/{row.remote_id}") == 0
        clock.now += timedelta(minutes=5)  # 92 %: renewed, by a connector started afresh
        again = FolderSubscription(mailbox, push, clock=clock)
        status = await again.ensure(client, "Archive", folder_id)
        assert _count(sync_bed, "PATCH", f"/v1.0/subscriptions/{row.remote_id}") == 1
        assert _count(sync_bed, "POST", "/v1.0/subscriptions") == posts  # renewed, not duplicated
        assert status.expires_at is not None and status.expires_at > clock.now + timedelta(minutes=59)
        assert status.expires_at <= clock.now + timedelta(minutes=60, seconds=1)
        assert again.due_in(clock.now) is not None and again.due_in(clock.now) <= 54 * 60  # type: ignore[operator]
        # Graph dropped it meanwhile: the renewal's 404 makes a new one
        sync_bed.fake.subscriptions.pop(str(row.remote_id))
        clock.now += timedelta(minutes=57)
        status = await again.ensure(client, "Archive", folder_id)
        new = await services.subscriptions.get(mailbox.id, "Archive")
        assert status.live and new is not None and new.remote_id != row.remote_id
        assert new.remote_id in sync_bed.fake.subscriptions


async def test_without_a_public_url_there_is_no_subscription(sync_bed: SyncBed, graph_client):  # type: ignore[no-untyped-def]
    mailbox, account = await sync_bed.mailbox()
    push = replace(sync_bed.services.push_context, public_url="")
    async with graph_client(account.email) as client:
        status = await FolderSubscription(mailbox, push, clock=utc_now).ensure(
            client, "Archive", account.folder_id("archive")
        )
    assert not status.live and "MAILPORT_PUBLIC_URL" in status.why
    assert await sync_bed.services.subscriptions.get(mailbox.id, "Archive") is None


def _count(bed: SyncBed, method: str, path: str) -> int:
    return len([r for r in bed.fake.requests if r.method == method and r.path == path and not r.batch_item])
