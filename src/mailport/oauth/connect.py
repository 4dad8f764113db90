"""Connecting mailboxes with OAuth: the one service behind ``/v1/oauth/…``, ``/v1/oauth-apps``,
the web pages and the CLI, put together from the parts that do the work:

* :mod:`mailport.oauth.signin`: the browser sign-in (``authorize`` / ``begin`` / ``callback``);
* :mod:`mailport.oauth.device_poller`: the device sign-in and its background polling;
* :mod:`mailport.oauth.accounts`: keeping a signed-in account on its mailbox (or revoking it);
* :mod:`mailport.oauth.tenant_apps`: a tenant's own OAuth apps;
* ``disconnect`` (here): revoke at the provider where it can, then erase the tokens.

Every mailbox write goes through :class:`~mailport.mailboxes.service.MailboxService`.
"""

from __future__ import annotations

import logging
from datetime import datetime

import httpx

from mailport.clock import Clock, utc_now
from mailport.config import Settings
from mailport.crypto import KeyRing
from mailport.errors import OAuthUnavailableError
from mailport.mailboxes.service import MailboxService
from mailport.net.guard import HostGuard
from mailport.oauth.accounts import AccountKeeper
from mailport.oauth.device_poller import DevicePoller
from mailport.oauth.providers import ProviderRegistry
from mailport.oauth.repository import (
    DatabaseStateStore,
    DatabaseTokenStore,
    DeviceFlowRepository,
    OAuthAppRepository,
    TenantApps,
)
from mailport.oauth.service import OAuthServices, build_oauth
from mailport.oauth.signin import BrowserSignIn
from mailport.oauth.tenant_apps import TenantAppAdmin
from mailport.store.database import Database

log = logging.getLogger(__name__)


class OAuthConnectService:
    def __init__(
        self,
        oauth: OAuthServices,
        *,
        database: Database,
        mailboxes: MailboxService,
        apps: OAuthAppRepository,
        tenant_apps: TenantApps,
        device_flows: DeviceFlowRepository,
        clock: Clock = utc_now,
    ) -> None:
        self.oauth = oauth
        self.tenant_apps = tenant_apps
        self._mailboxes = mailboxes
        self._clock = clock
        accounts = AccountKeeper(oauth, database=database, mailboxes=mailboxes)
        self.signin = BrowserSignIn(
            oauth, mailboxes=mailboxes, accounts=accounts, states=DatabaseStateStore(database), clock=clock
        )
        self.devices = DevicePoller(
            oauth, flows=device_flows, apps=tenant_apps, accounts=accounts, clock=clock
        )
        self.apps = TenantAppAdmin(oauth.registry, apps, clock=clock)
        # the use cases the routes, the web pages and the CLI call
        self.authorize = self.signin.authorize
        self.begin = self.signin.begin
        self.callback = self.signin.callback
        self.return_url_of = self.signin.return_url_of
        self.start_device = self.devices.start_device
        self.device_status = self.devices.device_status
        self.put_app = self.apps.put_app
        self.list_apps = self.apps.list_apps
        self.delete_app = self.apps.delete_app

    async def aclose(self) -> None:
        await self.devices.aclose()
        await self.oauth.aclose()

    def now(self) -> datetime:
        return self._clock()

    @property
    def polling(self) -> set[str]:
        """Device flows this process is polling right now."""
        return self.devices.polling

    async def disconnect(self, tenant_id: str, mailbox_id: str) -> bool:
        """Revoke at the provider (where supported) and erase the tokens; True when revoked."""
        mailbox = await self._mailboxes.get(tenant_id, mailbox_id)
        revoked = False
        if mailbox.oauth is not None and mailbox.oauth.access_token is not None:
            try:
                revoked = await self.oauth.tokens.revoke(mailbox_id)
            except OAuthUnavailableError:
                log.warning("mailbox %s: provider unreachable for revocation; erasing tokens", mailbox_id)
        await self._mailboxes.drop_grant(tenant_id, mailbox_id, reason="OAuth disconnected")
        return revoked


def build_connect(
    settings: Settings,
    key_ring: KeyRing,
    *,
    database: Database,
    mailboxes: MailboxService,
    clock: Clock = utc_now,
    http: httpx.AsyncClient | None = None,
    guard: HostGuard | None = None,
) -> OAuthConnectService:
    """The OAuth use cases on the database (the composition root calls this); ``guard`` vets
    every authorization-server connection."""
    registry = ProviderRegistry.from_settings(settings)
    apps = OAuthAppRepository(database, key_ring)
    tenant_apps = TenantApps(apps, registry, settings)
    oauth = build_oauth(
        settings,
        key_ring,
        token_store=DatabaseTokenStore(database, key_ring, mailboxes),
        state_store=DatabaseStateStore(database),
        apps=tenant_apps,
        http=http,
        guard=guard,
        clock=clock,
        registry=registry,
    )
    return OAuthConnectService(
        oauth,
        database=database,
        mailboxes=mailboxes,
        apps=apps,
        tenant_apps=tenant_apps,
        device_flows=DeviceFlowRepository(database, key_ring),
        clock=clock,
    )
