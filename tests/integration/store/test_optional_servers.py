"""Server settings are optional at the model and store level (migration 0013): a mailbox stored
without IMAP settings reads back as such, and every operation that speaks IMAP refuses it with
``imap_not_configured`` instead of failing somewhere inside."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import insert, select

from mailport.bootstrap import Services
from mailport.connectors import ImapConnector
from mailport.crypto import Secret
from mailport.errors import ImapSettingsMissingError, NotFoundError
from mailport.mailboxes.models import AuthMethod, MailboxStatus, NewMailbox
from mailport.servers import Security, ServerSettings
from mailport.store import current_revision, head_revision, open_database, upgrade
from mailport.store.tables import mailboxes, tenants
from tests.fixtures.api import TenantHandle, create_tenant
from tests.fixtures.migrations import downgrade

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def without_imap(email: str = "nobody@example.com") -> NewMailbox:
    return NewMailbox(email=email, auth_method=AuthMethod.PASSWORD, imap=None, password=Secret("pw-1"))


async def test_0013_keeps_existing_servers_and_admits_none(fresh_database_url: str, tmp_path: Path):
    database = open_database(fresh_database_url)
    try:
        await upgrade(database, "0008_oauth_resilience")
        async with database.transaction() as conn:
            await conn.execute(insert(tenants).values(id="ten_1", name="acme", created_at=T0))
            await conn.execute(
                insert(mailboxes).values(
                    id="mbx_old", tenant_id="ten_1", email="old@example.com", email_key="old@example.com",
                    imap_host="imap.example.com", imap_port=143, imap_security="starttls",
                    imap_username="old", auth_method="oauth2", check_interval=60, folder="INBOX",
                    after_processing="none", status="connected", created_at=T0, updated_at=T0,
                )
            )  # fmt: skip
        await upgrade(database)
        assert await current_revision(database) == head_revision()
        async with database.transaction() as conn:
            row = (await conn.execute(select(mailboxes).where(mailboxes.c.id == "mbx_old"))).one()
            assert (row.imap_host, row.imap_port, row.imap_security, row.imap_username) == (
                "imap.example.com", 143, "starttls", "old",
            )  # fmt: skip
            await conn.execute(
                insert(mailboxes).values(
                    id="mbx_new", tenant_id="ten_1", email="new@example.com", email_key="new@example.com",
                    auth_method="oauth2", check_interval=60, folder="INBOX", after_processing="none",
                    status="pending", created_at=T0, updated_at=T0,
                )
            )  # fmt: skip
        # Down again: refused while a mailbox has no IMAP server, done once none is left (the
        # later migrations first: a refusal inside a longer downgrade is not undone on SQLite).
        await downgrade(database, "0013_optional_servers")
        with pytest.raises(RuntimeError, match="no IMAP settings"):
            await downgrade(database, "0008_oauth_resilience")
        async with database.transaction() as conn:
            await conn.execute(mailboxes.delete().where(mailboxes.c.id == "mbx_new"))
        await downgrade(database, "0008_oauth_resilience")
        assert await current_revision(database) == "0008_oauth_resilience"
        async with database.connect() as conn:
            kept = (
                await conn.execute(select(mailboxes.c.imap_host).where(mailboxes.c.id == "mbx_old"))
            ).one()
        assert kept.imap_host == "imap.example.com"
    finally:
        await database.aclose()


async def test_a_mailbox_without_imap_is_stored_read_and_refused_clearly(
    services: Services, tenant: TenantHandle, tenant_client: httpx.AsyncClient
):
    mailbox = await services.mailboxes.create(tenant.id, without_imap())
    loaded = await services.mailboxes.get(tenant.id, mailbox.id)
    assert loaded.imap is None and loaded.imap_username == "nobody@example.com"
    with pytest.raises(ImapSettingsMissingError):
        loaded.require_imap()

    body = (await tenant_client.get(f"/v1/mailboxes/{mailbox.id}")).json()
    assert body["imap"] is None and body["email"] == "nobody@example.com"

    # the connection test signs in over IMAP: a documented 422, nothing recorded as a failure
    response = await tenant_client.post(f"/v1/mailboxes/{mailbox.id}/test")
    assert response.status_code == 422
    assert response.json()["error"] == "imap_not_configured" and "imap" in response.json()["hint"]
    assert (await services.mailboxes.get(tenant.id, mailbox.id)).health.status is MailboxStatus.PENDING

    # the IMAP connector refuses at connect (the watcher records it as a person's to fix)
    connector = ImapConnector(loaded)
    with pytest.raises(ImapSettingsMissingError):
        await connector.connect()

    # giving it IMAP settings through the API makes it an ordinary IMAP mailbox again
    patched = await tenant_client.patch(
        f"/v1/mailboxes/{mailbox.id}",
        json={"imap": {"host": "imap.example.com", "port": 993, "security": "ssl"}},
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["imap"]["host"] == "imap.example.com"
    assert (await services.mailboxes.get(tenant.id, mailbox.id)).imap == ServerSettings(
        "imap.example.com", 993, Security.SSL
    )


async def test_the_api_still_requires_imap_settings_to_create_a_mailbox(tenant_client: httpx.AsyncClient):
    response = await tenant_client.post(
        "/v1/mailboxes", json={"email": "x@example.com", "auth_method": "password", "password": "pw"}
    )
    assert response.status_code == 422 and "imap" in response.text


async def test_health_goes_through_the_service_and_stays_in_its_tenant(
    services: Services, tenant: TenantHandle
):
    mailbox = await services.mailboxes.create(tenant.id, without_imap("h@example.com"))
    heard: list[int] = []
    services.mailboxes.on_change(lambda: heard.append(1))
    at = datetime.now(UTC)
    recorded = await services.mailboxes.record_health(
        tenant.id, mailbox.id, status=MailboxStatus.CONNECTED, error=None, at=at
    )
    assert recorded.health.status is MailboxStatus.CONNECTED and recorded.health.last_success_at == at
    assert heard == []  # health is not something a watcher watches: no reconcile for it
    other = await create_tenant(services)
    with pytest.raises(NotFoundError):  # another tenant's mailbox is not there for this tenant
        await services.mailboxes.record_health(
            other.id, mailbox.id, status=MailboxStatus.ERROR, error="x", at=at
        )
    assert heard == []
    assert (await services.mailboxes.get(tenant.id, mailbox.id)).health.status is MailboxStatus.CONNECTED
