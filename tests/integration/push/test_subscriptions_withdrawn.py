"""The mark a mailbox's deletion leaves on its provider subscriptions, on SQLite and PostgreSQL:
once withdrawn, a save is refused (the caller withdraws what it made) and the subscribe paths
see it; the marker row is never listed as a subscription and goes with the mailbox; a mailbox
already gone counts as withdrawn. (The interleavings with a ticking watcher:
tests/integration/{graph,gmail}/test_delete*.py.)"""

from __future__ import annotations

from datetime import timedelta

from mailport.clock import utc_now
from mailport.push.subscriptions import MAILBOX_SCOPE, Subscription
from tests.integration.push.conftest import PushBed


def _subscription(mailbox_id: str, scope: str) -> Subscription:
    return Subscription(mailbox_id, scope, "graph", f"sub-{scope}", None, "r", utc_now() + timedelta(days=1))


async def test_a_withdrawn_mailbox_records_no_subscription(bed: PushBed) -> None:
    store = bed.services.subscriptions
    tenant = await bed.tenant()
    mailbox = await bed.mailbox(tenant, "leaving@example.test")
    other = await bed.mailbox(tenant, "staying@example.test")
    now = utc_now()
    assert await store.save(_subscription(mailbox.id, "INBOX"), now=now)
    assert not await store.withdrawn(mailbox.id)

    assert await store.withdraw(mailbox.id, now=now)
    assert await store.withdraw(mailbox.id, now=now)  # twice: the same mark

    assert await store.withdrawn(mailbox.id) and not await store.withdrawn(other.id)
    assert not await store.save(_subscription(mailbox.id, "Archive"), now=now)
    assert not await store.save(_subscription(mailbox.id, "INBOX"), now=now)  # nor a renewal
    assert [s.scope for s in await store.for_mailbox(mailbox.id)] == ["INBOX"]  # what to withdraw
    assert await store.save(_subscription(other.id, MAILBOX_SCOPE), now=now)

    await bed.services.mailboxes.repository.delete(tenant, mailbox.id)
    assert await store.for_mailbox(mailbox.id) == []
    assert await store.withdrawn(mailbox.id)  # gone counts as withdrawn
    assert not await store.withdraw(mailbox.id, now=now)
    assert not await store.save(_subscription(mailbox.id, "INBOX"), now=now)
    assert [s.scope for s in await store.for_mailbox(other.id)] == [MAILBOX_SCOPE]
