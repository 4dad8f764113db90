"""Wires the OAuth pieces for the composition root: one call, given the storage adapters.

``bootstrap.build`` will call :func:`build_oauth` with the database's token and state stores
(and the per-tenant app resolver); a bad providers file fails here, at startup, with
:class:`~mailport.errors.OAuthProvidersFileError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import httpx

from mailport.clock import Clock, utc_now
from mailport.config import Settings
from mailport.crypto import KeyRing
from mailport.net.guard import HostGuard
from mailport.oauth.apps import AppResolver, InstanceApps
from mailport.oauth.authcode import AuthorizationCodeFlow
from mailport.oauth.client import OAuthClient
from mailport.oauth.device import DeviceFlow
from mailport.oauth.providers import ProviderRegistry, configured_providers
from mailport.oauth.state import StateCodec, StateStore
from mailport.oauth.tokens import TokenManager, TokenStore


@dataclass
class OAuthServices:
    settings: Settings
    registry: ProviderRegistry
    client: OAuthClient
    apps: AppResolver
    code_flow: AuthorizationCodeFlow
    device_flow: DeviceFlow
    tokens: TokenManager

    def configured_providers(self) -> set[str]:
        return configured_providers(self.settings, self.registry)

    async def aclose(self) -> None:
        await self.client.aclose()


def build_oauth(
    settings: Settings,
    key_ring: KeyRing,
    *,
    token_store: TokenStore,
    state_store: StateStore,
    apps: AppResolver | None = None,
    http: httpx.AsyncClient | None = None,
    guard: HostGuard | None = None,
    clock: Clock = utc_now,
    registry: ProviderRegistry | None = None,
) -> OAuthServices:
    registry = registry or ProviderRegistry.from_settings(settings)
    client = OAuthClient(http, guard=guard, clock=clock)
    apps = apps or InstanceApps(registry, settings)
    code_flow = AuthorizationCodeFlow(
        registry=registry,
        client=client,
        apps=apps,
        states=StateCodec(key_ring, clock=clock),
        state_store=state_store,
        public_url=settings.effective_public_url,
        clock=clock,
    )
    device_flow = DeviceFlow(registry=registry, client=client, apps=apps, clock=clock)
    tokens = TokenManager(
        token_store,
        client=client,
        registry=registry,
        apps=apps,
        refresh_ahead=timedelta(seconds=settings.oauth_refresh_ahead_seconds),
        clock=clock,
    )
    return OAuthServices(settings, registry, client, apps, code_flow, device_flow, tokens)
