"""Authorization code + PKCE against the local authorization server (Google and Microsoft shapes)."""

from __future__ import annotations

import imaplib
import smtplib
from datetime import timedelta
from email.message import EmailMessage
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from mailport.clock import utc_now as utcnow
from mailport.errors import (
    OAuthDeniedError,
    OAuthInvalidGrantError,
    OAuthStateExpiredError,
    OAuthStateInvalidError,
    OAuthStateReplayedError,
)
from mailport.oauth import AuthorizationCodeFlow, StateCodec
from mailport.oauth.authcode import AuthorizationRequest
from tests.integration.oauth.conftest import PUBLIC_URL


async def through_browser(
    flow: AuthorizationCodeFlow, provider: str, request: AuthorizationRequest
) -> tuple[str, dict[str, str]]:
    """Open the start link as a browser would: the provider's URL and the browser's cookies."""
    assert request.authorization_url == f"{PUBLIC_URL}/v1/oauth/{provider}/start?" + urlencode(
        {"state": request.state}
    )
    started = await flow.begin(provider, state=request.state, cookies={})
    return started.provider_url, {started.cookie_name: started.cookie_value.reveal()}


async def follow_to_callback(authorization_url: str) -> dict[str, str]:
    """Play the browser: open the provider's page, return the redirect's query parameters."""
    async with httpx.AsyncClient() as browser:
        response = await browser.get(authorization_url)
    assert response.status_code in (302, 307), response.text
    location = response.headers["location"]
    assert location.startswith(f"{PUBLIC_URL}/v1/oauth/")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


@pytest.mark.parametrize("provider", ["google", "microsoft"])
async def test_full_code_flow_learns_the_address_and_returns_tokens(code_flow, provider):
    request = await code_flow.start(
        provider, tenant_id="t1", email="Bob@Example.test", mailbox_id="mb1", return_url="https://app/x"
    )
    provider_url, cookies = await through_browser(code_flow, provider, request)
    query = parse_qs(urlsplit(provider_url).query)
    assert query["code_challenge_method"] == ["S256"]
    assert query["login_hint"] == ["Bob@Example.test"]
    assert query["redirect_uri"] == [f"{PUBLIC_URL}/v1/oauth/{provider}/callback"]
    if provider == "google":
        assert query["access_type"] == ["offline"] and query["prompt"] == ["consent"]
        assert "https://mail.google.com/" in query["scope"][0].split()
    else:
        assert "/microsoft/organizations/" in provider_url  # MAILPORT_MICROSOFT_TENANT
        assert "offline_access" in query["scope"][0].split()
    assert 590 <= request.expires_in <= 600

    callback = await follow_to_callback(provider_url)
    assert callback["state"] == request.state
    account = await code_flow.complete(
        provider, state=callback["state"], code=callback["code"], cookies=cookies
    )

    assert account.email == "bob@example.test"
    assert account.state.tenant_id == "t1" and account.state.mailbox_id == "mb1"
    assert account.state.return_url == "https://app/x"
    assert account.tokens.refresh_token is not None
    assert account.tokens.expires_at is not None and account.tokens.expires_at > utcnow()
    assert account.imap.port == 993 and account.smtp is not None
    assert "***" in repr(account.tokens) and account.tokens.access_token.reveal() not in repr(account)


async def test_tokens_from_the_flow_log_in_to_imap_and_send_over_smtp(
    bed_providers_file, settings, oauth_client, key_ring, state_store, dovecot, smtp, tls_ctx
):
    from mailport.oauth import InstanceApps, ProviderRegistry

    settings.oauth_providers_file = bed_providers_file
    registry = ProviderRegistry.from_settings(settings)
    flow = AuthorizationCodeFlow(
        registry=registry,
        client=oauth_client,
        apps=InstanceApps(registry, settings),
        states=StateCodec(key_ring),
        state_store=state_store,
        public_url=PUBLIC_URL,
    )
    request = await flow.start("microsoft", tenant_id="t1", email="carol@example.test")
    provider_url, cookies = await through_browser(flow, "microsoft", request)
    callback = await follow_to_callback(provider_url)
    account = await flow.complete("microsoft", **callback, cookies=cookies)
    token = account.tokens.access_token.reveal()
    auth = f"user={account.email}\x01auth=Bearer {token}\x01\x01".encode()

    assert account.smtp is not None
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = account.email, account.email, "via xoauth2"
    message.set_content("hello")
    with smtplib.SMTP_SSL(account.smtp.host, account.smtp.port, context=tls_ctx) as client:
        client.ehlo()
        client.auth("XOAUTH2", lambda challenge=None: auth.decode())
        client.send_message(message)
    assert smtp.handler.messages[-1].auth_user == account.email

    imap = imaplib.IMAP4_SSL(account.imap.host, account.imap.port, ssl_context=tls_ctx)
    assert imap.authenticate("XOAUTH2", lambda _: auth)[0] == "OK"
    imap.select("INBOX")
    assert imap.search(None, "SUBJECT", '"via xoauth2"')[1][0].split()
    imap.logout()


async def test_pkce_mismatch_is_an_invalid_grant(code_flow):
    first = await code_flow.start("google", tenant_id="t1")
    second = await code_flow.start("google", tenant_id="t1")
    first_url, _ = await through_browser(code_flow, "google", first)
    _, cookies = await through_browser(code_flow, "google", second)
    code_of_first = (await follow_to_callback(first_url))["code"]
    with pytest.raises(OAuthInvalidGrantError) as caught:
        await code_flow.complete("google", state=second.state, code=code_of_first, cookies=cookies)
    assert "PKCE" in (caught.value.server_said or "")


async def test_access_denied_is_shown_plainly(code_flow):
    request = await code_flow.start("microsoft", tenant_id="t1", email="deny@example.test")
    provider_url, cookies = await through_browser(code_flow, "microsoft", request)
    callback = await follow_to_callback(provider_url)
    assert callback["error"] == "access_denied"
    with pytest.raises(OAuthDeniedError) as caught:
        await code_flow.complete("microsoft", **callback, cookies=cookies)
    assert caught.value.code == "oauth_denied"
    assert "access_denied" in str(caught.value)
    with pytest.raises(OAuthStateReplayedError):  # the state was used up even so
        await code_flow.complete("microsoft", **callback, cookies=cookies)


async def test_state_tampered_replayed_expired_and_misrouted(code_flow, key_ring, state_store):
    request = await code_flow.start("google", tenant_id="t1")
    provider_url, cookies = await through_browser(code_flow, "google", request)
    callback = await follow_to_callback(provider_url)

    middle = len(request.state) // 2
    flipped = "A" if request.state[middle] != "A" else "B"
    tampered = request.state[:middle] + flipped + request.state[middle + 1 :]
    with pytest.raises(OAuthStateInvalidError):
        await code_flow.complete("google", state=tampered, code=callback["code"], cookies=cookies)
    with pytest.raises(OAuthStateInvalidError):
        await code_flow.complete("microsoft", state=request.state, code=callback["code"], cookies=cookies)

    account = await code_flow.complete("google", state=request.state, code=callback["code"], cookies=cookies)
    assert account.email == "alice@example.test"
    with pytest.raises(OAuthStateReplayedError) as replayed:
        await code_flow.complete("google", state=request.state, code=callback["code"], cookies=cookies)
    assert replayed.value.http_status == 400

    later = StateCodec(key_ring, clock=lambda: utcnow() + timedelta(minutes=10, seconds=1))
    fresh = await code_flow.start("google", tenant_id="t1")
    with pytest.raises(OAuthStateExpiredError):
        await later.consume(fresh.state, state_store, provider="google")
