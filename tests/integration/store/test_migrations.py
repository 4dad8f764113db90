"""Migrations build exactly the declared tables on SQLite and PostgreSQL, idempotently."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import insert, select

from mailport.bootstrap import build
from mailport.crypto import generate_key
from mailport.errors import ConflictError, DatabaseNotMigratedError
from mailport.mailboxes.models import MailboxStatus
from mailport.store import current_revision, head_revision, open_database, upgrade
from mailport.store.tables import mailboxes, metadata, tenants
from tests.fixtures.api import make_settings


async def test_upgrade_creates_the_declared_schema_and_is_idempotent(fresh_database_url: str):
    database = open_database(fresh_database_url)
    try:
        assert await current_revision(database) is None
        await upgrade(database)
        await upgrade(database)
        assert await current_revision(database) == head_revision()
        async with database.connect() as conn:
            diff = await conn.run_sync(lambda c: compare_metadata(MigrationContext.configure(c), metadata))
        assert diff == []
    finally:
        await database.aclose()


async def test_an_unmigrated_database_is_a_clear_startup_error(fresh_database_url: str, tmp_path: Path):
    settings = make_settings(fresh_database_url, tmp_path, generate_key())
    with pytest.raises(DatabaseNotMigratedError) as caught:
        await build(settings, migrate=False)
    assert "mailport db upgrade" in caught.value.hint
    services = await build(settings, migrate=True)
    await services.aclose()
    services = await build(settings, migrate=False)  # now current: starts without migrating
    await services.aclose()


async def test_0009_keeps_the_oldest_of_case_duplicates_and_disables_the_later_ones(
    fresh_database_url: str, tmp_path: Path
):
    database = open_database(fresh_database_url)
    try:
        await upgrade(database, "0005_retention")
        t0 = datetime(2026, 1, 1, tzinfo=UTC)
        rows = [  # (id, tenant, email, created minutes after t0)
            ("mbx_b", "ten_1", "DUP@EXAMPLE.COM", 5),
            ("mbx_a", "ten_1", "dup@example.com", 0),  # the oldest: keeps the address
            ("mbx_c", "ten_1", "Dup@Example.com", 9),
            ("mbx_d", "ten_1", "other@example.com", 1),
            ("mbx_e", "ten_2", "dup@EXAMPLE.com", 7),  # another tenant: not a duplicate
        ]
        async with database.transaction() as conn:
            for tenant in ("ten_1", "ten_2"):
                await conn.execute(insert(tenants).values(id=tenant, name=tenant, created_at=t0))
            for mailbox_id, tenant, email, minutes in rows:
                await conn.execute(
                    insert(mailboxes).values(
                        id=mailbox_id, tenant_id=tenant, email=email, imap_host="imap.example.com",
                        imap_port=993, imap_security="ssl", auth_method="oauth2", check_interval=60,
                        folder="INBOX", after_processing="none", status="connected",
                        created_at=t0 + timedelta(minutes=minutes), updated_at=t0,
                    )
                )  # fmt: skip
        await upgrade(database)
        async with database.connect() as conn:
            found = {
                r.id: (r.email, r.email_key, r.status, r.last_error)
                for r in await conn.execute(select(mailboxes).order_by(mailboxes.c.id))
            }
    finally:
        await database.aclose()
    assert found["mbx_a"] == ("dup@example.com", "dup@example.com", "connected", None)
    assert found["mbx_d"][1:3] == ("other@example.com", "connected")
    assert found["mbx_e"][1:3] == ("dup@example.com", "connected")
    for later in ("mbx_b", "mbx_c"):  # kept, disabled, and told why
        email, key, status, error = found[later]
        assert (key, status) == (None, "disabled") and email != "dup@example.com"
        assert error is not None and "mbx_a" in error
    # enabling a disabled duplicate is refused while the first exists, and allowed after it went
    services = await build(make_settings(fresh_database_url, tmp_path, generate_key()), migrate=True)
    try:
        with pytest.raises(ConflictError) as caught:
            await services.mailboxes.set_enabled("ten_1", "mbx_b", True)
        assert caught.value.details["mailbox_id"] == "mbx_a" and caught.value.http_status == 409
        assert (await services.mailboxes.get("ten_1", "mbx_b")).health.status is MailboxStatus.DISABLED
        await services.mailboxes.delete("ten_1", "mbx_a")
        enabled = await services.mailboxes.set_enabled("ten_1", "mbx_b", True)
        assert enabled.health.status is MailboxStatus.PENDING
        with pytest.raises(ConflictError):
            await services.mailboxes.set_enabled("ten_1", "mbx_c", True)
    finally:
        await services.aclose()
