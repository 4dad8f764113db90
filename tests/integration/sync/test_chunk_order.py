"""A chunk's transaction writes its events last (issue 21): the message rows name their events
before the events exist, the IMAP connector fetches one page ahead of the one being stored.
These check that nothing of that shows: every message once, in order, every row pointing at
its own event, and a chunk stored again (a crash before the cursor moved) appending nothing."""

from __future__ import annotations

import time

from sqlalchemy import func, select

from mailport.clock import utc_now
from mailport.connectors.base import Batch, Cursor, RemoteMessage
from mailport.connectors.imap import ImapConnector
from mailport.events import Event
from mailport.store.tables import mailbox_stats, messages, pending_actions
from mailport.sync import WatcherOptions
from mailport.sync import repository as sync_repository
from mailport.sync.pipeline import parse_chunk, store_chunk
from tests.connectors.mailbed import make_mailbox
from tests.integration.sync.conftest import Bed, all_events, make_message, wait_for


def _remote(uid: int) -> RemoteMessage:
    raw = make_message(f"order {uid}")
    return RemoteMessage(item=str(uid), size=len(raw), raw=raw, source={"imap": {"uid": uid}})


async def _store(bed: Bed, mailbox_id: str, uids: range) -> list[Event]:
    mailbox = await bed.services.mailboxes.get(bed.tenant_id, mailbox_id)
    chunk = [_remote(uid) for uid in uids]
    parsed = await parse_chunk(mailbox.id, "INBOX", chunk)
    batch = Batch(chunk, Cursor("INBOX", "7", str(uids[-1])))
    async with bed.services.events.transaction() as conn:
        result = await store_chunk(
            conn, mailbox, batch, parsed, now=utc_now(), check_known=False, started=time.perf_counter()
        )
    return result.events


async def test_rows_name_their_events_and_a_chunk_stored_again_appends_nothing(bed: Bed) -> None:
    mailbox = await bed.add_mailbox()
    first = await _store(bed, mailbox.id, range(1, 41))  # 40 > the parse slice: the loop is yielded
    assert [e.payload["subject"] for e in first] == [f"order {uid}" for uid in range(1, 41)]
    assert [e.seq for e in first] == sorted(e.seq for e in first)

    # the same UIDs again, overlapping new ones: only the new ones become events
    again = await _store(bed, mailbox.id, range(31, 51))
    assert [e.payload["subject"] for e in again] == [f"order {uid}" for uid in range(41, 51)]

    events = await bed.received(mailbox.id)
    assert [e.payload["subject"] for e in events] == [f"order {uid}" for uid in range(1, 51)]
    by_id = {e.id: e for e in events}
    async with bed.services.database.connect() as conn:
        rows = (await conn.execute(select(messages).where(messages.c.mailbox_id == mailbox.id))).all()
    assert len(rows) == 50
    for row in rows:  # every row names the event that carries it, none a never-appended one
        assert row.event_id in by_id, row.item
        assert by_id[row.event_id].payload["id"] == row.id


async def test_a_chunk_stored_again_counts_and_acts_on_each_message_once(bed: Bed) -> None:
    """The statistics and the after-processing actions are written before the events (so the
    event lock is held only for their INSERT and the commit): what a chunk stored again did not
    append is taken back in the same transaction."""
    mailbox = await bed.add_mailbox(after_processing="mark_read")
    await _store(bed, mailbox.id, range(1, 21))
    again = await _store(bed, mailbox.id, range(11, 31))  # 11-20 exist: only 21-30 are new
    assert [e.payload["subject"] for e in again] == [f"order {uid}" for uid in range(21, 31)]

    events = {e.id: e for e in await bed.received(mailbox.id)}
    async with bed.services.database.connect() as conn:
        processed = (
            await conn.execute(
                select(func.sum(mailbox_stats.c.processed)).where(mailbox_stats.c.mailbox_id == mailbox.id)
            )
        ).scalar_one()
        actions = (
            await conn.execute(select(pending_actions).where(pending_actions.c.mailbox_id == mailbox.id))
        ).all()
    assert processed == 30
    assert sorted(int(a.item) for a in actions) == list(range(1, 31))  # one each, none for 11-20 again
    for action in actions:  # each for the event that carries its message
        assert action.action == "mark_read" and action.state == "pending"
        assert events[action.event_id].payload["source"]["imap"]["uid"] == int(action.item)


