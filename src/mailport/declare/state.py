"""What the service holds now, read through the services (as the API reads it).

``plan`` compares the file with this; ``export`` writes it out. Secrets are read as the
services hand them out: sealed (:class:`~mailport.crypto.sealed.Sealed`), decrypted only when
``plan`` compares one with the secret a reference names.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mailport.auth.models import JwtVerifier
from mailport.crypto import Secret
from mailport.delivery.models import WebhookEndpoint
from mailport.errors import NotFoundError
from mailport.mailboxes.models import Mailbox
from mailport.oauth.repository import StoredApp
from mailport.services import Services
from mailport.tenants.models import Tenant

PAGE = 200


@dataclass
class TenantState:
    tenant: Tenant
    mailboxes: list[Mailbox] = field(default_factory=list)
    webhooks: list[WebhookEndpoint] = field(default_factory=list)
    apps: list[StoredApp] = field(default_factory=list)
    app_secrets: dict[str, Secret | None] = field(default_factory=dict)  # by provider
    jwt: JwtVerifier | None = None  # its JWT verifier (the secret sealed)


@dataclass
class Snapshot:
    tenants: dict[str, TenantState]  # by name


async def read_state(services: Services, *, only: set[str] | None = None) -> Snapshot:
    """Every tenant (or those named in ``only``) with its mailboxes, webhooks and OAuth apps."""
    found: dict[str, TenantState] = {}
    for tenant in await _tenants(services):
        if only is None or tenant.name in only:
            found[tenant.name] = await _tenant_state(services, tenant)
    return Snapshot(found)


async def _tenants(services: Services) -> list[Tenant]:
    out: list[Tenant] = []
    after: str | None = None
    while True:
        page = await services.tenants.repository.page(after=after, limit=PAGE)
        out += page
        if len(page) < PAGE:
            return out
        after = page[-1].id


async def all_mailboxes(services: Services, tenant_id: str) -> list[Mailbox]:
    found: list[Mailbox] = []
    cursor: str | None = None
    while True:
        page = await services.mailboxes.list(tenant_id, cursor=cursor, limit=PAGE)
        found += page.items
        if (cursor := page.next_cursor) is None:
            return found


async def _tenant_state(services: Services, tenant: Tenant) -> TenantState:
    state = TenantState(tenant, mailboxes=await all_mailboxes(services, tenant.id))
    cursor: str | None = None
    while True:
        webhooks = await services.webhooks.list(tenant.id, cursor=cursor, limit=PAGE)
        state.webhooks += webhooks.items
        if (cursor := webhooks.next_cursor) is None:
            break
    try:
        state.jwt = await services.tenants.get_jwt(tenant.id)
    except NotFoundError:
        state.jwt = None
    state.apps = await services.oauth.list_apps(tenant.id)
    for app in state.apps:  # the stored secret, still sealed, to compare with the file's
        stored = await services.oauth.apps.apps.app(tenant.id, app.provider)
        state.app_secrets[app.provider] = stored.client_secret if stored else None
    return state
