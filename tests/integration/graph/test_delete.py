"""Deleting a ``graph`` mailbox through the API of a running ``serve`` deletes its Graph
subscriptions (one per watched folder) and its push channel; a Graph failure never blocks the
deletion (a subscription left behind stops at its expiry, its notifications are refused).
Deleting a tenant deletes the subscriptions of all its mailboxes the same way."""

from __future__ import annotations

import uuid

import httpx

from mailport.errors import NotFoundError
from mailport.mailboxes.models import Mailbox, ProcessingSettings, WatchedFolder
from tests.fakes.graph import Account, GraphFake
from tests.fixtures.api import ADMIN_KEY
from tests.fixtures.graph import connect_graph_mailbox
from tests.integration.graph.sync_bed import SyncBed, wait_for


async def _subscribed(bed: SyncBed, tenant_id: str | None = None) -> tuple[Mailbox, Account, str, list[str]]:
    """A mailbox watching INBOX and Archive (two live subscriptions); its tenant's key (a new
    tenant's unless given; empty then) and the subscription ids."""
    key = ""
    if tenant_id is None:
        tenant, secret = await bed.services.tenants.create_tenant(f"delete-{uuid.uuid4().hex[:6]}")
        tenant_id, key = tenant.id, secret.reveal()
    made = await connect_graph_mailbox(
        bed.services,
        bed.fake,
        bed.idp,
        tenant_id=tenant_id,
        settings=ProcessingSettings(
            check_interval=3600, folders=(WatchedFolder("INBOX"), WatchedFolder("Archive"))
        ),
    )
    ids = await bed.subscribed(made.mailbox.id, 2)
    return made.mailbox, made.account, key, ids


async def _delete(bed: SyncBed, key: str, mailbox_id: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=bed.url, headers={"Authorization": f"Bearer {key}"}) as client:
        return await client.delete(f"/v1/mailboxes/{mailbox_id}")


def _remaining(fake: GraphFake, account: Account) -> list[str]:
    return [s.id for s in fake.subscriptions.values() if s.account == account.email.lower()]


async def _gone(bed: SyncBed, mailbox: Mailbox) -> bool:
    try:
        await bed.services.mailboxes.get(mailbox.tenant_id, mailbox.id)
    except NotFoundError:
        rows = await bed.services.subscriptions.for_mailbox(mailbox.id)
        channels = await bed.services.push.channels.for_mailbox(mailbox.id, "graph")
        return rows == [] and channels == []
    return False


async def test_deleting_the_mailbox_deletes_its_subscriptions_and_channel(sync_bed: SyncBed) -> None:
    mailbox, account, key, ids = await _subscribed(sync_bed)
    channel_urls = {s.notification_url for s in sync_bed.fake.subscriptions.values() if s.id in ids}
    (channel,) = await sync_bed.services.push.channels.for_mailbox(mailbox.id, "graph")
    secret = sync_bed.services.push.channels.reveal(channel).reveal()

    response = await _delete(sync_bed, key, mailbox.id)

    assert response.status_code == 204, response.text
    assert _remaining(sync_bed.fake, account) == []
    deleted = {
        e.path.rsplit("/", 1)[1]
        for e in sync_bed.fake.requests
        if e.method == "DELETE" and e.path.startswith("/v1.0/subscriptions/") and e.status == 204
    }
    assert set(ids) <= deleted
    assert await _gone(sync_bed, mailbox)
    # the watchers stop; a late notification, even with the channel's secret, is refused
    await wait_for(lambda: _no_watchers(sync_bed, mailbox.id), timeout=10)
    (url,) = channel_urls
    async with httpx.AsyncClient() as client:
        late = await client.post(url, json={"value": [_notification(ids[0], secret)]})
    assert late.status_code == 401 and late.json()["error"] == "push_unauthenticated", late.text


def _notification(subscription_id: str, client_state: str) -> dict[str, object]:
    return {
        "subscriptionId": subscription_id,
        "clientState": client_state,
        "changeType": "created",
        "resource": "Users/x/Messages/y",
        "resourceData": {"id": "y", "@odata.type": "#Microsoft.Graph.Message"},
        "tenantId": "t",
    }


async def _no_watchers(bed: SyncBed, mailbox_id: str) -> bool:
    return not bed.connectors(mailbox_id)


async def test_a_graph_failure_does_not_block_the_deletion(sync_bed: SyncBed) -> None:
    mailbox, account, key, ids = await _subscribed(sync_bed)
    sync_bed.fake.faults.fail_next(403, 2, path_contains="/subscriptions/")

    response = await _delete(sync_bed, key, mailbox.id)

    assert response.status_code == 204, response.text
    assert await _gone(sync_bed, mailbox)
    assert sorted(_remaining(sync_bed.fake, account)) == sorted(ids)  # refused: they run out by themselves


async def test_deleting_the_tenant_deletes_its_mailboxes_subscriptions(sync_bed: SyncBed) -> None:
    first, first_account, _, _ = await _subscribed(sync_bed)
    second, second_account, _, _ = await _subscribed(sync_bed, first.tenant_id)

    async with httpx.AsyncClient(
        base_url=sync_bed.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}
    ) as admin:
        response = await admin.delete(f"/v1/tenants/{first.tenant_id}")

    assert response.status_code == 204, response.text
    assert _remaining(sync_bed.fake, first_account) == [] and _remaining(sync_bed.fake, second_account) == []
    assert await _gone(sync_bed, first) and await _gone(sync_bed, second)
    async with httpx.AsyncClient(
        base_url=sync_bed.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}
    ) as admin:
        assert (await admin.get(f"/v1/tenants/{first.tenant_id}")).status_code == 404
