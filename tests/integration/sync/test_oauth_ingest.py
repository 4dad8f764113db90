"""OAuth mailboxes: the watcher logs in with XOAUTH2 using the token manager's tokens (Dovecot
validates them at the local authorization server), and a dead grant puts the mailbox in
``reauth_required`` once instead of retrying."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from mailport.bootstrap import Services
from mailport.config import Settings
from mailport.crypto import Secret
from mailport.mailboxes.models import AuthMethod, Mailbox, NewMailbox, OAuthGrant, Security, ServerSettings
from tests.conftest import issue_token
from tests.fixtures.api import make_settings
from tests.integration.oauth.conftest import idp_overrides
from tests.integration.sync.conftest import all_events, make_message, wait_for
from tests.mailstack.dovecot import Dovecot
from tests.mailstack.idp import MockIdP


@pytest.fixture
def settings(
    fresh_database_url: str, tmp_path: Path, secret_key: str, idp: MockIdP, dovecot: Dovecot
) -> Settings:
    path = tmp_path / "providers.json"
    path.write_text(json.dumps(idp_overrides(idp)))
    settings = make_settings(fresh_database_url, tmp_path / "var", secret_key)
    settings.oauth_providers_file = path
    settings.google_client_id = "test-client"
    settings.google_client_secret = SecretStr("test-secret")
    settings.mail_ca_file = Path(dovecot.ca_file)
    settings.allowed_hosts = ["127.0.0.1"]  # the bed's Dovecot and IdP: the operator allows exactly that
    return settings


async def _oauth_mailbox(
    services: Services, dovecot: Dovecot, email: str, access: str, refresh: str, expires_at: datetime
) -> Mailbox:
    tenant, _ = await services.tenants.create_tenant("oauth-ingest")
    return await services.mailboxes.create(
        tenant.id,
        NewMailbox(
            email=email,
            auth_method=AuthMethod.OAUTH2,
            imap=ServerSettings("127.0.0.1", dovecot.imaps_port, Security.SSL),
            oauth=OAuthGrant(
                provider="google",
                access_token=Secret(access),
                refresh_token=Secret(refresh),
                expires_at=expires_at,
                scopes=("https://mail.google.com/",),
                connected_email=email,
            ),
        ),
    )


async def _live_token_mailbox(
    services: Services, dovecot: Dovecot, email: str, token: dict[str, object]
) -> Mailbox:
    """A mailbox holding a token just issued by the local authorization server (valid an hour)."""
    return await _oauth_mailbox(
        services,
        dovecot,
        email,
        str(token["access_token"]),
        str(token["refresh_token"]),
        datetime.now(UTC) + timedelta(hours=1),
    )


async def test_an_oauth_mailbox_is_watched_with_xoauth2(
    services: Services, dovecot: Dovecot, idp: MockIdP, oauth_user: tuple[str, dict[str, object]]
) -> None:
    email, token = oauth_user
    mailbox = await _live_token_mailbox(services, dovecot, email, token)
    from mailport.sync import Orchestrator

    orchestrator = Orchestrator(services, reconcile_interval=0.2)
    await orchestrator.start()
    try:
        await wait_for(
            lambda: all_events(services, mailbox_id=mailbox.id, type="mailbox.connected"), timeout=10
        )
        await asyncio.to_thread(dovecot.deliver, email, make_message("via oauth"))
        got = await wait_for(
            lambda: all_events(services, mailbox_id=mailbox.id, type="message.received"), timeout=10
        )
    finally:
        await orchestrator.stop()
    assert got[0].payload["subject"] == "via oauth"


async def test_a_dead_grant_means_reauth_required_once(
    services: Services, dovecot: Dovecot, idp: MockIdP
) -> None:
    email = "dead-grant@example.test"
    expired = issue_token(idp, email, expires_in=-1)
    mailbox = await _oauth_mailbox(
        services,
        dovecot,
        email,
        str(expired["access_token"]),
        "no-such-refresh-token",
        datetime.now(UTC) - timedelta(minutes=1),
    )
    from mailport.sync import Orchestrator, WatcherOptions

    orchestrator = Orchestrator(
        services, reconcile_interval=0.2, options=WatcherOptions(backoff_base=0.1, backoff_cap=0.2)
    )
    await orchestrator.start()
    try:
        events = await wait_for(
            lambda: all_events(services, mailbox_id=mailbox.id, type="mailbox.reauth_required"), timeout=10
        )
        await asyncio.sleep(1.5)
        assert len(await all_events(services, mailbox_id=mailbox.id, type="mailbox.reauth_required")) == 1
        assert orchestrator.watchers[mailbox.id].status.consecutive_failures == 1
    finally:
        await orchestrator.stop()
    stored = await services.mailboxes.repository.get_by_id(mailbox.id)
    assert stored.health.status.value == "reauth_required"
    assert events[0].payload["error"] in ("reauth_required", "oauth_invalid_grant")


async def test_an_outage_of_the_authorization_server_is_temporary(
    services: Services,
    dovecot: Dovecot,
    idp: MockIdP,
    idp_outage: Callable[[bool], None],
    oauth_user: tuple[str, dict[str, object]],
) -> None:
    """Introspection and token endpoint down: Dovecot answers NO [UNAVAILABLE]. The mailbox is in
    `error` (never `reauth_required`), retried within seconds, and connects once the server is back."""
    email, token = oauth_user
    mailbox = await _live_token_mailbox(services, dovecot, email, token)
    from mailport.sync import Orchestrator, WatcherOptions

    orchestrator = Orchestrator(
        services,
        reconcile_interval=0.2,
        options=WatcherOptions(backoff_base=0.1, backoff_cap=0.5, auth_retry_seconds=1800),
    )
    idp_outage(True)
    await orchestrator.start()
    try:
        errors = await wait_for(
            lambda: all_events(services, mailbox_id=mailbox.id, type="mailbox.error"), timeout=10
        )
        assert "[UNAVAILABLE]" in errors[0].payload["detail"]
        # retried with backoff, not parked for auth_retry_seconds
        await wait_for(lambda: _failures_at_least(orchestrator, mailbox.id, 3), timeout=10)
        stored = await services.mailboxes.repository.get_by_id(mailbox.id)
        assert stored.health.status.value == "error"
        idp_outage(False)
        await wait_for(
            lambda: all_events(services, mailbox_id=mailbox.id, type="mailbox.connected"), timeout=10
        )
    finally:
        idp_outage(False)
        await orchestrator.stop()
    assert not await all_events(services, mailbox_id=mailbox.id, type="mailbox.reauth_required")
    stored = await services.mailboxes.repository.get_by_id(mailbox.id)
    assert stored.health.status.value == "connected"
    assert idp.state.refresh_grants.get(email, 0) == 0  # [UNAVAILABLE] is no reason to refresh


async def _failures_at_least(orchestrator: object, mailbox_id: str, count: int) -> bool:
    watcher = orchestrator.watchers[mailbox_id]  # type: ignore[attr-defined]
    return bool(watcher.status.consecutive_failures >= count)


async def test_a_mailbox_wrongly_in_reauth_required_recovers_when_a_refresh_succeeds(
    services: Services, dovecot: Dovecot, idp: MockIdP
) -> None:
    """Marked `reauth_required` by a failure that was only temporary (an older release did so on
    [UNAVAILABLE]): the grant is alive, so the watcher's token request refreshes and connects."""
    from mailport.mailboxes.models import MailboxStatus
    from mailport.sync import Orchestrator, WatcherOptions

    email = f"wrongly-marked-{uuid.uuid4().hex[:8]}@example.test"
    token = issue_token(idp, email)
    mailbox = await _live_token_mailbox(services, dovecot, email, token)
    await services.mailboxes.repository.record_health(
        mailbox.id,
        status=MailboxStatus.REAUTH_REQUIRED,
        error="[oauth_token_rejected] NO [UNAVAILABLE] Temporary authentication failure.",
        at=datetime.now(UTC),
    )
    orchestrator = Orchestrator(
        services, reconcile_interval=0.2, options=WatcherOptions(backoff_base=0.1, backoff_cap=0.2)
    )
    await orchestrator.start()
    try:
        await wait_for(
            lambda: all_events(services, mailbox_id=mailbox.id, type="mailbox.connected"), timeout=10
        )
    finally:
        await orchestrator.stop()
    stored = await services.mailboxes.repository.get_by_id(mailbox.id)
    assert stored.health.status.value == "connected"
    assert idp.state.refresh_grants[email] == 1  # one refresh proved the grant alive
