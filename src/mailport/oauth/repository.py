"""The OAuth storage ports on the database (SQLite or PostgreSQL): tokens on the mailbox row,
consumed states, tenants' own OAuth apps, and device flows in progress.

Tokens are written through :class:`~mailport.mailboxes.service.MailboxService` (every token
write an ``UPDATE … WHERE token_version = :expected``, compare-and-swap; the refresh lease is
the lease ``token_refresh:<mailbox id>`` of :mod:`mailport.leases`, released in the transaction
that moves the version on). The device sign-in pollers hold ``device_poll:<flow id>``. Secrets
are encrypted with the key ring and come out sealed (:class:`~mailport.crypto.Sealed`):
decrypted when used.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from mailport import leases
from mailport.config import Settings
from mailport.crypto import Cipher, Sealed, Secret
from mailport.errors import NotFoundError, ReauthRequiredError
from mailport.mailboxes.models import MailboxStatus, RefreshedTokens
from mailport.mailboxes.service import MailboxService
from mailport.oauth.providers import OAuthApp, ProviderRegistry, check_tenant
from mailport.oauth.tokens import StoredTokens, TokenSet
from mailport.store.database import Database
from mailport.store.ids import new_id
from mailport.store.rows import from_row
from mailport.store.tables import mailboxes, oauth_apps, oauth_device_flows, oauth_states
from mailport.validation import email_key

REAUTH_REQUIRED = MailboxStatus.REAUTH_REQUIRED.value


class DatabaseTokenStore:
    """:class:`~mailport.oauth.tokens.TokenStore` on the ``mailboxes`` table: it reads the tokens
    itself (sealed: decrypted when sent) and writes them through the mailbox service, the one
    writer of mailboxes."""

    def __init__(self, database: Database, key_ring: Cipher, mailboxes: MailboxService) -> None:
        self._db = database
        self._keys = key_ring
        self._mailboxes = mailboxes

    async def load(self, mailbox_id: str) -> StoredTokens:
        query = select(
            mailboxes.c.id,
            mailboxes.c.tenant_id,
            mailboxes.c.oauth_provider,
            mailboxes.c.oauth_access_token_enc,
            mailboxes.c.oauth_refresh_token_enc,
            mailboxes.c.oauth_expires_at,
            mailboxes.c.oauth_scopes,
            mailboxes.c.token_version,
            mailboxes.c.status,
            mailboxes.c.last_error,
            mailboxes.c.oauth_issued_at,
            mailboxes.c.connector,
        ).where(mailboxes.c.id == mailbox_id)
        name = leases.name(leases.TOKEN_REFRESH, mailbox_id)
        async with self._db.connect() as conn:
            row = (await conn.execute(query)).first()
            lease = (await leases.current(conn, [name])).get(name)
        if row is None:
            raise NotFoundError(f"no mailbox {mailbox_id!r}")
        if row.oauth_provider is None or row.oauth_access_token_enc is None:
            # disconnected (tokens erased): a person must sign in again, as after a dead grant
            raise ReauthRequiredError(f"mailbox {mailbox_id!r} has no OAuth tokens: sign in again")
        return StoredTokens(
            mailbox_id=row.id,
            provider=row.oauth_provider,
            tenant_id=row.tenant_id,
            tokens=TokenSet(
                access_token=Sealed(row.oauth_access_token_enc, self._keys),
                refresh_token=Sealed.of(row.oauth_refresh_token_enc, self._keys),
                expires_at=row.oauth_expires_at,
                scope=row.oauth_scopes,
                issued_at=row.oauth_issued_at,
            ),
            version=row.token_version,
            reauth_error=(row.last_error or "reauth required") if row.status == REAUTH_REQUIRED else None,
            refresh_lease_until=lease.expires_at if lease is not None else None,
            connector=row.connector,
        )

    async def claim_refresh(
        self, mailbox_id: str, *, expected_version: int, until: datetime, now: datetime
    ) -> bool:
        return await self._mailboxes.claim_token_refresh(
            mailbox_id, expected_version=expected_version, until=until, now=now
        )

    async def release_refresh(self, mailbox_id: str, *, expected_version: int) -> None:
        await self._mailboxes.release_token_refresh(mailbox_id, expected_version=expected_version)

    async def save_refreshed(self, mailbox_id: str, *, expected_version: int, tokens: TokenSet) -> bool:
        refreshed = RefreshedTokens(
            tokens.access_token, tokens.refresh_token, tokens.expires_at, tokens.scope, tokens.issued_at
        )
        return await self._mailboxes.record_refresh(
            mailbox_id, expected_version=expected_version, tokens=refreshed
        )

    async def mark_reauth_required(self, mailbox_id: str, *, error: str) -> None:
        await self._mailboxes.mark_reauth_required(mailbox_id, error=error)


async def mailbox_id_for(database: Database, tenant_id: str, email: str) -> str | None:
    """The tenant's mailbox for ``email`` (unique per tenant, whatever the case), if any."""
    query = select(mailboxes.c.id).where(
        mailboxes.c.tenant_id == tenant_id, mailboxes.c.email_key == email_key(email)
    )
    async with database.connect() as conn:
        found: str | None = (await conn.execute(query)).scalar_one_or_none()
    return found


