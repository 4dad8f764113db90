"""A watcher fetches each delivery to its idling mailbox with ``UID FETCH n:*`` (no UID SEARCH
after its first catch-up), and over a sequence of deliveries, one at a time and in bursts,
every message becomes one event, in UID order (real Dovecot through a relay that records the
commands; SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio

from mailport.events import Event
from tests.fixtures.relay import TcpRelay
from tests.integration.sync.conftest import Bed, make_message, wait_for


def _uid_commands(relay: TcpRelay) -> list[bytes]:
    lines = bytes(relay.sent).split(b"\r\n")
    return [b" ".join(line.split()[1:4]) for line in lines if line.split()[1:2] == [b"UID"]]


async def test_deliveries_are_fetched_without_searching_none_lost_or_twice(bed: Bed) -> None:
    relay = await TcpRelay(bed.dovecot.imap_port, record=True).up()
    mailbox = await bed.add_mailbox(port=relay.port)
    orchestrator = bed.orchestrator()
    await orchestrator.start()
    subjects: list[str] = []

    async def received(count: int) -> list[Event] | None:
        events = await bed.received(mailbox.id)
        return events if len(events) >= count else None

    try:
        await wait_for(lambda: _idling(relay))
        for burst in (1, 1, 3, 1, 2, 1):
            for _ in range(burst):
                subjects.append(f"delivery {len(subjects)}")
                await asyncio.to_thread(bed.dovecot.deliver, bed.user, make_message(subjects[-1]))
            await wait_for(lambda: received(len(subjects)))
        await asyncio.sleep(0.3)  # nothing more may come
        events = await bed.received(mailbox.id)
    finally:
        await orchestrator.stop()
        await relay.down()
    assert [e.payload["subject"] for e in events] == subjects
    uids = [e.payload["source"]["imap"]["uid"] for e in events]
    assert uids == sorted(set(uids))
    sent = _uid_commands(relay)
    searches = [c for c in sent if c.startswith(b"UID SEARCH")]
    direct = [c for c in sent if c.startswith(b"UID FETCH") and c.endswith(b":*")]
    assert len(searches) <= 2, sent  # the first sync's baseline and first catch-up only
    assert len(direct) >= 6, sent  # at least one per wake-up


async def _idling(relay: TcpRelay) -> bool:
    return b" IDLE\r\n" in relay.sent
