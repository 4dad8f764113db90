"""Deleting a ``gmail_api`` mailbox through the API stops its ``users.watch`` (Gmail would
otherwise publish its changes for 7 days), unless another mailbox of the same account still
needs the watch; a Gmail failure never blocks the deletion; a watch a watcher makes while the
deletion runs is stopped by that watcher (the interleaving forced with a held save, no sleep).
Deleting a tenant stops the watches of all its mailboxes the same way."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace

import httpx
import pytest

from mailport.api import create_app
from mailport.clock import utc_now
from mailport.connectors.gmail.push import WatchKeeper
from mailport.errors import NotFoundError
from mailport.mailboxes.models import Mailbox
from mailport.push.shared import SharedChannels
from mailport.push.subscriptions import MAILBOX_SCOPE
from tests.fakes.gmail import Account
from tests.fixtures.api import ADMIN_KEY
from tests.fixtures.gmail import connect_gmail_mailbox, gmail_email
from tests.fixtures.subscriptions import HeldSave
from tests.integration.gmail.sync_bed import GmailBed, gmail_bed, gmail_services

__all__ = ["gmail_bed", "gmail_services"]  # fixtures


async def _watched_tenant(bed: GmailBed) -> tuple[str, str]:
    """A tenant whose Gmail push channel names a topic (so connecting watches); its id and key."""
    tenant, key = await bed.services.tenants.create_tenant(f"delete-{uuid.uuid4().hex[:6]}")
    topic = bed.fake.pubsub.create_topic(f"projects/mailport-test/topics/t{uuid.uuid4().hex[:12]}")
    await SharedChannels(bed.services.push.channels, public_url="https://mail.example.com").create(
        tenant.id, "gmail_api", topic=topic
    )
    return tenant.id, key.reveal()


async def _watched_mailbox(bed: GmailBed, tenant_id: str, email: str) -> tuple[Mailbox, Account]:
    mailbox, account = await connect_gmail_mailbox(
        bed.services, bed.idp, bed.fake, email=email, tenant_id=tenant_id
    )
    connector = bed.services.connector(mailbox)
    await connector.connect()  # users.watch, recorded
    await connector.disconnect()
    assert account.watch is not None
    assert await bed.services.subscriptions.get(mailbox.id, MAILBOX_SCOPE) is not None
    return mailbox, account


async def _delete(bed: GmailBed, key: str, mailbox_id: str) -> httpx.Response:
    app = create_app(services=bed.services)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://mailport.test", headers={"Authorization": f"Bearer {key}"}
    ) as client:
        return await client.delete(f"/v1/mailboxes/{mailbox_id}")


async def _gone(bed: GmailBed, tenant_id: str, mailbox_id: str) -> bool:
    try:
        await bed.services.mailboxes.get(tenant_id, mailbox_id)
    except NotFoundError:
        return await bed.services.subscriptions.for_mailbox(mailbox_id) == []
    return False


async def test_deleting_the_mailbox_stops_its_watch(gmail_bed: GmailBed) -> None:
    tenant_id, key = await _watched_tenant(gmail_bed)
    mailbox, account = await _watched_mailbox(gmail_bed, tenant_id, gmail_email())

    response = await _delete(gmail_bed, key, mailbox.id)

    assert response.status_code == 204, response.text
    assert account.watch is None
    assert await _gone(gmail_bed, tenant_id, mailbox.id)
    stops = [r for r in gmail_bed.fake.requests if r.path.endswith("/stop") and r.status == 204]
    assert stops


async def test_a_gmail_failure_does_not_block_the_deletion(gmail_bed: GmailBed) -> None:
    tenant_id, key = await _watched_tenant(gmail_bed)
    email = gmail_email()
    mailbox, account = await _watched_mailbox(gmail_bed, tenant_id, email)
    gmail_bed.fake.fail(403, 1, email=email, path="/stop", reason="forbidden")

    response = await _delete(gmail_bed, key, mailbox.id)

    assert response.status_code == 204, response.text
    assert await _gone(gmail_bed, tenant_id, mailbox.id)
    assert account.watch is not None  # refused: it runs out by itself (7 days)


async def test_the_watch_stays_while_another_mailbox_of_the_account_needs_it(gmail_bed: GmailBed) -> None:
    email = gmail_email()
    first_tenant, first_key = await _watched_tenant(gmail_bed)
    second_tenant, second_key = await _watched_tenant(gmail_bed)
    first, account = await _watched_mailbox(gmail_bed, first_tenant, email)
    second, _ = await _watched_mailbox(gmail_bed, second_tenant, email)

    assert (await _delete(gmail_bed, first_key, first.id)).status_code == 204
    assert account.watch is not None  # the other tenant's mailbox still watches the account
    assert await _gone(gmail_bed, first_tenant, first.id)

    assert (await _delete(gmail_bed, second_key, second.id)).status_code == 204
    assert account.watch is None


async def test_another_tenant_cannot_delete_it_nor_stop_its_watch(gmail_bed: GmailBed) -> None:
    tenant_id, _ = await _watched_tenant(gmail_bed)
    _, other_key = await _watched_tenant(gmail_bed)
    mailbox, account = await _watched_mailbox(gmail_bed, tenant_id, gmail_email())

    response = await _delete(gmail_bed, other_key, mailbox.id)

    assert response.status_code == 404
    assert account.watch is not None
    assert await gmail_bed.services.subscriptions.get(mailbox.id, MAILBOX_SCOPE) is not None


async def test_deleting_the_tenant_stops_its_mailboxes_watches(gmail_bed: GmailBed) -> None:
    tenant_id, _ = await _watched_tenant(gmail_bed)
    refusing = gmail_email()
    watched = [
        await _watched_mailbox(gmail_bed, tenant_id, e) for e in (gmail_email(), gmail_email(), refusing)
    ]
    gmail_bed.fake.fail(403, 1, email=refusing, path="/stop", reason="forbidden")

    app = create_app(services=gmail_bed.services)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://mailport.test",
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
    ) as admin:
        response = await admin.delete(f"/v1/tenants/{tenant_id}")

    assert response.status_code == 204, response.text
    assert [account.watch is None for _, account in watched] == [True, True, False]  # refused: runs out
    for mailbox, _ in watched:
        assert await _gone(gmail_bed, tenant_id, mailbox.id)
    with pytest.raises(NotFoundError):
        await gmail_bed.services.tenants.repository.get(tenant_id)


async def test_a_first_watch_made_while_the_deletion_runs_is_stopped_by_its_maker(
    gmail_bed: GmailBed,
) -> None:
    tenant, key = await gmail_bed.services.tenants.create_tenant(f"race-{uuid.uuid4().hex[:6]}")
    mailbox, account = await connect_gmail_mailbox(
        gmail_bed.services, gmail_bed.idp, gmail_bed.fake, email=gmail_email(), tenant_id=tenant.id
    )
    connector = gmail_bed.services.connector(mailbox)
    await connector.connect()  # no topic yet: nothing watched, nothing recorded
    topic = gmail_bed.fake.pubsub.create_topic(f"projects/mailport-test/topics/t{uuid.uuid4().hex[:12]}")
    await SharedChannels(gmail_bed.services.push.channels, public_url="https://mail.example.com").create(
        tenant.id, "gmail_api", topic=topic
    )
    held = HeldSave(gmail_bed.services.subscriptions)
    assert connector.client is not None
    keeper = WatchKeeper(
        connector.client,
        mailbox_id=mailbox.id,
        tenant_id=tenant.id,
        push=replace(gmail_bed.services.push_context, subscriptions=held),
        clock=utc_now,
    )
    try:
        racing = asyncio.create_task(keeper.ensure(force=True))
        await asyncio.wait_for(held.reached.wait(), 20)  # Gmail watches; nothing recorded yet
        assert account.watch is not None
        outcome: list[bool] = []

        async def tick_goes_on(deleted: Mailbox) -> None:  # after the withdrawal, before the row goes
            assert account.watch is not None  # the withdrawal found no watch recorded to stop
            held.release.set()
            outcome.append(await racing)

        remove = gmail_bed.services.mailboxes.before_delete(tick_goes_on)
        try:
            assert (await _delete(gmail_bed, key.reveal(), mailbox.id)).status_code == 204
        finally:
            remove()
    finally:
        await connector.disconnect()

    assert outcome == [False] and keeper.status.error == "the mailbox is being deleted"
    assert account.watch is None  # stopped by the watcher that made it
    assert await _gone(gmail_bed, tenant.id, mailbox.id)
