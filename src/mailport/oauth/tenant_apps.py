"""A tenant's own OAuth apps: the use cases behind ``/v1/oauth-apps``.

A tenant may bring its own client id and secret for a provider; the flows then use it before
the instance's (:class:`~mailport.oauth.repository.TenantApps`). The secret is stored encrypted
and never read back out.
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass

from mailport.clock import Clock, utc_now
from mailport.crypto import Secret
from mailport.oauth.providers import ProviderRegistry
from mailport.oauth.repository import OAuthAppRepository, StoredApp


@dataclass(eq=False, repr=False)
class TenantAppAdmin:
    registry: ProviderRegistry
    apps: OAuthAppRepository
    _: KW_ONLY
    clock: Clock = utc_now

    async def put_app(
        self,
        tenant_id: str,
        provider: str,
        *,
        client_id: str,
        client_secret: Secret | None,
        directory_tenant: str | None,
    ) -> StoredApp:
        self.registry.get(provider)
        return await self.apps.put(
            tenant_id,
            provider,
            client_id=client_id,
            client_secret=client_secret,
            directory_tenant=directory_tenant,
            now=self.clock(),
        )

    async def list_apps(self, tenant_id: str) -> list[StoredApp]:
        return await self.apps.list(tenant_id)

    async def delete_app(self, tenant_id: str, provider: str) -> None:
        await self.apps.delete(tenant_id, provider)
