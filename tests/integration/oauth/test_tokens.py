"""The token manager against the local authorization server and a real SQLite token table."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from datetime import timedelta

import httpx
import pytest

from mailport.clock import utc_now as utcnow
from mailport.crypto import Secret
from mailport.errors import OAuthInvalidGrantError, OAuthUnavailableError, ReauthRequiredError
from mailport.metrics import REGISTRY
from mailport.oauth import InstanceApps, OAuthClient, ProviderRegistry, TokenManager, TokenSet
from tests.conftest import issue_token
from tests.integration.oauth.sqlite_store import SQLiteTokenStore, open_engine
from tests.mailstack.dovecot import free_port
from tests.mailstack.idp import MockIdP


def refresh_count(idp: MockIdP, email: str) -> int:
    response = httpx.get(f"{idp.url}/_test/stats", params={"email": email})
    return int(response.json()["refresh_grants"])


async def seed(
    store: SQLiteTokenStore, idp: MockIdP, provider: str, *, expires_in: int = 60
) -> tuple[str, str, TokenSet]:
    """A mailbox with tokens issued by the authorization server; returns (mailbox_id, email, tokens)."""
    email = f"m{uuid.uuid4().hex[:10]}@example.test"
    issued = issue_token(idp, email, expires_in=expires_in)
    tokens = TokenSet(
        access_token=Secret(str(issued["access_token"])),
        refresh_token=Secret(str(issued["refresh_token"])),
        expires_at=utcnow() + timedelta(seconds=expires_in),
        scope=str(issued["scope"]),
    )
    mailbox_id = f"mb_{uuid.uuid4().hex[:8]}"
    await store.create(mailbox_id, provider, tokens, tenant_id="t1")
    return mailbox_id, email, tokens


@pytest.fixture
def manager(token_store, oauth_client, registry, apps) -> TokenManager:
    return TokenManager(token_store, client=oauth_client, registry=registry, apps=apps)


async def test_google_style_refresh_keeps_the_refresh_token(manager, token_store, idp):
    mailbox_id, email, old = await seed(token_store, idp, "google")
    token = await manager.get_access_token(mailbox_id)
    stored = await token_store.load(mailbox_id)
    assert token != old.access_token and stored.tokens.access_token == token
    assert stored.tokens.refresh_token == old.refresh_token
    assert stored.version == 1
    assert stored.tokens.expires_at is not None
    assert stored.tokens.expires_at > utcnow() + timedelta(minutes=50)
    assert refresh_count(idp, email) == 1
    assert await manager.get_access_token(mailbox_id) == token  # fresh now: no second refresh
    assert refresh_count(idp, email) == 1


async def test_microsoft_style_refresh_stores_the_rotated_refresh_token(
    manager, token_store, idp, oauth_client, registry, apps
):
    mailbox_id, email, old = await seed(token_store, idp, "microsoft")
    await manager.get_access_token(mailbox_id)
    stored = await token_store.load(mailbox_id)
    assert stored.tokens.refresh_token is not None and stored.tokens.refresh_token != old.refresh_token
    assert old.refresh_token is not None
    app = await apps.resolve("microsoft", "t1")
    with pytest.raises(OAuthInvalidGrantError):  # the old one is spent: only the stored one works
        await oauth_client.refresh(registry.get("microsoft"), app, old.refresh_token)
    # and the stored one does work on the next refresh
    refreshed = await manager.force_refresh(mailbox_id, rejected=stored.tokens.access_token)
    assert (await token_store.load(mailbox_id)).tokens.access_token == refreshed
    assert refresh_count(idp, email) == 2


def _refreshes(result: str) -> float:
    return REGISTRY.get_sample_value("mailport_token_refreshes_total", {"result": result}) or 0.0


@pytest.mark.parametrize("provider", ["google", "microsoft"])
async def test_twenty_concurrent_requests_cause_exactly_one_refresh(manager, token_store, idp, provider):
    mailbox_id, email, _ = await seed(token_store, idp, provider)
    before = _refreshes("ok")
    tokens = await asyncio.gather(*(manager.get_access_token(mailbox_id) for _ in range(20)))
    assert len({t.reveal() for t in tokens}) == 1
    assert refresh_count(idp, email) == 1
    assert _refreshes("ok") == before + 1  # a refresh ahead of expiry is counted too
    assert (await token_store.load(mailbox_id)).version == 1


async def test_two_processes_sharing_the_database_refresh_once(
    sqlite_url, key_ring, idp, registry, apps, token_store
):
    """Two managers with their own engine and HTTP client (as two workers would) on one database."""
    mailbox_id, email, _ = await seed(token_store, idp, "microsoft", expires_in=-1)
    engines = [await open_engine(sqlite_url) for _ in range(2)]
    clients = [httpx.AsyncClient(timeout=10) for _ in range(2)]
    try:
        managers = [
            TokenManager(SQLiteTokenStore(e, key_ring), client=OAuthClient(c), registry=registry, apps=apps)
            for e, c in zip(engines, clients, strict=True)
        ]
        tokens = await asyncio.gather(*(managers[i % 2].get_access_token(mailbox_id) for i in range(20)))
    finally:
        for client in clients:
            await client.aclose()
        for engine in engines:
            await engine.dispose()
    assert len({t.reveal() for t in tokens}) == 1
    assert refresh_count(idp, email) == 1
    stored = await token_store.load(mailbox_id)
    assert stored.version == 1 and stored.reauth_error is None


async def test_revoked_refresh_token_needs_reauth_and_other_mailboxes_go_on(
    manager, token_store, idp, oauth_client, registry, apps
):
    dead, dead_email, dead_tokens = await seed(token_store, idp, "google", expires_in=-1)
    alive, alive_email, _ = await seed(token_store, idp, "google", expires_in=-1)
    assert dead_tokens.refresh_token is not None
    app = await apps.resolve("google", "t1")
    assert await oauth_client.revoke(registry.get("google"), app, dead_tokens.refresh_token)

    invalid_before = _refreshes("invalid_grant")
    results = await asyncio.gather(
        manager.get_access_token(dead), manager.get_access_token(alive), return_exceptions=True
    )
    assert _refreshes("invalid_grant") == invalid_before + 1
    assert isinstance(results[0], ReauthRequiredError)
    assert isinstance(results[1], Secret)
    assert results[0].code == "reauth_required" and "invalid_grant" in (results[0].server_said or "")
    stored = await token_store.load(dead)
    assert stored.reauth_error is not None and "invalid_grant" in stored.reauth_error
    assert stored.refresh_lease_until is None
    assert (await token_store.load(alive)).reauth_error is None

    with pytest.raises(ReauthRequiredError):  # remembered: the provider is not asked again
        await manager.get_access_token(dead)
    assert refresh_count(idp, dead_email) == 0 and refresh_count(idp, alive_email) == 1


async def test_unreachable_provider_is_retriable_and_never_reauth(
    settings, tmp_path, token_store, idp, oauth_client
):
    closed = f"http://127.0.0.1:{free_port()}"
    path = tmp_path / "down.json"
    path.write_text(json.dumps({"google": {"token_endpoint": f"{closed}/token"}}))
    settings.oauth_providers_file = path
    registry = ProviderRegistry.from_settings(settings)
    manager = TokenManager(
        token_store, client=oauth_client, registry=registry, apps=InstanceApps(registry, settings)
    )

    expired, _, _ = await seed(token_store, idp, "google", expires_in=-1)
    with pytest.raises(OAuthUnavailableError) as caught:
        await manager.get_access_token(expired)
    assert not isinstance(caught.value, ReauthRequiredError)
    stored = await token_store.load(expired)
    assert stored.reauth_error is None and stored.refresh_lease_until is None and stored.version == 0

    # due for refresh but still valid: the current token keeps working meanwhile
    due, _, tokens = await seed(token_store, idp, "google", expires_in=120)
    assert await manager.get_access_token(due) == tokens.access_token


async def test_force_refresh_after_a_rejection_refreshes_once(manager, token_store, idp):
    mailbox_id, email, _ = await seed(token_store, idp, "google", expires_in=3600)
    current = await manager.get_access_token(mailbox_id)
    assert refresh_count(idp, email) == 0
    results = await asyncio.gather(*(manager.force_refresh(mailbox_id, rejected=current) for _ in range(5)))
    assert len({r.reveal() for r in results}) == 1 and results[0] != current
    assert refresh_count(idp, email) == 1


async def test_tokens_never_reach_the_logs(manager, token_store, idp, caplog):
    caplog.set_level(logging.DEBUG)
    mailbox_id, _, old = await seed(token_store, idp, "microsoft")
    new = await manager.get_access_token(mailbox_id)
    stored = await token_store.load(mailbox_id)
    secrets = [old.access_token, old.refresh_token, new, stored.tokens.refresh_token]
    for secret in secrets:
        assert secret is not None and secret.reveal() not in caplog.text
    assert "refreshed" in caplog.text
    assert old.access_token.reveal() not in repr(stored)


async def test_disconnect_revokes_where_the_provider_can(
    manager, token_store, idp, oauth_client, registry, apps
):
    mailbox_id, _, tokens = await seed(token_store, idp, "google")
    assert await manager.revoke(mailbox_id) is True
    assert tokens.refresh_token is not None
    with pytest.raises(OAuthInvalidGrantError):
        app = await apps.resolve("google", "t1")
        await oauth_client.refresh(registry.get("google"), app, tokens.refresh_token)
    microsoft_mailbox, _, _ = await seed(token_store, idp, "microsoft")
    assert await manager.revoke(microsoft_mailbox) is False  # Microsoft has no revocation endpoint


async def test_a_short_lived_token_is_refreshed_at_half_its_lifetime_not_on_every_use(
    token_store, oauth_client, registry, apps, idp
):
    """A 300 s token with the default 300 s refresh-ahead window was refreshed on every use (and
    each refresh rotated Microsoft's refresh token); the window is capped at half the lifetime."""
    now = [utcnow()]
    manager = TokenManager(
        token_store,
        client=oauth_client,
        registry=registry,
        apps=apps,
        refresh_ahead=timedelta(seconds=300),
        clock=lambda: now[0],
    )
    email = f"m{uuid.uuid4().hex[:10]}@example.test"
    issued = issue_token(idp, email, expires_in=300)
    tokens = TokenSet(
        access_token=Secret(str(issued["access_token"])),
        refresh_token=Secret(str(issued["refresh_token"])),
        expires_at=now[0] + timedelta(seconds=300),
        issued_at=now[0],
    )
    mailbox_id = f"mb_{uuid.uuid4().hex[:8]}"
    await token_store.create(mailbox_id, "microsoft", tokens, tenant_id="t1")
    assert manager.refresh_window(tokens) == timedelta(seconds=150)
    for _ in range(5):
        assert await manager.get_access_token(mailbox_id) == tokens.access_token
    now[0] += timedelta(seconds=140)
    assert await manager.get_access_token(mailbox_id) == tokens.access_token
    assert refresh_count(idp, email) == 0
    now[0] += timedelta(seconds=20)  # 160 s in: within the last half of its life
    refreshed = await manager.get_access_token(mailbox_id)
    assert refreshed != tokens.access_token and refresh_count(idp, email) == 1
    stored = await token_store.load(mailbox_id)
    assert stored.tokens.issued_at is not None  # recorded, so the next window is bounded too


def test_the_refresh_window_never_exceeds_half_the_lifetime(manager):
    start = utcnow()
    for lifetime, window in ((300, 150), (60, 30), (3600, 300), (0, 0)):
        tokens = TokenSet(
            access_token=Secret("a"),
            refresh_token=None,
            expires_at=start + timedelta(seconds=lifetime),
            issued_at=start,
        )
        assert manager.refresh_window(tokens) == timedelta(seconds=window)
