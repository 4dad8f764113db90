"""Every token endpoint outcome maps to one error; secrets never show (injected httpx transport)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from urllib.parse import parse_qs

import httpx
import pytest

from mailport.crypto import Secret
from mailport.errors import (
    DeviceCodeExpiredError,
    OAuthClientRejectedError,
    OAuthDeniedError,
    OAuthError,
    OAuthInvalidGrantError,
    OAuthUnavailableError,
)
from mailport.oauth import OAuthApp, OAuthClient, ProviderRegistry
from mailport.oauth.authcode import missing_mail_scopes

GOOGLE = ProviderRegistry.load().get("google")
MICROSOFT = ProviderRegistry.load().get("microsoft")
APP = OAuthApp("google", "client-1", Secret("s3cr3t-client"))
REFRESH = Secret("rt-very-secret")


def client_for(handler: Callable[[httpx.Request], httpx.Response]) -> OAuthClient:
    return OAuthClient(httpx.AsyncClient(transport=httpx.MockTransport(handler)))


def answer(status: int, body: object = None, text: str | None = None) -> OAuthClient:
    def handler(request: httpx.Request) -> httpx.Response:
        if text is not None:
            return httpx.Response(status, text=text)
        return httpx.Response(status, json=body)

    return client_for(handler)


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (400, {"error": "invalid_grant", "error_description": "Token revoked."}, OAuthInvalidGrantError),
        (401, {"error": "invalid_client"}, OAuthClientRejectedError),
        (400, {"error": "unauthorized_client"}, OAuthClientRejectedError),
        (400, {"error": "access_denied"}, OAuthDeniedError),
        (400, {"error": "expired_token"}, DeviceCodeExpiredError),
        (400, {"error": "invalid_scope"}, OAuthError),
        (503, {"error": "temporarily_unavailable"}, OAuthUnavailableError),
        (500, None, OAuthUnavailableError),
        (429, None, OAuthUnavailableError),
        (200, {"token_type": "Bearer"}, OAuthError),
    ],
)
async def test_outcomes_map_to_one_error_each(status, body, error):
    with pytest.raises(error) as caught:
        await answer(status, body).refresh(GOOGLE, APP, REFRESH)
    assert type(caught.value) is error
    text = f"{caught.value} {caught.value.server_said} {caught.value.to_dict()} {caught.value!r}"
    assert "rt-very-secret" not in text and "s3cr3t-client" not in text


async def test_html_error_page_and_network_failure():
    with pytest.raises(OAuthError, match="without an OAuth error"):
        await answer(400, text="<html>bad</html>").refresh(GOOGLE, APP, REFRESH)

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(OAuthUnavailableError, match="oauth2.googleapis.com") as caught:
        await client_for(refuse).refresh(GOOGLE, APP, REFRESH)
    assert caught.value.http_status == 503


async def test_success_wraps_secrets_and_sends_the_client_secret_in_the_body():
    seen: list[dict[str, list[str]]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(parse_qs(request.content.decode()))
        return httpx.Response(200, json={"access_token": "at-1", "expires_in": "3599", "scope": "a b"})

    response = await client_for(handler).refresh(GOOGLE, APP, REFRESH)
    assert response.access_token.reveal() == "at-1" and response.refresh_token is None
    assert response.expires_at is not None and "at-1" not in repr(response)
    assert seen[0]["client_secret"] == ["s3cr3t-client"] and seen[0]["refresh_token"] == ["rt-very-secret"]


async def test_basic_client_authentication_is_form_encoded_first():
    provider = GOOGLE.model_copy(update={"token_auth_method": "client_secret_basic"})
    headers: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        headers.append(request.headers["authorization"])
        assert b"client_secret" not in request.content
        return httpx.Response(200, json={"access_token": "at"})

    app = OAuthApp("google", "id:1", Secret("p@ss word"))
    await client_for(handler).refresh(provider, app, REFRESH)
    assert base64.b64decode(headers[0].removeprefix("Basic ")).decode() == "id%3A1:p%40ss%20word"


async def test_revoke_without_an_endpoint_and_for_an_unknown_token():
    assert await answer(200, {}).revoke(MICROSOFT, APP, REFRESH) is False
    assert await answer(400, {"error": "invalid_token"}).revoke(GOOGLE, APP, REFRESH) is True


def test_missing_mail_scopes():
    assert missing_mail_scopes(GOOGLE, None) == []
    assert missing_mail_scopes(GOOGLE, "openid email") == ["https://mail.google.com/"]
    assert missing_mail_scopes(GOOGLE, "https://mail.google.com/ openid") == []
    granted = "https://outlook.office.com/IMAP.AccessAsUser.All https://outlook.office.com/SMTP.Send"
    assert missing_mail_scopes(MICROSOFT, granted) == []
    assert missing_mail_scopes(MICROSOFT, "IMAP.AccessAsUser.All") == ["https://outlook.office.com/SMTP.Send"]
