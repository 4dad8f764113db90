"""Connecting mailboxes with OAuth: the use cases behind ``/v1/oauth/…`` and ``/v1/oauth-apps``.

* ``authorize`` / ``begin`` / ``callback``: the browser sign-in (``begin`` is the start page
  that binds it to the browser); the callback stores the tokens (encrypted) and creates the
  mailbox — or updates it (reconnect after ``reauth_required``) — with the provider's
  IMAP/SMTP settings and ``auth_method: oauth2``. A reconnect signed in as another account than
  the mailbox's is refused (``oauth_account_mismatch``), the mailbox left as it was; tokens
  that are not kept, for this or any other reason, are revoked.
* ``start_device`` / ``device_status``: the device sign-in; this process polls the provider in
  the background (honouring ``interval`` and ``slow_down``); a polling lease on the flow's row
  keeps it to one poller across workers, and a status request resumes polling after a restart.
* ``disconnect``: revoke at the provider where it can, then erase the tokens.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx

from mailport.clock import Clock, utc_now
from mailport.config import Settings
from mailport.crypto import KeyRing, Secret
from mailport.errors import (
    DeviceCodeExpiredError,
    InputError,
    MailportError,
    OAuthAccountMismatchError,
    OAuthDeniedError,
    OAuthUnavailableError,
)
from mailport.failures import is_temporary
from mailport.mailboxes.models import AuthMethod, Mailbox, MailboxStatus, NewMailbox, OAuthGrant, Security
from mailport.mailboxes.models import ServerSettings as MailboxServer
from mailport.net.guard import HostGuard
from mailport.oauth.authcode import AuthorizationRequest, BrowserStart, ConnectedAccount
from mailport.oauth.device import SLOW_DOWN_STEP, DeviceAuthorization
from mailport.oauth.providers import MailServer, ProviderRegistry
from mailport.oauth.repository import (
    DatabaseStateStore,
    DatabaseTokenStore,
    DeviceFlowRecord,
    DeviceFlowRepository,
    OAuthAppRepository,
    StoredApp,
    TenantApps,
    mailbox_id_for,
)
from mailport.oauth.service import OAuthServices, build_oauth
from mailport.store.database import Database
from mailport.store.ids import new_id
from mailport.store.mailboxes import MailboxRepository, server_columns
from mailport.validation import check_http_url

log = logging.getLogger(__name__)

POLL_LEASE_MARGIN = 10  # seconds beyond two intervals before another worker may take over


@dataclass(frozen=True)
class Connected:
    mailbox: Mailbox
    return_url: str | None
    created: bool


def _server(server: MailServer, username: str | None) -> MailboxServer:
    return MailboxServer(server.host, server.port, Security(server.security), username)


def check_return_url(url: str | None) -> str | None:
    """Where a browser is sent back (a ``Location`` header): :func:`mailport.validation.check_http_url`."""
    if url is None:
        return None
    try:
        return check_http_url(url)
    except ValueError as exc:
        raise InputError(f"return_url: {exc}", field="return_url") from None


class OAuthConnectService:
    def __init__(
        self,
        oauth: OAuthServices,
        *,
        database: Database,
        mailboxes: MailboxRepository,
        apps: OAuthAppRepository,
        tenant_apps: TenantApps,
        device_flows: DeviceFlowRepository,
        clock: Clock = utc_now,
    ) -> None:
        self.oauth = oauth
        self._database = database
        self._states = DatabaseStateStore(database)
        self._mailboxes = mailboxes
        self._apps = apps
        self.tenant_apps = tenant_apps
        self._flows = device_flows
        self._clock = clock
        self._pollers: dict[str, asyncio.Task[None]] = {}

    async def aclose(self) -> None:
        for task in list(self._pollers.values()):
            task.cancel()
        for task in list(self._pollers.values()):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.oauth.aclose()

    def now(self) -> datetime:
        return self._clock()

    def return_url_of(self, state: str | None, provider: str) -> str | None:
        """The return URL of a (valid, unexpired) state, to send the browser back on failure."""
        if not state:
            return None
        try:
            return self.oauth.code_flow.peek(state, provider).return_url
        except MailportError:
            return None

    # ------------------------------------------------------------------ browser sign-in

    async def authorize(
        self,
        tenant_id: str,
        provider: str,
        *,
        email: str | None = None,
        mailbox_id: str | None = None,
        purpose: str | None = None,
        return_url: str | None = None,
    ) -> AuthorizationRequest:
        self.oauth.registry.get(provider)
        if mailbox_id is not None:
            mailbox = await self._mailboxes.get(tenant_id, mailbox_id)
            # the account it was connected with (a Microsoft UPN may differ from the address)
            email = email or (mailbox.oauth.connected_email if mailbox.oauth else None) or mailbox.email
        return await self.oauth.code_flow.start(
            provider,
            tenant_id=tenant_id,
            email=email,
            mailbox_id=mailbox_id,
            purpose=purpose,
            return_url=check_return_url(return_url),
        )

    async def begin(self, provider: str, *, state: str | None, cookies: Mapping[str, str]) -> BrowserStart:
        """The start page: bind the sign-in to this browser (see :mod:`mailport.oauth.authcode`)."""
        return await self.oauth.code_flow.begin(provider, state=state, cookies=cookies)

    async def callback(
        self,
        provider: str,
        *,
        state: str | None,
        code: str | None,
        error: str | None = None,
        error_description: str | None = None,
        cookies: Mapping[str, str],
    ) -> Connected:
        account = await self.oauth.code_flow.complete(
            provider,
            state=state,
            code=code,
            error=error,
            error_description=error_description,
            cookies=cookies,
        )
        assert account.state is not None and account.state.tenant_id is not None
        mailbox, created = await self._keep_or_revoke(
            account.state.tenant_id,
            account,
            mailbox_id=account.state.mailbox_id,
            purpose=account.state.purpose,
        )
        await self._states.purge(now=self._clock())  # consumed nonces past their expiry
        return Connected(mailbox, account.state.return_url, created)

    async def _keep_or_revoke(
        self, tenant_id: str, account: ConnectedAccount, *, mailbox_id: str | None, purpose: str | None
    ) -> tuple[Mailbox, bool]:
        """Store the account's tokens on its mailbox; tokens that cannot be stored are revoked."""
        try:
            return await self._store_account(tenant_id, account, mailbox_id=mailbox_id, purpose=purpose)
        except BaseException:
            provider = self.oauth.registry.get(account.provider)
            tokens = account.tokens
            await self.oauth.client.discard(
                provider, account.app, access_token=tokens.access_token, refresh_token=tokens.refresh_token
            )
            raise

    async def _store_account(
        self, tenant_id: str, account: ConnectedAccount, *, mailbox_id: str | None, purpose: str | None
    ) -> tuple[Mailbox, bool]:
        tokens = account.tokens
        now = self._clock()
        target = mailbox_id or await mailbox_id_for(self._database, tenant_id, account.email)
        current = await self._mailboxes.get(tenant_id, target) if target is not None else None
        email, confirmed_email = account.email, account.email if account.email_confirmed else None
        if current is not None:
            expected = (current.oauth.connected_email if current.oauth else None) or current.email
            if account.email_confirmed and email.lower() != expected.lower():
                raise OAuthAccountMismatchError(
                    f"mailbox {current.id} belongs to {expected}, but the sign-in was as another "
                    f"account ({email}); the mailbox was not changed",
                    mailbox_id=current.id,
                )
            if not account.email_confirmed:  # the provider did not say: the mailbox's own account
                email, confirmed_email = expected, current.oauth.connected_email if current.oauth else None
        grant = OAuthGrant(
            provider=account.provider,
            access_token=tokens.access_token,
            refresh_token=tokens.refresh_token,
            expires_at=tokens.expires_at,
            scopes=tuple((tokens.scope or "").split()),
            # None: the provider did not name the account; the first IMAP/SMTP login confirms it.
            connected_email=confirmed_email,
            issued_at=tokens.issued_at,
        )
        if current is None:
            new = NewMailbox(
                email=account.email,
                auth_method=AuthMethod.OAUTH2,
                imap=_server(account.imap, None),
                smtp=_server(account.smtp, None) if account.smtp else None,
                purpose=purpose,
                provider_id=account.provider,
                oauth=grant,
            )
            return await self._mailboxes.create(tenant_id, new, now=now), True
        # XOAUTH2 logs in as the signed-in account (a Microsoft UPN may differ from the address).
        username = email if email != current.email else None
        columns = {
            "auth_method": AuthMethod.OAUTH2.value,
            "provider_id": account.provider,
            **server_columns("imap", _server(account.imap, username)),
            **server_columns("smtp", _server(account.smtp, username) if account.smtp else None),
            "status": MailboxStatus.PENDING.value,
            "last_error": None,
        }
        updated = await self._mailboxes.update(
            tenant_id, current.id, now=now, columns=columns, password=None, oauth=grant
        )
        return updated, False

    # ------------------------------------------------------------------ device sign-in

    async def start_device(
        self, tenant_id: str, provider: str, *, email: str | None = None, purpose: str | None = None
    ) -> DeviceFlowRecord:
        auth = await self.oauth.device_flow.start(provider, tenant_id=tenant_id)
        record = DeviceFlowRecord(
            id=new_id("dev"),
            tenant_id=tenant_id,
            provider=provider,
            email=email,
            purpose=purpose,
            device_code=auth.device_code,
            user_code=auth.user_code,
            verification_uri=auth.verification_uri,
            verification_uri_complete=auth.verification_uri_complete,
            interval=auth.interval,
            expires_at=auth.expires_at,
            status="pending",
            mailbox_id=None,
            error=None,
        )
        await self._flows.create(record, now=self._clock())
        self._ensure_poller(tenant_id, record.id)
        return record

    async def device_status(self, tenant_id: str, flow_id: str) -> DeviceFlowRecord:
        record = await self._flows.get(tenant_id, flow_id)
        if record.status == "pending":
            if self._clock() >= record.expires_at:
                await self._flows.finish(flow_id, status="expired", now=self._clock())
                return await self._flows.get(tenant_id, flow_id)
            self._ensure_poller(tenant_id, flow_id)
        return record

    @property
    def polling(self) -> set[str]:
        """Device flows this process is polling right now."""
        return {flow_id for flow_id, task in self._pollers.items() if not task.done()}

    def _ensure_poller(self, tenant_id: str, flow_id: str) -> None:
        task = self._pollers.get(flow_id)
        if task is None or task.done():
            task = asyncio.get_running_loop().create_task(self._poll(tenant_id, flow_id))
            self._pollers[flow_id] = task
            task.add_done_callback(lambda _t: self._pollers.pop(flow_id, None))

    def _poll_lease(self, interval: int) -> datetime:
        return self._clock() + timedelta(seconds=2 * interval + POLL_LEASE_MARGIN)

    async def _poll(self, tenant_id: str, flow_id: str) -> None:
        record = await self._flows.get(tenant_id, flow_id)
        if record.status != "pending" or record.device_code is None:
            return
        # One poller per flow across workers (a device code is redeemed once): the others only
        # read the flow's state; an abandoned lease (crashed worker) runs out and is taken over.
        lease = await self._flows.claim_polling(
            flow_id, until=self._poll_lease(record.interval), now=self._clock()
        )
        if lease is None:
            return
        app = await self.tenant_apps.resolve(record.provider, tenant_id)
        auth = DeviceAuthorization(
            provider=record.provider,
            app=app,
            device_code=record.device_code,
            user_code=record.user_code,
            verification_uri=record.verification_uri,
            verification_uri_complete=record.verification_uri_complete,
            expires_at=record.expires_at,
            interval=record.interval,
        )
        interval = record.interval
        sleep = self.oauth.device_flow.sleep
        while True:
            if not await self._flows.renew_polling(lease, until=self._poll_lease(interval)):
                return  # another worker polls it now
            await sleep(interval)
            now = self._clock()
            try:
                result = await self.oauth.device_flow.poll(auth, email=record.email)
                if result.status == "slow_down":
                    interval += SLOW_DOWN_STEP
                    await self._flows.set_interval(flow_id, interval, now=now)
                    continue
                if result.status == "pending":
                    continue
                assert result.account is not None
                mailbox, _ = await self._keep_or_revoke(
                    tenant_id, result.account, mailbox_id=None, purpose=record.purpose
                )
                await self._flows.finish(flow_id, status="complete", mailbox_id=mailbox.id, now=now)
                return
            except OAuthDeniedError as exc:
                await self._flows.finish(flow_id, status="denied", error=exc.message, now=now)
                return
            except DeviceCodeExpiredError as exc:
                await self._flows.finish(flow_id, status="expired", error=exc.message, now=now)
                return
            except MailportError as exc:
                if is_temporary(exc):
                    continue  # network trouble, provider 5xx: keep polling until the code expires
                log.warning("device sign-in %s failed: %s", flow_id, exc.code)
                await self._flows.finish(flow_id, status="error", error=f"{exc.code}: {exc.message}", now=now)
                return

    # ------------------------------------------------------------------ disconnect, apps

    async def disconnect(self, tenant_id: str, mailbox_id: str) -> bool:
        """Revoke at the provider (where supported) and erase the tokens; True when revoked."""
        mailbox = await self._mailboxes.get(tenant_id, mailbox_id)
        revoked = False
        if mailbox.oauth is not None and mailbox.oauth.access_token is not None:
            try:
                revoked = await self.oauth.tokens.revoke(mailbox_id)
            except OAuthUnavailableError:
                log.warning("mailbox %s: provider unreachable for revocation; erasing tokens", mailbox_id)
        await self._mailboxes.update(
            tenant_id,
            mailbox_id,
            now=self._clock(),
            columns={"status": MailboxStatus.REAUTH_REQUIRED.value, "last_error": "OAuth disconnected"},
            oauth=None,
        )
        return revoked

    async def put_app(
        self,
        tenant_id: str,
        provider: str,
        *,
        client_id: str,
        client_secret: Secret | None,
        directory_tenant: str | None,
    ) -> StoredApp:
        self.oauth.registry.get(provider)
        return await self._apps.put(
            tenant_id,
            provider,
            client_id=client_id,
            client_secret=client_secret,
            directory_tenant=directory_tenant,
            now=self._clock(),
        )

    async def list_apps(self, tenant_id: str) -> list[StoredApp]:
        return await self._apps.list(tenant_id)

    async def delete_app(self, tenant_id: str, provider: str) -> None:
        await self._apps.delete(tenant_id, provider)


def expires_in(expires_at: datetime, now: datetime) -> int:
    return max(0, int((expires_at - now).total_seconds()))


def build_connect(
    settings: Settings,
    key_ring: KeyRing,
    *,
    database: Database,
    mailboxes: MailboxRepository,
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
        token_store=DatabaseTokenStore(database, key_ring),
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
