"""Contract: the first cursor, catch-up order, batches and their cursors, epochs, refs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mailport.connectors.base import Cursor, MessageRef
from tests.connectors.conftest import SCOPE, Harness, subject

PAST = datetime(2000, 1, 1, tzinfo=UTC)


def future() -> datetime:
    return datetime.now(UTC) + timedelta(days=1)


async def test_the_baseline_skips_mail_older_than_since_and_keeps_the_rest(harness: Harness) -> None:
    await harness.deliver("old 1", "old 2")
    state = await harness.connector.open(SCOPE)
    assert state.scope == SCOPE and state.epoch
    assert await harness.subjects(await harness.connector.baseline(state, since=future())) == []
    everything = await harness.connector.baseline(state, since=PAST)
    assert await harness.subjects(everything) == ["old 1", "old 2"]


async def test_catch_up_yields_new_mail_in_order_in_batches_each_with_the_cursor_after_it(
    harness: Harness,
) -> None:
    await harness.deliver("before")
    state = await harness.connector.open(SCOPE)
    cursor = await harness.connector.baseline(state, since=future())
    await harness.deliver("new 0", "new 1", "new 2")
    batches = await harness.fetch(cursor, chunk=2)
    assert [[subject(m.raw) for m in b.messages] for b in batches] == [["new 0", "new 1"], ["new 2"]]
    assert all(b.cursor.scope == SCOPE and b.cursor.epoch == state.epoch for b in batches)
    assert len({b.cursor.position for b in batches} | {cursor.position}) == 3  # it moved each time
    assert await harness.subjects(batches[0].cursor) == ["new 2"]
    assert await harness.subjects(batches[-1].cursor) == []
    await harness.deliver("new 3")
    assert await harness.subjects(batches[-1].cursor) == ["new 3"]


async def test_an_epoch_change_is_seen_at_open_and_restart_reads_the_scope_again(harness: Harness) -> None:
    await harness.deliver("first")
    before = await harness.connector.open(SCOPE)
    await harness.new_epoch()
    await harness.deliver("after the change")
    await harness.reconnect()
    after = await harness.connector.open(SCOPE)
    assert after.epoch != before.epoch
    again = await harness.connector.restart(after)
    assert (again.scope, again.epoch) == (SCOPE, after.epoch)
    assert (await harness.subjects(again))[-1] == "after the change"


async def test_refs_round_trip_and_name_the_message_the_source_describes(harness: Harness) -> None:
    await harness.deliver("one", "two")
    state = await harness.connector.open(SCOPE)
    cursor = await harness.connector.baseline(state, since=PAST)
    messages = [m for batch in await harness.fetch(cursor) for m in batch.messages]
    refs = [MessageRef(SCOPE, state.epoch, m.item) for m in messages]
    assert len({r.encode() for r in refs}) == 2
    for ref, message in zip(refs, messages, strict=True):
        assert isinstance(message.item, str) and message.item
        encoded = ref.encode()
        assert MessageRef.decode(encoded) == ref and encoded.isascii() and "/" not in encoded
        assert harness.connector.item_source(ref) == message.source != {}
    assert Cursor(SCOPE, state.epoch, cursor.position) == cursor
