"""The wired OAuth services, as the composition root will build them."""

from __future__ import annotations

import pytest

from mailport.errors import OAuthProvidersFileError
from mailport.oauth import build_oauth
from tests.integration.oauth.test_tokens import refresh_count, seed


async def test_build_from_settings_and_refresh_ahead_setting(
    settings, key_ring, token_store, state_store, idp
):
    settings.oauth_refresh_ahead_seconds = 30
    services = build_oauth(settings, key_ring, token_store=token_store, state_store=state_store)
    try:
        assert services.configured_providers() == {"google", "microsoft"}
        assert services.code_flow.redirect_uri("google") == (
            "https://mailport.example.test/v1/oauth/google/callback"
        )
        mailbox_id, email, tokens = await seed(token_store, idp, "google", expires_in=120)
        assert await services.tokens.get_access_token(mailbox_id) == tokens.access_token  # 120 s > 30 s
        assert refresh_count(idp, email) == 0
    finally:
        await services.aclose()


def test_a_bad_providers_file_fails_at_startup(settings, key_ring, token_store, state_store, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"google": {"imap": {"security": "tls-please"}}}')
    settings.oauth_providers_file = bad
    with pytest.raises(OAuthProvidersFileError, match="imap.security"):
        build_oauth(settings, key_ring, token_store=token_store, state_store=state_store)
