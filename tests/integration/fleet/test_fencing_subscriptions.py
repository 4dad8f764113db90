"""A watcher's provider subscription (Graph ``/subscriptions``) is recorded only under its
lease: a watcher paused between Graph's answer and the recording, whose lease another process
took meanwhile, records nothing and deletes at Graph the subscription it just made (the new
owner has its own). SQLite and PostgreSQL, the fake Graph behind the real client."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

import pytest

from mailport import leases
from mailport.clock import utc_now
from mailport.connectors.graph.subscribe import FolderSubscription
from mailport.errors import LeaseLostError
from tests.fixtures.subscriptions import HeldSave
from tests.integration.fleet.fencing_bed import OTHER, refused
from tests.integration.graph.sync_bed import SyncBed, configure, sync_bed  # noqa: F401 (fixtures)

ARCHIVE = "Archive"


async def test_a_subscription_made_after_the_take_over_is_not_recorded_and_is_deleted(
    sync_bed: SyncBed,  # noqa: F811
    graph_client,
) -> None:
    mailbox, account = await sync_bed.mailbox()
    await sync_bed.subscribed(mailbox.id, 1)  # the watcher holds the lease
    name = f"watcher:{mailbox.id}"
    async with sync_bed.services.database.connect() as conn:
        lease = (await leases.current(conn, [name]))[name]
    archive = account.folder_id(ARCHIVE)
    held = HeldSave(sync_bed.services.subscriptions)
    racer = FolderSubscription(
        mailbox, replace(sync_bed.services.push_context, subscriptions=held), clock=utc_now
    )
    racer.fence = leases.guard(lease)
    counted = refused("subscription")
    async with graph_client(account.email) as client:
        racing = asyncio.create_task(racer.ensure(client, ARCHIVE, archive))
        await asyncio.wait_for(held.reached.wait(), 20)  # Graph made it; it is not recorded yet
        [made] = [s.id for s in sync_bed.fake.subscriptions.values() if archive in s.resource]
        later = utc_now() + timedelta(hours=2)
        async with sync_bed.services.database.transaction() as conn:
            assert await leases.acquire(conn, name, OTHER, now=later, until=later + timedelta(hours=1))
        held.release.set()
        with pytest.raises(LeaseLostError):
            await racing
    assert made not in sync_bed.fake.subscriptions  # deleted by its maker
    assert [s.scope for s in await sync_bed.services.subscriptions.for_mailbox(mailbox.id)] == ["INBOX"]
    assert refused("subscription") == counted + 1
