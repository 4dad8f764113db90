"""Device authorization grant (RFC 8628) for headless and CLI use.

``start`` asks for a device and user code; ``poll`` makes one token request; ``wait`` polls,
sleeping ``interval`` seconds between requests, adding 5 seconds on each ``slow_down`` (RFC 8628
3.5) and stopping on ``access_denied`` (:class:`OAuthDeniedError`) or ``expired_token`` / the
local expiry (:class:`DeviceCodeExpiredError`). Clock and sleep are injected so tests run fast.

Google spells ``verification_uri`` as ``verification_url``; both are accepted. Google's device
flow does not allow the Gmail scope, so it is refused up front with a clear error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from mailport.clock import Clock, utc_now
from mailport.crypto import Secret
from mailport.errors import DeviceCodeExpiredError, DeviceFlowUnsupportedError, OAuthError
from mailport.oauth.apps import AppResolver
from mailport.oauth.authcode import ConnectedAccount, account_of
from mailport.oauth.client import ErrorResponse, OAuthClient, raise_for
from mailport.oauth.connectors import IMAP, check_connector, granted_connector, missing_mail_scopes
from mailport.oauth.identity import Identity, connected_address
from mailport.oauth.providers import OAuthApp, ProviderRegistry

Sleep = Callable[[float], Awaitable[None]]
SLOW_DOWN_STEP = 5  # seconds, RFC 8628 3.5
DEFAULT_INTERVAL = 5


@dataclass(frozen=True, repr=False)
class DeviceAuthorization:
    provider: str
    app: OAuthApp
    device_code: Secret
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    expires_at: datetime
    interval: int
    message: str | None = None
    # what will read the mailbox; None: not known (a flow stored before its connector was,
    # migration 0020), judged from the granted scopes
    connector: str | None = IMAP

    def __repr__(self) -> str:
        return (
            f"DeviceAuthorization(provider={self.provider!r}, user_code={self.user_code!r}, "
            f"verification_uri={self.verification_uri!r}, interval={self.interval})"
        )


@dataclass(frozen=True)
class DevicePoll:
    status: Literal["pending", "slow_down", "complete"]
    account: ConnectedAccount | None = None


@dataclass(kw_only=True, eq=False, repr=False)
class DeviceFlow:
    registry: ProviderRegistry
    client: OAuthClient
    apps: AppResolver
    clock: Clock = utc_now
    # the injected sleep (the service's background poller uses it too)
    sleep: Sleep = asyncio.sleep

    async def start(
        self, provider_key: str, *, tenant_id: str | None, connector: str = IMAP
    ) -> DeviceAuthorization:
        provider = self.registry.get(provider_key)
        check_connector(self.registry, provider_key, connector)
        if provider.device_authorization_endpoint is None:
            raise DeviceFlowUnsupportedError(
                f"{provider.name} has no device sign-in (device authorization endpoint)",
                provider=provider_key,
            )
        if not provider.device_flow_allows_mail:
            note = provider.device_flow_note or f"{provider.name}'s device flow does not allow the mail scope"
            raise DeviceFlowUnsupportedError(f"{note}; use the browser sign-in", provider=provider_key)
        app = await self.apps.resolve(provider_key, tenant_id)
        body = await self.client.device_authorization(provider, app, " ".join(provider.scopes_for(connector)))
        return self._parse(provider_key, app, body, connector)

    def _parse(
        self, provider_key: str, app: OAuthApp, body: dict[str, Any], connector: str
    ) -> DeviceAuthorization:
        provider = self.registry.get(provider_key)
        device_code = body.get("device_code")
        user_code = body.get("user_code")
        uri = body.get("verification_uri") or body.get("verification_url")
        if not all(isinstance(v, str) and v for v in (device_code, user_code, uri)):
            raise OAuthError(f"{provider.name}'s device authorization answer lacks device_code/user_code/uri")
        assert isinstance(device_code, str) and isinstance(user_code, str) and isinstance(uri, str)
        complete = body.get("verification_uri_complete") or body.get("verification_url_complete")
        try:
            expires_in = int(body.get("expires_in", 900))
            interval = max(1, int(body.get("interval", DEFAULT_INTERVAL)))
        except (TypeError, ValueError) as exc:
            raise OAuthError(f"{provider.name}'s device authorization has a bad expires_in/interval") from exc
        message = body.get("message")
        return DeviceAuthorization(
            provider=provider_key,
            app=app,
            device_code=Secret(device_code),
            user_code=user_code,
            verification_uri=uri,
            verification_uri_complete=complete if isinstance(complete, str) else None,
            expires_at=self.clock() + timedelta(seconds=expires_in),
            interval=interval,
            message=message if isinstance(message, str) else None,
            connector=connector,
        )

    async def poll(self, auth: DeviceAuthorization, *, email: str | None = None) -> DevicePoll:
        """One token request: pending, slow_down, or complete (with the connected account).

        ``email`` (the address the user gave) names the account when the provider does not;
        tokens that cannot be kept are revoked."""
        provider = self.registry.get(auth.provider)
        if self.clock() >= auth.expires_at:
            raise DeviceCodeExpiredError(f"the {provider.name} device code expired", provider=auth.provider)
        answer = await self.client.poll_device(provider, auth.app, auth.device_code)
        if isinstance(answer, ErrorResponse):
            if answer.error == "authorization_pending":
                return DevicePoll("pending")
            if answer.error == "slow_down":
                return DevicePoll("slow_down")
            raise_for(provider, answer, during="device sign-in")
            raise AssertionError("unreachable")  # pragma: no cover

        connector = auth.connector or granted_connector(provider, answer.scope)

        async def identify() -> Identity:
            missing = missing_mail_scopes(provider, answer.scope, connector)
            if missing:
                raise OAuthError(f"{provider.name} did not grant the mail permission ({', '.join(missing)})")
            return await connected_address(
                self.client, provider, auth.app, answer, now=self.clock(), given=email
            )

        account = await account_of(
            self.client, auth.provider, provider, auth.app, answer, identify(), connector=connector
        )
        return DevicePoll("complete", account)

    async def wait(self, auth: DeviceAuthorization, *, email: str | None = None) -> ConnectedAccount:
        """Poll until the user approves, denies, or the code expires."""
        while True:
            await self.sleep(auth.interval)
            result = await self.poll(auth, email=email)
            if result.status == "complete":
                assert result.account is not None
                return result.account
            if result.status == "slow_down":
                auth = replace(auth, interval=auth.interval + SLOW_DOWN_STEP)
