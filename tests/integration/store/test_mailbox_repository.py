"""Repository behaviour the API does not show: token compare-and-swap, health, cascades."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mailport.bootstrap import Services
from mailport.crypto import Secret
from mailport.errors import NotFoundError
from mailport.mailboxes.models import (
    AuthMethod,
    MailboxStatus,
    NewMailbox,
    OAuthGrant,
    Security,
    ServerSettings,
)

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def oauth_mailbox(email: str = "o@example.com") -> NewMailbox:
    return NewMailbox(
        email=email, auth_method=AuthMethod.OAUTH2, imap=ServerSettings("imap.gmail.com", 993, Security.SSL)
    )


async def test_token_refresh_is_compare_and_swap(services: Services):
    tenant, _ = await services.tenants.create_tenant("acme")
    mailbox = await services.mailboxes.create(tenant.id, oauth_mailbox())
    repo = services.mailboxes.repository
    first = OAuthGrant(
        provider="google", access_token=Secret("a1"), refresh_token=Secret("r1"), expires_at=T0
    )
    assert await repo.save_oauth_tokens(mailbox.id, first, expected_version=0, now=T0)
    second = OAuthGrant(
        provider="google", access_token=Secret("a2"), refresh_token=Secret("r1"), expires_at=T0
    )
    assert not await repo.save_oauth_tokens(mailbox.id, second, expected_version=0, now=T0)  # lost the race
    loaded = await repo.get_by_id(mailbox.id)
    assert loaded.token_version == 1 and loaded.oauth is not None
    assert loaded.oauth.access_token == Secret("a1") and loaded.oauth.expires_at == T0
    assert await repo.save_oauth_tokens(mailbox.id, second, expected_version=1, now=T0)
    assert (await repo.get_by_id(mailbox.id)).token_version == 2


async def test_health_counts_errors_in_a_24_hour_window(services: Services):
    tenant, _ = await services.tenants.create_tenant("acme")
    mailbox = await services.mailboxes.create(tenant.id, oauth_mailbox())
    repo = services.mailboxes.repository
    for minutes in (0, 10, 20):
        health = (
            await repo.record_health(
                mailbox.id, status=MailboxStatus.ERROR, error="boom", at=T0 + timedelta(minutes=minutes)
            )
        ).health
    assert (
        health.error_count_24h == 3 and health.last_error == "boom" and health.status is MailboxStatus.ERROR
    )
    ok = (
        await repo.record_health(
            mailbox.id, status=MailboxStatus.CONNECTED, error=None, at=T0 + timedelta(hours=1)
        )
    ).health
    assert ok.error_count_24h == 3 and ok.last_error is None and ok.last_success_at == T0 + timedelta(hours=1)
    later = (
        await repo.record_health(
            mailbox.id, status=MailboxStatus.ERROR, error="again", at=T0 + timedelta(hours=25)
        )
    ).health
    assert later.error_count_24h == 1 and later.last_tested_at == T0 + timedelta(hours=25)
    healed = (
        await repo.record_health(
            mailbox.id, status=MailboxStatus.CONNECTED, error=None, at=T0 + timedelta(hours=50)
        )
    ).health
    assert healed.error_count_24h == 0


async def test_deleting_a_tenant_deletes_its_mailboxes(services: Services):
    tenant, _ = await services.tenants.create_tenant("acme")
    other, _ = await services.tenants.create_tenant("globex")
    mine = await services.mailboxes.create(tenant.id, oauth_mailbox())
    theirs = await services.mailboxes.create(other.id, oauth_mailbox())
    await services.tenants.repository.delete(tenant.id)
    with pytest.raises(NotFoundError):
        await services.mailboxes.repository.get_by_id(mine.id)
    assert (await services.mailboxes.repository.get_by_id(theirs.id)).tenant_id == other.id
    all_ids = [m.id for m in await services.mailboxes.repository.page_all()]
    assert all_ids == [theirs.id]