class DatabaseStateStore:
    """:class:`~mailport.oauth.state.StateStore`: a consumed nonce is a row (primary key)."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def consume(self, nonce: str, *, expires_at: datetime) -> bool:
        try:
            async with self._db.transaction() as conn:
                await conn.execute(insert(oauth_states).values(nonce=nonce, expires_at=expires_at))
        except IntegrityError:
            return False
        return True

    async def purge(self, *, now: datetime) -> int:
        async with self._db.transaction() as conn:
            result = await conn.execute(delete(oauth_states).where(oauth_states.c.expires_at < now))
        return int(result.rowcount)


@dataclass(frozen=True)
class StoredApp:
    id: str
    tenant_id: str
    provider: str
    client_id: str
    has_secret: bool
    directory_tenant: str | None
    created_at: datetime
    updated_at: datetime


class OAuthAppRepository:
    """Tenants' own OAuth apps (one per provider); secrets encrypted, never read back out."""

    def __init__(self, database: Database, key_ring: Cipher) -> None:
        self._db = database
        self._keys = key_ring

    @staticmethod
    def _stored(row: Any) -> StoredApp:
        return from_row(StoredApp, row, has_secret=row.client_secret_enc is not None)

    async def put(
        self,
        tenant_id: str,
        provider: str,
        *,
        client_id: str,
        client_secret: Secret | None,
        directory_tenant: str | None,
        now: datetime,
    ) -> StoredApp:
        """Create or replace the tenant's app for ``provider``."""
        values = {
            "client_id": client_id,
            "client_secret_enc": self._keys.encrypt(client_secret.reveal()) if client_secret else None,
            "directory_tenant": check_tenant(directory_tenant) if directory_tenant else None,
            "updated_at": now,
        }
        where = (oauth_apps.c.tenant_id == tenant_id, oauth_apps.c.provider == provider)
        async with self._db.transaction() as conn:
            result = await conn.execute(update(oauth_apps).where(*where).values(**values))
            if result.rowcount == 0:
                await conn.execute(
                    insert(oauth_apps).values(
                        id=new_id("oap"), tenant_id=tenant_id, provider=provider, created_at=now, **values
                    )
                )
            row = (await conn.execute(select(oauth_apps).where(*where))).one()
        return self._stored(row)

    async def list(self, tenant_id: str) -> list[StoredApp]:
        query = select(oauth_apps).where(oauth_apps.c.tenant_id == tenant_id).order_by(oauth_apps.c.provider)
        async with self._db.connect() as conn:
            return [self._stored(row) for row in await conn.execute(query)]

    async def delete(self, tenant_id: str, provider: str) -> None:
        async with self._db.transaction() as conn:
            result = await conn.execute(
                delete(oauth_apps).where(
                    oauth_apps.c.tenant_id == tenant_id, oauth_apps.c.provider == provider
                )
            )
        if result.rowcount == 0:
            raise NotFoundError(f"this tenant has no OAuth app for {provider!r}")

    async def app(self, tenant_id: str, provider: str) -> OAuthApp | None:
        query = select(oauth_apps).where(
            oauth_apps.c.tenant_id == tenant_id, oauth_apps.c.provider == provider
        )
        async with self._db.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        secret = Sealed.of(row.client_secret_enc, self._keys)  # decrypted when sent to the provider
        return OAuthApp(provider, row.client_id, secret, row.directory_tenant, source="tenant")


