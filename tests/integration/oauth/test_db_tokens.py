"""The token manager on the real database adapter (mailboxes.token_version + refresh lease),
on SQLite and PostgreSQL, including two service instances sharing one database."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from mailport.bootstrap import Services, build
from mailport.clock import utc_now as utcnow
from mailport.crypto import Secret
from mailport.errors import ReauthRequiredError
from mailport.mailboxes.models import (
    AuthMethod,
    MailboxStatus,
    NewMailbox,
    OAuthGrant,
    Security,
    ServerSettings,
)
from tests.conftest import issue_token
from tests.integration.oauth.test_tokens import refresh_count


async def oauth_mailbox(services: Services, tenant_id: str, idp, provider: str, *, expires_in: int = -1):  # type: ignore[no-untyped-def]
    email = f"d{uuid.uuid4().hex[:10]}@example.test"
    issued = issue_token(idp, email, expires_in=expires_in)
    grant = OAuthGrant(
        provider=provider,
        access_token=Secret(str(issued["access_token"])),
        refresh_token=Secret(str(issued["refresh_token"])),
        expires_at=utcnow() + timedelta(seconds=expires_in),
        scopes=tuple(str(issued["scope"]).split()),
        connected_email=email,
    )
    new = NewMailbox(
        email=email,
        auth_method=AuthMethod.OAUTH2,
        imap=ServerSettings("127.0.0.1", 993, Security.SSL),
        provider_id=provider,
        oauth=grant,
    )
    mailbox = await services.mailboxes.create(tenant_id, new)
    return mailbox, email, grant


async def test_twenty_concurrent_requests_in_two_instances_refresh_once(
    api_services, api_settings, api_tenant, idp
):
    mailbox, email, grant = await oauth_mailbox(api_services, api_tenant.id, idp, "microsoft")
    second = await build(api_settings, migrate=False)  # another worker on the same database
    try:
        managers = [api_services.oauth.oauth.tokens, second.oauth.oauth.tokens]
        tokens = await asyncio.gather(*(managers[i % 2].get_access_token(mailbox.id) for i in range(20)))
    finally:
        await second.aclose()
    assert len({t.reveal() for t in tokens}) == 1 and tokens[0] != grant.access_token
    assert refresh_count(idp, email) == 1
    stored = await api_services.mailboxes.get(api_tenant.id, mailbox.id)
    assert stored.token_version == 1
    assert stored.oauth is not None and stored.oauth.access_token == tokens[0]
    assert stored.oauth.refresh_token is not None and stored.oauth.refresh_token != grant.refresh_token


async def test_revoked_grant_marks_only_that_mailbox(api_services, api_tenant, idp):
    dead, _, dead_grant = await oauth_mailbox(api_services, api_tenant.id, idp, "google")
    alive, _, _ = await oauth_mailbox(api_services, api_tenant.id, idp, "google")
    oauth = api_services.oauth.oauth
    assert dead_grant.refresh_token is not None
    app = await oauth.apps.resolve("google", api_tenant.id)
    await oauth.client.revoke(oauth.registry.get("google"), app, dead_grant.refresh_token)

    outcome = await asyncio.gather(
        oauth.tokens.get_access_token(dead.id),
        oauth.tokens.get_access_token(alive.id),
        return_exceptions=True,
    )
    assert isinstance(outcome[0], ReauthRequiredError) and isinstance(outcome[1], Secret)
    dead_now = await api_services.mailboxes.get(api_tenant.id, dead.id)
    assert dead_now.health.status is MailboxStatus.REAUTH_REQUIRED
    assert dead_now.health.last_error is not None and "invalid_grant" in dead_now.health.last_error
    alive_now = await api_services.mailboxes.get(api_tenant.id, alive.id)
    assert alive_now.health.status is MailboxStatus.PENDING and alive_now.token_version == 1
