"""Migration 0007_acceptance on rows written at 0005, on SQLite and PostgreSQL: nothing is
delivered again, nothing becomes accepted without a consumer, and the events stuck before the
first webhook leave the waiting count and are accepted by the pull reader's next cursor."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import column, insert, inspect, select, table

from mailport.bootstrap import build
from mailport.crypto import generate_key
from mailport.events import acceptance
from mailport.store import current_revision, head_revision, open_database, upgrade
from mailport.store.tables import (
    UTCDateTime,
    delivery_state,
    events,
    webhook_deliveries,
    webhook_endpoints,
)
from mailport.sync import repository as sync_repo
from tests.fixtures.api import make_settings
from tests.fixtures.migrations import downgrade, insert_mailbox

THEN = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
TENANT, MAILBOX, ENDPOINT = "ten_01m7zh4d94fxj51fc0rsy5n5tt", "mbx_01m7zh4d94fxj51fc0rsy5n5mm", "whk_01"


def _event(seq: int, *, accepted: bool, type: str = "message.received") -> dict[str, Any]:
    return {
        "seq": seq,
        "id": f"evt_{seq}",
        "tenant_id": TENANT,
        "mailbox_id": MAILBOX,
        "type": type,
        "idempotency_key": f"msg:{MAILBOX}:1:{seq}",
        "payload": "{}",
        "created_at": THEN + timedelta(minutes=seq),
        "accepted_at": THEN + timedelta(minutes=seq, seconds=1) if accepted else None,
    }


def _delivery(seq: int, status: str) -> dict[str, Any]:
    return {
        "id": f"dlv_{seq}",
        "endpoint_id": ENDPOINT,
        "tenant_id": TENANT,
        "event_seq": seq,
        "event_id": f"evt_{seq}",
        "event_type": "message.received",
        "mailbox_id": MAILBOX,
        "status": status,
        "attempts": 1,
        "window_started_at": THEN,
        "next_attempt_at": THEN if status == "pending" else None,
        "created_at": THEN,
    }


# pending_actions as it was at 0005 (0011 keys it on strings: scope, epoch, item)
PENDING_ACTIONS_0005 = table(
    "pending_actions",
    *(column(name) for name in ("event_id", "mailbox_id", "folder", "uidvalidity", "uid", "action")),
    column("state"),
    column("created_at", UTCDateTime()),
    column("updated_at", UTCDateTime()),
)


def _action(seq: int) -> dict[str, Any]:
    return {
        "event_id": f"evt_{seq}",
        "mailbox_id": MAILBOX,
        "folder": "INBOX",
        "uidvalidity": 1,
        "uid": seq,
        "action": "mark_read",
        "state": "pending",
        "created_at": THEN,
        "updated_at": THEN,
    }


async def test_migration_keeps_every_acceptance_and_delivery_and_frees_the_stuck_events(
    fresh_database_url: str, tmp_path: Path
) -> None:
    database = open_database(fresh_database_url)
    try:
        await upgrade(database, "0005_retention")
        async with database.transaction() as conn:
            await insert_mailbox(conn, TENANT, MAILBOX, at=THEN)
            # 1: read and accepted through pull before any webhook; 2 and 3: appended before the
            # webhook, read by pull afterwards, never accepted (the bug); 4: delivered and
            # accepted; 5: pending at the endpoint; 6: a dead letter
            await conn.execute(
                insert(events),
                [
                    _event(1, accepted=True),
                    _event(2, accepted=False),
                    _event(3, accepted=False),
                    _event(4, accepted=True),
                    _event(5, accepted=False),
                    _event(6, accepted=False),
                ],
            )
            await conn.execute(
                insert(webhook_endpoints).values(
                    id=ENDPOINT,
                    tenant_id=TENANT,
                    url="https://hooks.example.test/mail",
                    events="message.received",
                    secret_enc="not-read-here",
                    status="active",
                    start_seq=3,
                    created_at=THEN,
                    updated_at=THEN,
                )
            )
            await conn.execute(
                insert(webhook_deliveries),
                [_delivery(4, "delivered"), _delivery(5, "pending"), _delivery(6, "dead")],
            )
            await conn.execute(
                insert(delivery_state).values(name="dispatcher", fanout_seq=6, updated_at=THEN)
            )
            await conn.execute(insert(PENDING_ACTIONS_0005), [_action(n) for n in (2, 3, 5)])
        async with database.connect() as conn:
            events_before = (await conn.execute(select(events).order_by(events.c.seq))).all()
            deliveries_before = (
                await conn.execute(select(webhook_deliveries).order_by(webhook_deliveries.c.id))
            ).all()

        await upgrade(database)
        assert await current_revision(database) == head_revision()

        async with database.connect() as conn:
            assert (await conn.execute(select(events).order_by(events.c.seq))).all() == events_before
            after = (await conn.execute(select(webhook_deliveries).order_by(webhook_deliveries.c.id))).all()
            assert after == deliveries_before  # nothing queued again
            fanout = (await conn.execute(select(delivery_state.c.fanout_seq))).scalar_one()
            assert fanout == 6
            # 5 and 6 are the endpoint's; 2 and 3 are nobody's until a pull consumer reads
            assert await acceptance.waiting_counts(conn, [MAILBOX]) == {
                MAILBOX: acceptance.Waiting(owed=2, unclaimed=2)
            }
            assert await sync_repo.unaccepted_counts(conn, [MAILBOX]) == {MAILBOX: 2}
            assert await sync_repo.accepted_actions(conn, MAILBOX, now=datetime.now(UTC)) == []

        # the application's pull reader polls again with its cursor: 2 and 3 are accepted
        services = await build(make_settings(fresh_database_url, tmp_path, generate_key()), migrate=True)
        try:
            items, _ = await services.webhooks.events_after(TENANT, after="6", limit=10)
        finally:
            await services.aclose()
        assert items == []
        async with database.connect() as conn:
            accepted = dict((await conn.execute(select(events.c.seq, events.c.accepted_at))).all())
            assert [seq for seq, at in sorted(accepted.items()) if at is not None] == [1, 2, 3, 4]
            assert accepted[1] == events_before[0].accepted_at  # earlier acceptances unchanged
            assert await acceptance.waiting_counts(conn, [MAILBOX]) == {MAILBOX: acceptance.Waiting(owed=2)}
            actions = await sync_repo.accepted_actions(conn, MAILBOX, now=datetime.now(UTC))
            assert sorted(a.event_id for a in actions) == ["evt_2", "evt_3"]  # after-processing runs
    finally:
        await database.aclose()


async def test_migration_goes_down_and_up_again(fresh_database_url: str) -> None:
    database = open_database(fresh_database_url)
    try:
        await upgrade(database)
        await downgrade(database, "0005_retention")
        async with database.connect() as conn:
            tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert "pull_consumers" not in tables and "events" in tables
        await upgrade(database)
        assert await current_revision(database) == head_revision()
    finally:
        await database.aclose()
