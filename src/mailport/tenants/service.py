"""Tenant management and API-key authentication (what the admin routes and the CLI call).

Deleting a tenant deletes its mailboxes by cascade, past the mailbox service's own deletion; so
the composition root registers, as a :meth:`TenantService.before_delete` hook, what must happen
first (the withdrawal of the tenant's API mailboxes' push at Gmail and Graph), which this
feature cannot build itself. Hooks are best effort: they never block the deletion.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from mailport.auth.models import JwtVerifier
from mailport.auth.schemas import JwtSettings
from mailport.auth.service import JwtIdentity, JwtService
from mailport.clock import Clock, utc_now
from mailport.crypto import Secret
from mailport.errors import ForbiddenError, TokenRejectedError, UnauthorizedError
from mailport.store.tenants import TenantRepository
from mailport.tenants.keys import generate_api_key, hash_api_key, same_secret, visible_prefix
from mailport.tenants.models import ApiKey, Tenant

log = logging.getLogger(__name__)

BeforeTenantDelete = Callable[[str], Awaitable[None]]


@dataclass(frozen=True)
class Principal:
    """Who a bearer token belongs to."""

    tenant_id: str | None
    is_admin: bool
    key_prefix: str


class TenantService:
    def __init__(
        self,
        repository: TenantRepository,
        *,
        admin_key: Secret | None = None,
        clock: Clock = utc_now,
        jwt: JwtService | None = None,
    ) -> None:
        self.repository = repository
        self.jwt = jwt  # host-app JWTs (mailport.auth); None: this instance takes API keys only
        self._admin_key = admin_key
        self._clock = clock
        self._before_delete: list[BeforeTenantDelete] = []

    def now(self) -> datetime:
        return self._clock()

    def before_delete(self, hook: BeforeTenantDelete) -> Callable[[], None]:
        """Run ``hook(tenant_id)`` before a tenant is deleted (it bounds its own time; a failure
        is logged and the deletion goes on). Returns a function that removes it."""
        self._before_delete.append(hook)
        return lambda: self._before_delete.remove(hook) if hook in self._before_delete else None

    async def delete(self, tenant_id: str) -> None:
        """Delete the tenant with its keys and mailboxes, after the ``before_delete`` hooks."""
        await self.repository.get(tenant_id)  # 404 first
        for hook in list(self._before_delete):
            try:
                await hook(tenant_id)
            except Exception as exc:  # never blocks a deletion; the type only (no secret in logs)
                log.warning(
                    "tenant %s: cleaning up before deletion failed (%s); deleting anyway",
                    tenant_id,
                    type(exc).__name__,
                )
        await self.repository.delete(tenant_id)
        if self.jwt is not None:  # its verifier went with it (cascade): no cached copy survives
            self.jwt.invalidate()

    async def create_tenant(self, name: str) -> tuple[Tenant, Secret]:
        """A new tenant and its first API key (the only time the key is visible)."""
        tenant = await self.repository.create(name, now=self._clock())
        _key, plaintext = await self.create_key(tenant.id)
        return tenant, plaintext

    async def create_key(self, tenant_id: str) -> tuple[ApiKey, Secret]:
        plaintext = generate_api_key()
        key = await self.repository.add_key(
            tenant_id, prefix=visible_prefix(plaintext), key_hash=hash_api_key(plaintext), now=self._clock()
        )
        return key, Secret(plaintext)

    async def authenticate(self, token: str) -> Principal:
        """The principal behind ``token``: the admin key or an active tenant key; else 401."""
        if (
            self._admin_key is not None
            and self._admin_key.reveal()
            and same_secret(token, self._admin_key.reveal())
        ):
            return Principal(tenant_id=None, is_admin=True, key_prefix="admin")
        digest = hash_api_key(token)
        found = await self.repository.find_active_key(digest)
        if found is None or not same_secret(digest, found[1]):
            raise UnauthorizedError("invalid or revoked API key")
        key = found[0]
        return Principal(tenant_id=key.tenant_id, is_admin=False, key_prefix=key.prefix)

    async def authenticate_tenant(self, token: str) -> Principal:
        principal = await self.authenticate(token)
        if principal.tenant_id is None:
            raise ForbiddenError(
                "the admin key manages tenants and has no mailboxes of its own",
                hint="Use a tenant's API key (`mailport tenants create` or POST /v1/tenants makes one).",
            )
        return principal

    async def authenticate_admin(self, token: str) -> Principal:
        if self._admin_key is None or not self._admin_key.reveal():
            raise UnauthorizedError(
                "no admin key is configured on this instance",
                hint="Set MAILPORT_ADMIN_KEY to manage tenants over the API, or use `mailport tenants`.",
            )
        principal = await self.authenticate(token)
        if not principal.is_admin:
            raise ForbiddenError(
                "tenant keys cannot manage tenants", hint="Use the instance admin key (MAILPORT_ADMIN_KEY)."
            )
        return principal

    # --- host-app JWTs (issue 19) ------------------------------------------------------

    def _jwt(self) -> JwtService:
        if self.jwt is None:
            raise TokenRejectedError("this instance verifies no JWTs; use an API key")
        return self.jwt

    async def authenticate_jwt(self, token: str) -> JwtIdentity:
        """The tenant and owner behind a host application's JWT; 401 with the refusal's code."""
        return await self._jwt().authenticate(token)

    async def get_jwt(self, tenant_id: str) -> JwtVerifier | None:
        """The tenant's verifier, None without one (404 for no such tenant). Its secret stays
        sealed: ``verifier.secret.reveal()`` decrypts it, e.g. for ``mailport apply``'s diff."""
        await self.repository.get(tenant_id)
        return await self._jwt().repository.get(tenant_id)

    async def require_jwt(self, tenant_id: str) -> JwtVerifier:
        """The tenant's verifier; 404 for no tenant, or no verifier (the API's GET)."""
        await self.repository.get(tenant_id)
        return await self._jwt().get(tenant_id)

    async def set_jwt(self, tenant_id: str, settings: JwtSettings) -> JwtVerifier:
        """Create or replace the tenant's verifier (what the API's PUT and ``mailport apply`` call)."""
        await self.repository.get(tenant_id)
        return await self._jwt().set(tenant_id, settings, now=self._clock())

    async def delete_jwt(self, tenant_id: str) -> None:
        """Remove the tenant's verifier: its users' tokens are refused from now on."""
        await self.repository.get(tenant_id)
        await self._jwt().delete(tenant_id)
