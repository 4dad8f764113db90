"""The mailbox change log (0023_fleet): triggers write one row per change a watcher depends on,
whoever writes the mailbox, and none for health or token updates."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select, update

from mailport.bootstrap import Services
from mailport.crypto import Secret
from mailport.mailboxes.models import AuthMethod, MailboxStatus, NewMailbox, Security, ServerSettings
from mailport.store.tables import mailbox_changes, mailboxes

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


async def _changes(services: Services) -> list[tuple[int, str]]:
    async with services.database.connect() as conn:
        rows = await conn.execute(select(mailbox_changes.c.seq, mailbox_changes.c.mailbox_id).order_by("seq"))
        return [(int(r.seq), r.mailbox_id) for r in rows]


async def test_creates_deletes_and_watched_changes_are_logged_and_health_is_not(services: Services):
    tenant, _ = await services.tenants.create_tenant("acme")
    mailbox = await services.mailboxes.create(
        tenant.id,
        NewMailbox(
            email="a@example.com",
            auth_method=AuthMethod.PASSWORD,
            imap=ServerSettings("imap.example.com", 993, Security.SSL),
            password=Secret("pw"),
        ),
    )
    created = await _changes(services)
    assert [m for _, m in created] == [mailbox.id]

    await services.mailboxes.repository.record_health(
        mailbox.id, status=MailboxStatus.ERROR, error="x", at=T0
    )
    assert await _changes(services) == created  # health is not a change

    async with services.database.transaction() as conn:
        await conn.execute(update(mailboxes).where(mailboxes.c.id == mailbox.id).values(check_interval=120))
    async with services.database.transaction() as conn:  # the same value again: no change
        await conn.execute(update(mailboxes).where(mailboxes.c.id == mailbox.id).values(check_interval=120))
    async with services.database.transaction() as conn:
        await conn.execute(update(mailboxes).where(mailboxes.c.id == mailbox.id).values(status="disabled"))
    async with services.database.transaction() as conn:  # disabled -> error: still a change
        await conn.execute(update(mailboxes).where(mailboxes.c.id == mailbox.id).values(status="error"))
    async with services.database.transaction() as conn:  # error -> connected: not one
        await conn.execute(update(mailboxes).where(mailboxes.c.id == mailbox.id).values(status="connected"))
    logged = await _changes(services)
    assert [m for _, m in logged] == [mailbox.id] * 4
    assert [s for s, _ in logged] == sorted(s for s, _ in logged)

    await services.mailboxes.delete(tenant.id, mailbox.id)
    assert [m for _, m in await _changes(services)] == [mailbox.id] * 5
