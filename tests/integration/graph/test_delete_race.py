"""Deleting a ``graph`` mailbox while a folder watcher ticks leaves no subscription at Graph.

The withdrawal marks the mailbox before it reads what to delete
(:mod:`mailport.push.subscriptions`); these tests force the two interleavings a tick can take
against it, without sleeping: a ``before_delete`` hook registered after the service graph's
withdrawal runs exactly between the withdrawal and the row's deletion, and a store whose next
save is held pauses a tick between Graph's answer and its recording. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace

from mailport.clock import utc_now
from mailport.connectors.graph.subscribe import FolderSubscription, SubscriptionStatus
from mailport.mailboxes.models import Mailbox
from tests.fakes.graph import Account, GraphFake
from tests.fixtures.subscriptions import HeldSave
from tests.integration.graph.sync_bed import SyncBed

ARCHIVE = "Archive"


def _remaining(fake: GraphFake, account: Account) -> list[str]:
    return [s.id for s in fake.subscriptions.values() if s.account == account.email.lower()]


def _created(fake: GraphFake, folder_id: str) -> list[str]:
    return [
        str(e.response["id"])
        for e in fake.requests
        if e.method == "POST"
        and e.path == "/v1.0/subscriptions"
        and e.status == 201
        and isinstance(e.response, dict)
        and folder_id in str(e.response.get("resource"))
    ]


def _deleted(fake: GraphFake) -> set[str]:
    return {
        e.path.rsplit("/", 1)[1]
        for e in fake.requests
        if e.method == "DELETE" and e.path.startswith("/v1.0/subscriptions/") and e.status == 204
    }


async def _delete_with(bed: SyncBed, mailbox: Mailbox, hook: Callable[[Mailbox], Awaitable[None]]) -> None:
    """Delete the mailbox with ``hook`` run after the service graph's withdrawal, before the
    row's deletion."""
    remove = bed.services.mailboxes.before_delete(hook)
    try:
        await bed.services.mailboxes.delete(mailbox.tenant_id, mailbox.id)
    finally:
        remove()


async def test_a_tick_between_the_withdrawal_and_the_deletion_asks_graph_nothing(
    sync_bed: SyncBed, graph_client
) -> None:
    mailbox, account = await sync_bed.mailbox()
    (inbox,) = await sync_bed.subscribed(mailbox.id, 1)
    archive = account.folder_id(ARCHIVE)
    racer = FolderSubscription(mailbox, sync_bed.services.push_context, clock=utc_now)
    outcomes: list[SubscriptionStatus] = []

    async with graph_client(account.email) as client:

        async def tick(deleted: Mailbox) -> None:  # after the withdrawal, before the row goes
            outcomes.append(await racer.ensure(client, ARCHIVE, archive))

        await _delete_with(sync_bed, mailbox, tick)

    assert [o.live for o in outcomes] == [False] and "being deleted" in outcomes[0].why
    assert _created(sync_bed.fake, archive) == []  # the mark is looked at before asking Graph
    assert inbox in _deleted(sync_bed.fake)
    assert _remaining(sync_bed.fake, account) == []


async def test_a_subscription_made_while_the_withdrawal_runs_is_deleted_by_its_maker(
    sync_bed: SyncBed, graph_client
) -> None:
    mailbox, account = await sync_bed.mailbox()
    (inbox,) = await sync_bed.subscribed(mailbox.id, 1)
    archive = account.folder_id(ARCHIVE)
    held = HeldSave(sync_bed.services.subscriptions)
    racer = FolderSubscription(
        mailbox, replace(sync_bed.services.push_context, subscriptions=held), clock=utc_now
    )
    async with graph_client(account.email) as client:
        racing = asyncio.create_task(racer.ensure(client, ARCHIVE, archive))
        await asyncio.wait_for(held.reached.wait(), 20)  # Graph made it; it is not recorded yet
        (made,) = _created(sync_bed.fake, archive)
        assert made in sync_bed.fake.subscriptions
        outcomes: list[SubscriptionStatus] = []

        async def tick_goes_on(deleted: Mailbox) -> None:  # the withdrawal has read and deleted
            assert made in sync_bed.fake.subscriptions  # it could not know of this one
            held.release.set()
            outcomes.append(await racing)

        await _delete_with(sync_bed, mailbox, tick_goes_on)

    assert [o.live for o in outcomes] == [False] and "being deleted" in outcomes[0].why
    assert {inbox, made} <= _deleted(sync_bed.fake)
    assert _remaining(sync_bed.fake, account) == []
    assert await sync_bed.services.subscriptions.for_mailbox(mailbox.id) == []
