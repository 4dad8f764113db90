"""Linking a report's original Message-ID to the send, on SQLite and PostgreSQL: one query for a
batch, case-insensitive, the tenant's own sends only, the report's mailbox first."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event

from mailport.bootstrap import Services
from mailport.clock import utc_now
from mailport.config import Settings
from mailport.crypto import Secret
from mailport.mailboxes.models import AuthMethod, Mailbox, NewMailbox, Security, ServerSettings
from mailport.sending.bounce_links import find_sends, message_id_key
from tests.fixtures.sends import insert_send


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The mailboxes name a loopback server (never connected to here): the operator allows it."""
    return settings.model_copy(update={"allowed_hosts": ["127.0.0.1"]})


async def _mailbox(services: Services, tenant_id: str, email: str) -> Mailbox:
    return await services.mailboxes.create(
        tenant_id,
        NewMailbox(
            email=email,
            auth_method=AuthMethod.PASSWORD,
            imap=ServerSettings("127.0.0.1", 993, Security.NONE),
            password=Secret("not used here"),
        ),
    )


def test_message_id_key_is_the_bare_lower_cased_id() -> None:
    assert message_id_key(" <Send-1@Mailport.Example.ORG> ") == "send-1@mailport.example.org"
    assert message_id_key("abc@x") == "abc@x"
    assert message_id_key("<>") == ""


async def test_a_batch_is_linked_in_one_query_within_the_tenant(services: Services) -> None:
    tenant, _ = await services.tenants.create_tenant("links")
    other, _ = await services.tenants.create_tenant("someone else")
    here = await _mailbox(services, tenant.id, "support@example.com")
    there = await _mailbox(services, tenant.id, "sales@example.com")
    elsewhere = await _mailbox(services, other.id, "support@example.org")
    now = utc_now()
    async with services.database.transaction() as conn:
        own = await insert_send(conn, tenant_id=tenant.id, mailbox_id=here.id, message_id="One@Example.com")
        # the same Message-ID sent from another mailbox of the tenant, later: the report's
        # mailbox still wins
        await insert_send(
            conn,
            tenant_id=tenant.id,
            mailbox_id=there.id,
            message_id="one@example.com",
            created_at=now + timedelta(minutes=5),
        )
        sibling = await insert_send(
            conn, tenant_id=tenant.id, mailbox_id=there.id, message_id="two@example.com"
        )
        await insert_send(conn, tenant_id=other.id, mailbox_id=elsewhere.id, message_id="three@example.com")
    statements: list[str] = []

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        if "outbound_messages" in statement:
            statements.append(statement)

    engine = services.database.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        async with services.database.connect() as conn:
            found = await find_sends(
                conn,
                tenant_id=tenant.id,
                mailbox_id=here.id,
                message_ids=["<ONE@example.com>", "two@example.com", "three@example.com", None, "nope@x"],
            )
    finally:
        event.remove(engine, "before_cursor_execute", count)
    # another tenant's send is never linked, whatever the Message-ID
    assert found == {"one@example.com": own, "two@example.com": sibling}
    assert len(statements) == 1


async def test_a_send_that_reached_the_server_wins_then_the_newest(services: Services) -> None:
    tenant, _ = await services.tenants.create_tenant("links")
    box = await _mailbox(services, tenant.id, "support@example.com")
    now = utc_now()
    async with services.database.transaction() as conn:
        sent = await insert_send(
            conn, tenant_id=tenant.id, mailbox_id=box.id, message_id="re@example.com", state="sent"
        )
        # a later raw send reusing the Message-ID, cancelled before it left
        await insert_send(
            conn,
            tenant_id=tenant.id,
            mailbox_id=box.id,
            message_id="re@example.com",
            state="cancelled",
            created_at=now + timedelta(minutes=1),
        )
        await insert_send(
            conn,
            tenant_id=tenant.id,
            mailbox_id=box.id,
            message_id="twice@example.com",
            created_at=now - timedelta(days=1),
        )
        newest = await insert_send(
            conn, tenant_id=tenant.id, mailbox_id=box.id, message_id="twice@example.com", created_at=now
        )
    async with services.database.connect() as conn:
        found = await find_sends(
            conn, tenant_id=tenant.id, mailbox_id=box.id, message_ids=["re@example.com", "twice@example.com"]
        )
    assert found == {"re@example.com": sent, "twice@example.com": newest}


async def test_many_ids_and_none_at_all(services: Services) -> None:
    tenant, _ = await services.tenants.create_tenant("links")
    box = await _mailbox(services, tenant.id, "support@example.com")
    async with services.database.transaction() as conn:
        ids = {
            f"bulk-{i}@example.com": await insert_send(
                conn, tenant_id=tenant.id, mailbox_id=box.id, message_id=f"bulk-{i}@example.com"
            )
            for i in range(0, 1200, 7)
        }
    async with services.database.connect() as conn:
        found = await find_sends(
            conn,
            tenant_id=tenant.id,
            mailbox_id=box.id,
            message_ids=[f"bulk-{i}@example.com" for i in range(1200)],
        )
        assert await find_sends(conn, tenant_id=tenant.id, mailbox_id=box.id, message_ids=[]) == {}
    assert found == ids
