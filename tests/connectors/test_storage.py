"""Contract: what a connector yields goes through the core's storage unchanged — its cursor
round-trips through the database, and the pipeline's events carry its refs and sources."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from mailport.bootstrap import Services
from mailport.connectors.base import MessageRef
from mailport.events import row_to_event
from mailport.store.tables import events, messages
from mailport.sync import repository as repo
from mailport.sync.pipeline import parse_chunk, store_chunk
from tests.connectors.conftest import SCOPE, Harness
from tests.connectors.test_reading import future


async def test_the_cursor_round_trips_through_the_database_and_catch_up_resumes_from_it(
    harness: Harness, services: Services
) -> None:
    await harness.deliver("seen")
    state = await harness.connector.open(SCOPE)
    cursor = await harness.connector.baseline(state, since=future())
    async with services.database.transaction() as conn:
        await repo.save_cursor(conn, harness.mailbox.id, cursor, now=datetime.now(UTC))
    async with services.database.connect() as conn:
        loaded = await repo.get_cursor(conn, harness.mailbox.id, SCOPE)
    assert loaded == cursor
    await harness.deliver("unseen")
    assert await harness.subjects(loaded) == ["unseen"]


async def test_stored_batches_give_events_whose_ref_names_the_stored_row(
    harness: Harness, services: Services
) -> None:
    await harness.deliver("a", "b")
    state = await harness.connector.open(SCOPE)
    cursor = await harness.connector.restart(state)
    (batch,) = await harness.fetch(cursor)
    parsed = await parse_chunk(harness.mailbox.id, SCOPE, batch.messages)
    async with services.events.transaction() as conn:
        result = await store_chunk(
            conn,
            harness.mailbox,
            batch,
            parsed,
            now=datetime.now(UTC),
            check_known=False,
            started=time.perf_counter(),
        )
    assert result.cursor == batch.cursor and result.delivered == 2
    async with services.database.connect() as conn:
        assert await repo.get_cursor(conn, harness.mailbox.id, SCOPE) == batch.cursor
        rows = {r.id: r for r in await conn.execute(messages.select())}
        appended = [row_to_event(r) for r in await conn.execute(events.select().order_by(events.c.seq))]
    assert [e.payload["subject"] for e in appended] == ["a", "b"]
    for event, message in zip(appended, batch.messages, strict=True):
        row = rows[event.payload["id"]]
        assert MessageRef.decode(event.payload["ref"]) == MessageRef(row.scope, row.epoch, row.item)
        assert (row.scope, row.epoch, row.item) == (SCOPE, state.epoch, message.item)
        assert event.payload["connector"] == harness.mailbox.connector
        assert event.payload["source"] == message.source
