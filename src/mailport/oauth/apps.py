"""Which OAuth app (client id/secret) serves a tenant at a provider.

:class:`AppResolver` is the port the flows and the token manager ask; :class:`InstanceApps`
answers with the instance-wide apps (``MAILPORT_GOOGLE_CLIENT_ID`` …, or ``client_id`` in the
providers file). The per-tenant store (``/v1/oauth-apps``) will answer first and fall back to it.
"""

from __future__ import annotations

from typing import Protocol

from mailport.config import Settings
from mailport.oauth.providers import OAuthApp, ProviderRegistry


class AppResolver(Protocol):
    async def resolve(self, provider: str, tenant_id: str | None) -> OAuthApp:
        """The app to use; raises OAuthNotConfiguredError (or OAuthProviderUnknownError)."""
        ...


class InstanceApps:
    """The instance-wide apps from settings and the providers file."""

    def __init__(self, registry: ProviderRegistry, settings: Settings) -> None:
        self._registry = registry
        self._settings = settings

    async def resolve(self, provider: str, tenant_id: str | None) -> OAuthApp:
        return self._registry.require_instance_app(provider, self._settings)
