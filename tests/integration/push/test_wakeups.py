"""The wake-up table on SQLite and PostgreSQL: a request racing the holder's delete is never
lost, another process's mailboxes are left to it, unserved rows are purged, and a channel's
secret survives key rotation."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import Delete, delete

from mailport.bootstrap import Services, build
from mailport.clock import utc_now
from mailport.crypto import Secret, generate_key
from mailport.push.wakeups import WakeupFollower, request_wakes, take_wakes
from mailport.store.rotation import rotate_secrets
from mailport.store.tables import mailbox_wakeups
from tests.connectors.push_fake import KEY
from tests.fixtures.api import make_settings
from tests.integration.push.conftest import PushBed


class Counter:
    def __init__(self) -> None:
        self.woken = 0

    def wake(self) -> None:
        self.woken += 1


async def test_a_request_racing_the_delete_is_served_at_the_next_look(services: Services, bed: PushBed):
    tenant = await bed.tenant()
    mine, theirs = await bed.mailbox(tenant, "a@example.com"), await bed.mailbox(tenant, "b@example.com")
    async with services.database.transaction() as conn:
        await request_wakes(conn, [mine.id, theirs.id, mine.id], now=utc_now())
    async with services.database.transaction() as conn:
        taken = await take_wakes(conn, lambda m: m == mine.id)
    assert taken == [mine.id]
    assert await bed.wakeups() == {theirs.id: 1}  # left to the process that holds it

    async with services.database.transaction() as conn:
        await request_wakes(conn, [mine.id], now=utc_now())
    seen = await bed.wakeups()  # the holder reads ...
    async with services.database.transaction() as conn:  # ... a new request comes ...
        await request_wakes(conn, [mine.id], now=utc_now())
    async with services.database.transaction() as conn:  # ... and the stale delete misses it
        await conn.execute(stale_delete(mine.id, seen[mine.id]))
    assert (await bed.wakeups())[mine.id] == 2

    watcher = Counter()
    follower = WakeupFollower(services.database, lambda m: watcher if m == mine.id else None)
    assert await follower.poll() == [mine.id]
    assert watcher.woken == 1
    assert await follower.poll() == []  # served once
    assert await bed.wakeups() == {theirs.id: 1}


def stale_delete(mailbox_id: str, requests: int) -> Delete:
    """The delete :func:`take_wakes` issues for a row it read with ``requests``."""
    return delete(mailbox_wakeups).where(
        mailbox_wakeups.c.mailbox_id == mailbox_id, mailbox_wakeups.c.requests == requests
    )


async def test_wakeups_nobody_serves_are_purged(services: Services, bed: PushBed):
    tenant = await bed.tenant()
    old, fresh = await bed.mailbox(tenant, "a@example.com"), await bed.mailbox(tenant, "b@example.com")
    now = utc_now()
    async with services.database.transaction() as conn:
        await request_wakes(conn, [old.id], now=now - timedelta(minutes=6))
        await request_wakes(conn, [fresh.id], now=now - timedelta(minutes=4))
    follower = WakeupFollower(services.database, lambda m: None, clock=lambda: now)
    assert await follower.purge() == 1
    assert await bed.wakeups() == {fresh.id: 1}
    await services.mailboxes.repository.delete(tenant, fresh.id)
    assert await bed.wakeups() == {}  # deleted with its mailbox


async def test_a_channel_secret_is_ciphertext_and_survives_key_rotation(
    fresh_database_url: str, tmp_path: Path
):
    old, new = generate_key(), generate_key()
    services = await build(make_settings(fresh_database_url, tmp_path, old), migrate=True)
    try:
        tenant, _ = await services.tenants.create_tenant("acme")
        channel = await services.push.channels.create(tenant.id, KEY, now=utc_now())
        stored = await services.push.channels.find(KEY, channel.id)
        assert stored is not None and channel.secret.reveal() not in stored.secret_enc
        assert channel.secret.reveal() not in repr(stored)
    finally:
        await services.aclose()
    services = await build(make_settings(fresh_database_url, tmp_path, new, old))
    try:
        await rotate_secrets(services.database, services.key_ring)
    finally:
        await services.aclose()
    services = await build(make_settings(fresh_database_url, tmp_path, new))  # the new key alone
    try:
        stored = await services.push.channels.find(KEY, channel.id)
        assert stored is not None and services.key_ring.is_current(stored.secret_enc)
        assert stored.authenticates([channel.secret, channel.secret], services.key_ring)
        assert not stored.authenticates([Secret(channel.secret.reveal() + "x")], services.key_ring)
        assert not stored.authenticates([channel.secret, None], services.key_ring)
        assert not stored.authenticates([], services.key_ring)
    finally:
        await services.aclose()
