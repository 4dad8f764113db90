"""The mailbox service is the one writer of mailboxes, and it tells the orchestrator about the
writes that matter to a watcher (and only those)."""

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
    RefreshedTokens,
    Security,
    ServerSettings,
)

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
GMAIL = ServerSettings("imap.gmail.com", 993, Security.SSL)


def _grant(access: str) -> OAuthGrant:
    return OAuthGrant(
        provider="google",
        access_token=Secret(access),
        refresh_token=Secret("r1"),
        expires_at=T0 + timedelta(hours=1),
        connected_email="o@example.com",
    )


async def test_watched_changes_notify_and_health_and_tokens_do_not(services: Services):
    tenant, _ = await services.tenants.create_tenant("acme")
    heard: list[int] = []
    unlisten = services.mailboxes.on_change(lambda: heard.append(1))
    try:
        mailbox = await services.mailboxes.create(
            tenant.id,
            NewMailbox(email="o@example.com", auth_method=AuthMethod.OAUTH2, imap=GMAIL, oauth=_grant("a1")),
        )
        assert len(heard) == 1

        await services.mailboxes.record_health(
            tenant.id, mailbox.id, status=MailboxStatus.CONNECTED, error=None, at=T0
        )
        version = (await services.mailboxes.get(tenant.id, mailbox.id)).token_version
        assert await services.mailboxes.claim_token_refresh(
            mailbox.id, expected_version=version, until=T0 + timedelta(minutes=1), now=T0
        )
        assert await services.mailboxes.record_refresh(
            mailbox.id,
            expected_version=version,
            tokens=RefreshedTokens(
                Secret("a2"), Secret("r2"), T0 + timedelta(hours=2), "https://mail.google.com/", T0
            ),
        )
        assert not await services.mailboxes.record_refresh(  # compare-and-swap: the version moved
            mailbox.id,
            expected_version=version,
            tokens=RefreshedTokens(Secret("a3"), None, None),
        )
        await services.mailboxes.mark_reauth_required(mailbox.id, error="invalid_grant")
        assert len(heard) == 1  # health and tokens are not what a watcher watches
        stored = await services.mailboxes.get(tenant.id, mailbox.id)
        assert stored.oauth is not None and stored.oauth.access_token == Secret("a2")
        assert stored.token_version == version + 1 and stored.health.status is MailboxStatus.REAUTH_REQUIRED

        reconnected = await services.mailboxes.store_grant(
            tenant.id, mailbox.id, _grant("a4"), imap=GMAIL, smtp=None
        )
        assert len(heard) == 2
        assert reconnected.health.status is MailboxStatus.PENDING and reconnected.oauth is not None
        assert reconnected.oauth.access_token == Secret("a4") and reconnected.auth_method is AuthMethod.OAUTH2

        dropped = await services.mailboxes.drop_grant(tenant.id, mailbox.id, reason="OAuth disconnected")
        assert len(heard) == 3
        assert dropped.oauth is None and dropped.health.status is MailboxStatus.REAUTH_REQUIRED
        assert dropped.health.last_error == "OAuth disconnected"
    finally:
        unlisten()


async def test_health_of_another_tenants_mailbox_is_not_found(services: Services):
    mine, _ = await services.tenants.create_tenant("mine")
    theirs, _ = await services.tenants.create_tenant("theirs")
    mailbox = await services.mailboxes.create(
        theirs.id, NewMailbox(email="t@example.com", auth_method=AuthMethod.OAUTH2, imap=GMAIL)
    )
    with pytest.raises(NotFoundError):
        await services.mailboxes.record_health(
            mine.id, mailbox.id, status=MailboxStatus.ERROR, error="x", at=T0
        )
    unchanged = await services.mailboxes.get(theirs.id, mailbox.id)
    assert unchanged.health.status is MailboxStatus.PENDING and unchanged.health.last_error is None