class TenantApps:
    """:class:`~mailport.oauth.apps.AppResolver`: the tenant's own app first, else the instance's."""

    def __init__(
        self, repository: OAuthAppRepository, registry: ProviderRegistry, settings: Settings
    ) -> None:
        self._repository = repository
        self._registry = registry
        self._settings = settings

    async def resolve(self, provider: str, tenant_id: str | None) -> OAuthApp:
        definition = self._registry.get(provider)
        if tenant_id is not None:
            app = await self._repository.app(tenant_id, provider)
            if app is not None:
                return OAuthApp(
                    provider,
                    app.client_id,
                    app.client_secret,
                    app.tenant or definition.default_tenant,
                    source="tenant",
                )
        return self._registry.require_instance_app(provider, self._settings)

    async def usable(self, provider: str, tenant_id: str | None) -> bool:
        if tenant_id is not None and await self._repository.app(tenant_id, provider) is not None:
            return True
        return self._registry.instance_app(provider, self._settings) is not None


@dataclass(frozen=True)
class DeviceFlowRecord:
    id: str
    tenant_id: str
    provider: str
    email: str | None
    purpose: str | None
    device_code: Secret | None
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    interval: int
    expires_at: datetime
    status: str
    mailbox_id: str | None
    error: str | None
    connector: str | None = None  # what it is for; None: a flow started before it was stored
    owner: str | None = None  # the user its mailbox is for (issue 19); None: the tenant


def _poll_lease(flow_id: str) -> str:
    return leases.name(leases.DEVICE_POLL, flow_id)


class DeviceFlowRepository:
    def __init__(self, database: Database, key_ring: Cipher) -> None:
        self._db = database
        self._keys = key_ring
        self._holder = leases.new_holder()

    async def create(self, record: DeviceFlowRecord, *, now: datetime) -> None:
        assert record.device_code is not None
        async with self._db.transaction() as conn:
            await conn.execute(
                insert(oauth_device_flows).values(
                    id=record.id,
                    tenant_id=record.tenant_id,
                    provider=record.provider,
                    email=record.email,
                    purpose=record.purpose,
                    device_code_enc=self._keys.encrypt(record.device_code.reveal()),
                    user_code=record.user_code,
                    verification_uri=record.verification_uri,
                    verification_uri_complete=record.verification_uri_complete,
                    interval=record.interval,
                    expires_at=record.expires_at,
                    status=record.status,
                    connector=record.connector,
                    owner=record.owner,
                    created_at=now,
                    updated_at=now,
                )
            )

    async def get(self, tenant_id: str, flow_id: str, *, owner: str | None = None) -> DeviceFlowRecord:
        """The flow; with ``owner`` (a user's token), only a flow started for that user."""
        query = select(oauth_device_flows).where(
            oauth_device_flows.c.id == flow_id, oauth_device_flows.c.tenant_id == tenant_id
        )
        if owner is not None:
            query = query.where(oauth_device_flows.c.owner == owner)
        async with self._db.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            raise NotFoundError(f"no device sign-in {flow_id!r}")
        return from_row(DeviceFlowRecord, row, device_code=Sealed.of(row.device_code_enc, self._keys))

    async def finish(
        self,
        flow_id: str,
        *,
        status: str,
        now: datetime,
        mailbox_id: str | None = None,
        error: str | None = None,
    ) -> bool:
        """Move a pending flow to its end state and erase the device code (once); its polling
        lease goes too (a finished flow is never polled again)."""
        async with self._db.transaction() as conn:
            result = await conn.execute(
                update(oauth_device_flows)
                .where(oauth_device_flows.c.id == flow_id, oauth_device_flows.c.status == "pending")
                .values(
                    status=status,
                    mailbox_id=mailbox_id,
                    error=error,
                    device_code_enc=None,
                    updated_at=now,
                )
            )
            if result.rowcount == 1:
                await leases.drop(conn, _poll_lease(flow_id))
        return bool(result.rowcount == 1)

    async def claim_polling(self, flow_id: str, *, until: datetime, now: datetime) -> leases.Lease | None:
        """Take the right to poll this pending flow: one poller across all workers."""
        name = _poll_lease(flow_id)
        async with self._db.transaction() as conn:
            lease = await leases.acquire(conn, name, self._holder, now=now, until=until)
            if lease is None:
                return None
            status = select(oauth_device_flows.c.status).where(oauth_device_flows.c.id == flow_id)
            if (await conn.execute(status)).scalar_one_or_none() == "pending":
                return lease
            await leases.release(conn, name, self._holder)
        return None

    async def renew_polling(self, lease: leases.Lease, *, until: datetime) -> bool:
        """Keep polling until ``until``; False when another worker took the flow over."""
        async with self._db.transaction() as conn:
            return await leases.renew(conn, lease, until=until) is not None

    async def set_interval(self, flow_id: str, interval: int, *, now: datetime) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                update(oauth_device_flows)
                .where(oauth_device_flows.c.id == flow_id)
                .values(interval=interval, updated_at=now)
            )