async def test_a_row_whose_event_exists_already_names_no_other_event(bed: Bed) -> None:
    """An event appended before its message row (a row lost to retention, then the item
    stored again): the new row must not name the event id that was never appended."""
    mailbox = await bed.add_mailbox()
    await _store(bed, mailbox.id, range(1, 4))
    async with bed.services.database.transaction() as conn:
        await conn.execute(
            messages.delete().where(messages.c.mailbox_id == mailbox.id, messages.c.item == "2")
        )
    again = await _store(bed, mailbox.id, range(1, 4))
    assert again == []
    async with bed.services.database.connect() as conn:
        row = (
            await conn.execute(
                select(messages).where(messages.c.mailbox_id == mailbox.id, messages.c.item == "2")
            )
        ).one()
    assert row.event_id is None
    assert len(await all_events(bed.services, mailbox_id=mailbox.id, type="message.received")) == 3


async def test_fetching_ahead_yields_every_page_in_order_and_leaving_early_is_safe(bed: Bed) -> None:
    client = await bed.imap()
    try:
        await client.append_many("INBOX", [make_message(f"ahead {i}") for i in range(11)])
    finally:
        await client.logout()
    connector = ImapConnector(make_mailbox("imap", bed.user, bed.password, bed.dovecot.imap_port))
    await connector.connect()
    try:
        state = await connector.open("INBOX")
        start = Cursor("INBOX", state.epoch, "0")
        batches = [b async for b in connector.fetch_since(start, chunk=3)]
        assert [len(b.messages) for b in batches] == [3, 3, 3, 2]
        items = [m.item for b in batches for m in b.messages]
        assert items == sorted(items, key=int) and len(set(items)) == 11
        assert [b.cursor.position for b in batches] == [b.messages[-1].item for b in batches]

        # leave after the first page, with the second being fetched: the session stays usable
        pages = connector.fetch_since(start, chunk=3)
        first = await anext(pages)
        assert [m.item for m in first.messages] == items[:3]
        await pages.aclose()
        rest = [b async for b in connector.fetch_since(first.cursor, chunk=5)]
        assert [m.item for b in rest for m in b.messages] == items[3:]
    finally:
        await connector.disconnect()


async def test_a_watcher_commits_its_pages_in_order_while_parsing_the_next(bed: Bed) -> None:
    """Pages of 3: each page is parsed while the one before commits; the events still follow
    the UIDs, once each, and the cursor ends at the last page's last UID."""
    mailbox = await bed.add_mailbox()
    client = await bed.imap()
    try:
        await client.append_many("INBOX", [make_message(f"page {i}") for i in range(11)])
    finally:
        await client.logout()
    options = WatcherOptions(chunk=3, backoff_base=0.2, backoff_cap=1.0, auth_retry_seconds=600)
    orchestrator = bed.orchestrator(options=options)
    await orchestrator.start()
    try:
        events = await wait_for(lambda: _all_received(bed, mailbox.id, 11))
    finally:
        await orchestrator.stop()
    assert [e.payload["subject"] for e in events] == [f"page {i}" for i in range(11)]
    uids = [e.payload["source"]["imap"]["uid"] for e in events]
    assert uids == sorted(uids) and len(set(uids)) == 11
    async with bed.services.database.connect() as conn:
        cursor = await sync_repository.get_cursor(conn, mailbox.id, "INBOX")
    assert cursor is not None and cursor.position == str(uids[-1])


async def _all_received(bed: Bed, mailbox_id: str, count: int) -> list[Event] | None:
    events = await bed.received(mailbox_id)
    return events if len(events) >= count else None
