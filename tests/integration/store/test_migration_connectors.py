"""Migration 0011_connectors on rows written at 0008, on SQLite and PostgreSQL: the mailbox is
``imap``, the cursor, messages and pending actions are keyed on the same values as strings, a
message ingested before the upgrade is neither stored nor appended again, and the way down
gives the integers back."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, String, column, insert, select, table

from mailport.connectors.base import Cursor
from mailport.events import NewEvent, append_many, message_key
from mailport.store import current_revision, head_revision, open_database, upgrade
from mailport.store.tables import UTCDateTime, events, mailboxes, messages, pending_actions
from mailport.sync import repository as repo
from tests.fixtures.migrations import downgrade, insert_mailbox

THEN = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
TENANT, MAILBOX = "ten_01m7zh4d94fxj51fc0rsy5n5tt", "mbx_01m7zh4d94fxj51fc0rsy5n5mm"
UIDVALIDITY = 1_700_000_000


def _old(name: str, *names: str) -> Any:
    """A table as it was at 0008 (its location columns were integers)."""
    ints = {"uidvalidity", "uid", "last_uid", "highestmodseq", "size"}
    dates = {"created_at", "updated_at"}
    return table(
        name,
        *(column(n, BigInteger() if n in ints else UTCDateTime() if n in dates else String()) for n in names),
    )


OLD_CURSORS = _old(
    "mailbox_cursors", "mailbox_id", "folder", "uidvalidity", "last_uid", "highestmodseq", "updated_at"
)
OLD_MESSAGES = _old(
    "messages",
    "id",
    "tenant_id",
    "mailbox_id",
    "folder",
    "uidvalidity",
    "uid",
    "sha256",
    "size",
    "event_id",
    "created_at",
)
OLD_ACTIONS = _old(
    "pending_actions",
    "event_id",
    "mailbox_id",
    "folder",
    "uidvalidity",
    "uid",
    "action",
    "state",
    "created_at",
    "updated_at",
)


def _message(n: int, folder: str = "INBOX", uidvalidity: int = UIDVALIDITY) -> dict[str, Any]:
    return {
        "id": f"msg_{folder}_{n}",
        "tenant_id": TENANT,
        "mailbox_id": MAILBOX,
        "folder": folder,
        "uidvalidity": uidvalidity,
        "uid": n,
        "sha256": f"{n:064d}",
        "size": 10,
        "event_id": f"evt_{folder}_{n}",
        "created_at": THEN,
    }


async def test_0011_converts_locations_to_strings_and_nothing_is_delivered_twice(
    fresh_database_url: str,
) -> None:
    database = open_database(fresh_database_url)
    try:
        await upgrade(database, "0008_oauth_resilience")
        async with database.transaction() as conn:
            await insert_mailbox(conn, TENANT, MAILBOX, at=THEN)
            await conn.execute(
                insert(OLD_CURSORS),
                [
                    {"mailbox_id": MAILBOX, "folder": "INBOX", "uidvalidity": UIDVALIDITY, "last_uid": 42,
                     "highestmodseq": 7, "updated_at": THEN},
                    {"mailbox_id": MAILBOX, "folder": "Work", "uidvalidity": 3, "last_uid": 5,
                     "highestmodseq": None, "updated_at": THEN},
                ],
            )  # fmt: skip
            await conn.execute(insert(OLD_MESSAGES), [_message(41), _message(42), _message(5, "Work", 3)])
            action = {
                "event_id": "evt_INBOX_42",
                "mailbox_id": MAILBOX,
                "action": "mark_read",
                "state": "pending",
            }
            location = {"folder": "INBOX", "uidvalidity": UIDVALIDITY, "uid": 42}
            await conn.execute(
                insert(OLD_ACTIONS), {**action, **location, "created_at": THEN, "updated_at": THEN}
            )
            await append_many(
                conn,
                [NewEvent(TENANT, MAILBOX, "message.received", {}, f"msg:{MAILBOX}:{UIDVALIDITY}:42")],
                now=THEN,
            )
        await upgrade(database)
        assert await current_revision(database) == head_revision()
        async with database.transaction() as conn:
            assert (await conn.execute(select(mailboxes.c.connector))).scalar_one() == "imap"
            assert await repo.get_cursor(conn, MAILBOX, "INBOX") == Cursor("INBOX", str(UIDVALIDITY), "42")
            assert await repo.get_cursor(conn, MAILBOX, "Work") == Cursor("Work", "3", "5")
            rows = (await conn.execute(select(messages).order_by(messages.c.id))).all()
            assert [(r.scope, r.epoch, r.item) for r in rows] == [
                ("INBOX", str(UIDVALIDITY), "41"),
                ("INBOX", str(UIDVALIDITY), "42"),
                ("Work", "3", "5"),
            ]
            (pending,) = await conn.execute(select(pending_actions))
            assert (pending.scope, pending.epoch, pending.item) == ("INBOX", str(UIDVALIDITY), "42")
            # the same message fetched again after the upgrade: no second row, no second event
            again = {**_message(42), "id": "msg_again", "event_id": None}
            del again["folder"], again["uidvalidity"], again["uid"]
            again |= {"scope": "INBOX", "epoch": str(UIDVALIDITY), "item": "42"}
            await repo.insert_messages(conn, [again])
            assert len((await conn.execute(select(messages.c.id))).all()) == 3
            key = message_key(MAILBOX, str(UIDVALIDITY), "42")
            assert (
                await append_many(conn, [NewEvent(TENANT, MAILBOX, "message.received", {}, key)], now=THEN)
                == []
            )
            assert len((await conn.execute(select(events.c.seq))).all()) == 1
            assert await repo.has_other_epochs(conn, MAILBOX, "INBOX", str(UIDVALIDITY)) is False
        await downgrade(database, "0008_oauth_resilience")
        async with database.connect() as conn:
            old = (await conn.execute(select(OLD_CURSORS).order_by(OLD_CURSORS.c.folder))).all()
            assert [(r.folder, r.uidvalidity, r.last_uid) for r in old] == [
                ("INBOX", UIDVALIDITY, 42),
                ("Work", 3, 5),
            ]
            back = (
                (await conn.execute(select(OLD_MESSAGES.c.uid).order_by(OLD_MESSAGES.c.id))).scalars().all()
            )
            assert back == [41, 42, 5]
        await upgrade(database)
        assert await current_revision(database) == head_revision()
    finally:
        await database.aclose()
