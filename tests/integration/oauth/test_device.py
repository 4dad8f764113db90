"""Device authorization grant (RFC 8628) against the local authorization server."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from mailport.clock import utc_now as utcnow
from mailport.errors import (
    DeviceCodeExpiredError,
    DeviceFlowUnsupportedError,
    OAuthDeniedError,
    OAuthIdentityError,
)
from mailport.oauth import DeviceFlow, InstanceApps, ProviderRegistry, configured_providers
from tests.integration.oauth.conftest import idp_overrides, plain_provider
from tests.mailstack.idp import MockIdP


def approve(idp: MockIdP, user_code: str, *, email: str = "dana@example.test", deny: bool = False) -> None:
    body = {"user_code": user_code, "email": email, "deny": deny}
    assert httpx.post(f"{idp.url}/_test/device/approve", json=body).status_code == 200


async def test_pending_then_approved(device_flow, idp):
    auth = await device_flow.start("microsoft", tenant_id="t1")
    assert auth.verification_uri.endswith("/device") and auth.user_code and auth.interval == 1
    assert auth.verification_uri_complete and auth.user_code in auth.verification_uri_complete
    assert auth.message and auth.user_code in auth.message
    assert auth.device_code.reveal() not in repr(auth)
    assert (await device_flow.poll(auth)).status == "pending"
    approve(idp, auth.user_code)
    account = await device_flow.wait(auth)  # real 1 s interval
    assert account.email == "dana@example.test"
    assert account.tokens.refresh_token is not None
    assert account.imap.host == "outlook.office365.com" and account.smtp is not None


async def test_slow_down_adds_five_seconds(registry, oauth_client, apps, idp):
    waits: list[float] = []
    auth_box: list[str] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        if seconds >= 6:  # the slowed-down wait: approve, then wait long enough for the server
            approve(idp, auth_box[0])
            await asyncio.sleep(1.05)

    flow = DeviceFlow(registry=registry, client=oauth_client, apps=apps, sleep=sleep)
    auth = await flow.start("microsoft", tenant_id="t1")
    auth_box.append(auth.user_code)
    account = await flow.wait(auth)  # poll 1: pending; poll 2 (too fast): slow_down; poll 3: tokens
    assert waits == [1, 1, 6]
    assert account.email == "dana@example.test"


async def test_denied_stops_polling(device_flow, idp):
    auth = await device_flow.start("microsoft", tenant_id="t1")
    approve(idp, auth.user_code, deny=True)
    with pytest.raises(OAuthDeniedError) as caught:
        await device_flow.wait(auth)
    assert "access_denied" in (caught.value.server_said or "")


async def test_expired_at_the_server_and_locally(device_flow, registry, oauth_client, apps, idp):
    auth = await device_flow.start("microsoft", tenant_id="t1")
    assert httpx.post(f"{idp.url}/_test/device/expire", json={"user_code": auth.user_code}).status_code == 200
    with pytest.raises(DeviceCodeExpiredError):
        await device_flow.poll(auth)

    later = DeviceFlow(
        registry=registry, client=oauth_client, apps=apps, clock=lambda: utcnow() + timedelta(minutes=11)
    )
    with pytest.raises(DeviceCodeExpiredError):
        await later.poll(await device_flow.start("microsoft", tenant_id="t1"))


async def test_google_device_flow_refuses_the_gmail_scope(device_flow):
    with pytest.raises(DeviceFlowUnsupportedError) as caught:
        await device_flow.start("google", tenant_id="t1")
    assert "https://mail.google.com/" in str(caught.value)
    assert caught.value.code == "oauth_device_flow_unsupported"


async def test_provider_added_by_file_with_google_spelling(idp, settings, tmp_path, oauth_client):
    """An operator-added provider (with its own app) whose device answer says verification_url."""
    overrides = idp_overrides(idp)
    google = overrides["google"]
    overrides["examplemail"] = {
        "name": "Example Mail",
        "authorization_endpoint": google["authorization_endpoint"],
        "token_endpoint": google["token_endpoint"],
        "device_authorization_endpoint": google["device_authorization_endpoint"],
        "issuers": [idp.url],
        "scopes": ["mail", "openid", "email"],
        "client_id": "test-client",
        "client_secret": "test-secret",
        "imap": {"host": "imap.example.test", "port": 993},
    }
    path = tmp_path / "more.json"
    path.write_text(json.dumps(overrides))
    settings.oauth_providers_file = path
    settings.microsoft_client_id = None
    registry = ProviderRegistry.from_settings(settings)
    assert configured_providers(settings, registry) == {"google", "examplemail"}

    flow = DeviceFlow(registry=registry, client=oauth_client, apps=InstanceApps(registry, settings))
    auth = await flow.start("examplemail", tenant_id=None)
    assert auth.verification_uri.endswith("/device") and auth.verification_uri_complete is None
    approve(idp, auth.user_code, email="erin@example.test")
    account = await flow.wait(auth)
    assert account.email == "erin@example.test" and account.smtp is None


def _plain_device_flow(
    settings: Any, tmp_path: Path, oauth_client: Any, plain: dict[str, object]
) -> DeviceFlow:
    """A device flow whose registry has the provider ``plain`` (added by the operator's file)."""
    path = tmp_path / "plain.json"
    path.write_text(json.dumps({"plain": plain}))
    settings.oauth_providers_file = path
    registry = ProviderRegistry.from_settings(settings)
    return DeviceFlow(registry=registry, client=oauth_client, apps=InstanceApps(registry, settings))


@pytest.mark.parametrize(
    ("client_id", "secret", "method"),
    [
        ("test-client", "test-secret", "client_secret_post"),
        ("test-client", "test-secret", "client_secret_basic"),
        ("public-client", None, "none"),
    ],
)
async def test_confidential_and_public_device_clients(
    idp, settings, tmp_path, oauth_client, client_id, secret, method
):
    """RFC 8628 3.1: a confidential client authenticates at the device authorization endpoint
    (the local server answers invalid_client otherwise); a public client sends its client_id."""
    plain = plain_provider(idp, client_id=client_id, client_secret=secret, token_auth_method=method)
    flow = _plain_device_flow(settings, tmp_path, oauth_client, plain)
    auth = await flow.start("plain", tenant_id=None)
    email = f"device-{uuid.uuid4().hex[:8]}@example.test"
    approve(idp, auth.user_code, email=email)
    account = await flow.wait(auth, email=email)
    # no OpenID: the address given is used, unconfirmed until the first mail login
    assert account.email == email and account.email_confirmed is False
    assert account.tokens.refresh_token is not None


async def test_a_device_sign_in_without_any_address_revokes_its_tokens(idp, settings, tmp_path, oauth_client):
    flow = _plain_device_flow(settings, tmp_path, oauth_client, plain_provider(idp))
    auth = await flow.start("plain", tenant_id=None)
    email = f"nameless-{uuid.uuid4().hex[:8]}@example.test"
    approve(idp, auth.user_code, email=email)
    with pytest.raises(OAuthIdentityError):
        await flow.wait(auth)
    revoked = [r for r in idp.state.revocations if r["email"] == email]
    assert [(r["kind"], r["client_id"]) for r in revoked] == [("refresh_token", "test-client")]
