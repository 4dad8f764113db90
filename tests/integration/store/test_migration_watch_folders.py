"""Migration 0018_watch_folders on SQLite and PostgreSQL: a mailbox made before it watches its
``folder`` alone (the new column is NULL); one that watches several folders keeps its ``folder``
(the first of them) on the way down, and comes back watching that folder alone."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, inspect, select, update

from mailport.crypto.keyring import KeyRing, generate_key
from mailport.mailboxes.models import WatchedFolder
from mailport.store import current_revision, head_revision, open_database, upgrade
from mailport.store.mailboxes import MailboxRepository, folders_column
from mailport.store.tables import mailboxes
from tests.fixtures.migrations import downgrade, insert_mailbox

NOW = datetime.now(UTC).replace(microsecond=0)
TENANT, MAILBOX = "ten_01m7zh4d94fxj51fc0rsy5n5tt", "mbx_01m7zh4d94fxj51fc0rsy5n5mm"


async def test_old_mailboxes_watch_their_folder_and_the_way_down_keeps_the_first(
    fresh_database_url: str,
) -> None:
    database = open_database(fresh_database_url)
    repository = MailboxRepository(database, KeyRing.from_keys([generate_key()], source="test"))
    try:
        await upgrade(database, "0015_leases")
        async with database.connect() as conn:
            columns = await conn.run_sync(lambda c: [col["name"] for col in _inspect(c)])
        assert "folders" not in columns
        async with database.transaction() as conn:
            await insert_mailbox(conn, TENANT, MAILBOX, at=NOW, folder="Bookings", email_key="a@example.test")
        await upgrade(database)
        assert await current_revision(database) == head_revision()
        old = await repository.get_by_id(MAILBOX)
        assert old.settings.folders == ()
        assert [w.spec for w in old.settings.watched] == ["Bookings"]

        watched = (WatchedFolder("Bookings"), WatchedFolder("role:sent", NOW))
        async with database.transaction() as conn:
            await conn.execute(
                update(mailboxes).where(mailboxes.c.id == MAILBOX).values(folders=folders_column(watched))
            )
        assert (await repository.get_by_id(MAILBOX)).settings.folders == watched

        await downgrade(database, "0015_leases")
        async with database.connect() as conn:
            columns = await conn.run_sync(lambda c: [col["name"] for col in _inspect(c)])
            row = (await conn.execute(select(mailboxes.c.folder).where(mailboxes.c.id == MAILBOX))).one()
        assert "folders" not in columns and row.folder == "Bookings"

        await upgrade(database)  # and up again
        assert [w.spec for w in (await repository.get_by_id(MAILBOX)).settings.watched] == ["Bookings"]
    finally:
        await database.aclose()


def _inspect(conn: Connection) -> list[Any]:
    return list(inspect(conn).get_columns("mailboxes"))
