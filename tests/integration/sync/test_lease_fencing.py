"""A watcher commits a chunk only while its process holds the mailbox's lease: after another
process took the lease (this one paused past its expiry), new mail is not recorded by the old
watcher — no event, the cursor where it was — and the old watcher stops."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from mailport import leases
from mailport.clock import utc_now
from mailport.connectors.base import Cursor
from mailport.sync import repository as repo
from tests.integration.sync.conftest import Bed, make_message, wait_for


async def test_a_watcher_whose_lease_changed_hands_commits_nothing_and_stops(bed: Bed) -> None:
    mailbox = await bed.add_mailbox()
    one = bed.orchestrator(owner="host-a:1:aaaa", lease_ttl=3600)  # renews every 20 min: not now
    await one.start()
    try:

        async def connected() -> bool:
            watcher = one.watchers.get(mailbox.id)
            return watcher is not None and watcher.status.state == "connected"

        async def cursor() -> Cursor | None:
            async with bed.services.database.connect() as conn:
                return await repo.get_cursor(conn, mailbox.id, "INBOX")

        await wait_for(connected, timeout=10)
        watcher = one.watchers[mailbox.id]
        before = await wait_for(cursor, timeout=10)  # the first catch-up placed it
        later = utc_now() + timedelta(hours=2)
        async with bed.services.database.transaction() as conn:
            taken = await leases.acquire(
                conn, f"watcher:{mailbox.id}", "host-b:2:bbbb", now=later, until=later + timedelta(hours=1)
            )
        assert taken is not None and taken.token == 2

        await asyncio.to_thread(bed.dovecot.deliver, bed.user, make_message("after the take-over"))
        watcher.wake()

        async def stopped() -> bool:
            return watcher.status.state == "stopped"

        await wait_for(stopped, timeout=10)
        assert await bed.received(mailbox.id) == []
        assert await cursor() == before
    finally:
        await one.stop()
