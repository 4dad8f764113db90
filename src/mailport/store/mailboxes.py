"""Mailboxes in the database; secrets are encrypted on the way in and come out sealed
(:class:`~mailport.crypto.Sealed`: ciphertext until the moment of use, so a listing decrypts nothing).

Only :class:`~mailport.mailboxes.service.MailboxService` calls the writing methods (a test checks
it), so that every write passes its checks and fires its change notification.

Every read and write a tenant can cause takes ``tenant_id``: a row of another tenant is
indistinguishable from a missing one (:class:`~mailport.errors.NotFoundError`). Workers that
act for every tenant (watchers, token refresh) use the ``*_by_id`` methods.

A tenant has one mailbox per address, compared as :func:`mailport.validation.email_key` does
(``DUP@EXAMPLE.COM`` is ``dup@example.com``): the ``email_key`` column under a unique index, so
concurrent creates cannot both win; a second one is 409 ``conflict`` naming the first.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import Select, case, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from mailport import leases
from mailport.contacts import schedule
from mailport.contacts.models import ContactSettings
from mailport.crypto import Cipher, Sealed, Secret
from mailport.errors import ConflictError, NotFoundError
from mailport.mailboxes.models import (
    AuthMethod,
    Health,
    Mailbox,
    MailboxStatus,
    NewMailbox,
    OAuthGrant,
    ProcessingSettings,
    RefreshedTokens,
    Security,
    ServerSettings,
    WatchedFolder,
)
from mailport.net.trust import Certificate
from mailport.sending.models import SendingSettings
from mailport.store.database import Database
from mailport.store.ids import new_id, plausible_id
from mailport.store.rows import from_row
from mailport.store.tables import mailboxes
from mailport.validation import email_key

ERROR_WINDOW = timedelta(hours=24)


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()

# Columns a caller may change through :meth:`MailboxRepository.update` (secrets go separately).
UPDATABLE = frozenset(
    {
        "label",
        "purpose",
        "provider_id",
        "imap_host",
        "imap_port",
        "imap_security",
        "imap_username",
        "imap_trusted_cert",
        "pop3_host",
        "pop3_port",
        "pop3_security",
        "pop3_username",
        "pop3_trusted_cert",
        "smtp_host",
        "smtp_port",
        "smtp_security",
        "smtp_username",
        "smtp_trusted_cert",
        "auth_method",
        "from_name",
        "check_interval",
        "folder",
        "folders",
        "sending",
        "contacts",
        "owner",
        "after_processing",
        "status",
        "last_error",
    }
)


def server_columns(prefix: str, server: ServerSettings | None) -> dict[str, Any]:
    return {
        f"{prefix}_host": server.host if server else None,
        f"{prefix}_port": server.port if server else None,
        f"{prefix}_security": server.security.value if server else None,
        f"{prefix}_username": server.username if server else None,
        f"{prefix}_trusted_cert": server.trusted_certificate.pem
        if server and server.trusted_certificate
        else None,
    }


def server_from_row(row: Any, prefix: str) -> ServerSettings | None:
    """The inverse of :func:`server_columns`: None where the mailbox has no such server."""
    host = getattr(row, f"{prefix}_host")
    if host is None:
        return None
    pem = getattr(row, f"{prefix}_trusted_cert")
    return ServerSettings(
        host,
        getattr(row, f"{prefix}_port"),
        Security(getattr(row, f"{prefix}_security")),
        getattr(row, f"{prefix}_username"),
        Certificate.from_pem(pem) if pem else None,
    )


def settings_columns(settings: ProcessingSettings) -> dict[str, Any]:
    return {
        "from_name": settings.from_name,
        "check_interval": settings.check_interval,
        "folder": settings.folder,
        "after_processing": settings.after_processing,
        "folders": folders_column(settings.folders),
        "sending": sending_column(settings.sending),
        "contacts": contacts_column(settings.contacts),
    }


def contacts_column(contacts: ContactSettings | None) -> str | None:
    """The ``contacts`` column: JSON, or NULL for a mailbox that does not harvest contacts."""
    return None if contacts is None else json.dumps(contacts.to_json(), ensure_ascii=False)


def contacts_from_column(text: str | None) -> ContactSettings | None:
    return ContactSettings.from_json(json.loads(text)) if text else None


def sending_column(sending: SendingSettings) -> str | None:
    """The ``sending`` column: JSON, or NULL for the defaults."""
    if sending == SendingSettings():
        return None
    return json.dumps(sending.to_json(), ensure_ascii=False)


def folders_column(folders: Sequence[WatchedFolder]) -> str | None:
    """The ``folders`` column: JSON, or NULL for a mailbox that watches ``folder`` alone."""
    if not folders:
        return None
    return json.dumps(
        [{"folder": f.spec, "added_at": f.added_at.isoformat() if f.added_at else None} for f in folders],
        ensure_ascii=False,
    )


def folders_from_column(text: str | None) -> tuple[WatchedFolder, ...]:
    if not text:
        return ()
    return tuple(
        WatchedFolder(
            item["folder"], datetime.fromisoformat(item["added_at"]) if item.get("added_at") else None
        )
        for item in json.loads(text)
    )


async def hold_mailbox(conn: AsyncConnection, mailbox_id: str, *, exclusive: bool) -> bool:
    """Take the mailbox's row until ``conn``'s transaction ends (False: it is gone), for writes
    elsewhere that must not interleave with one another (a deletion's withdrawal mark and a
    provider subscription's save, :mod:`mailport.push.subscriptions`): PostgreSQL
    ``FOR UPDATE`` (``exclusive``) conflicts with ``FOR KEY SHARE`` (shared holders wait neither
    for each other nor for the mailbox's other writes); SQLite has one writer, taken by a no-op
    ``UPDATE`` before anything is read. Changes nothing."""
    if conn.dialect.name == "postgresql":
        query = select(mailboxes.c.id).where(mailboxes.c.id == mailbox_id)
        locked = query.with_for_update() if exclusive else query.with_for_update(read=True, key_share=True)
        return (await conn.execute(locked)).first() is not None
    result = await conn.execute(
        update(mailboxes).where(mailboxes.c.id == mailbox_id).values(connector=mailboxes.c.connector)
    )
    return bool(result.rowcount)


def _refresh_lease(mailbox_id: str) -> str:
    return leases.name(leases.TOKEN_REFRESH, mailbox_id)


class MailboxRepository:
    def __init__(self, database: Database, key_ring: Cipher) -> None:
        self._db = database
        self._keys = key_ring
        self._holder = leases.new_holder()  # of the token refresh leases taken here

    # --- mapping --------------------------------------------------------------------------

    def _encrypt(self, secret: Secret | None) -> str | None:
        if secret is None:
            return None
        unchanged = secret.sealed_by(self._keys) if isinstance(secret, Sealed) else None
        return unchanged or self._keys.encrypt(secret.reveal())

    def _sealed(self, token: str | None) -> Sealed | None:
        return Sealed.of(token, self._keys)

    def _oauth_columns(self, grant: OAuthGrant | None) -> dict[str, Any]:
        return {
            "oauth_provider": grant.provider if grant else None,
            "oauth_access_token_enc": self._encrypt(grant.access_token) if grant else None,
            "oauth_refresh_token_enc": self._encrypt(grant.refresh_token) if grant else None,
            "oauth_expires_at": grant.expires_at if grant else None,
            "oauth_scopes": " ".join(grant.scopes) if grant else None,
            "oauth_connected_email": grant.connected_email if grant else None,
            "oauth_issued_at": grant.issued_at if grant else None,
        }

    def _mailbox(self, row: Any) -> Mailbox:
        oauth = None
        if row.oauth_provider is not None:
            oauth = OAuthGrant(
                provider=row.oauth_provider,
                access_token=self._sealed(row.oauth_access_token_enc),
                refresh_token=self._sealed(row.oauth_refresh_token_enc),
                expires_at=row.oauth_expires_at,
                scopes=tuple((row.oauth_scopes or "").split()),
                connected_email=row.oauth_connected_email,
                issued_at=row.oauth_issued_at,
            )
        return from_row(
            Mailbox,
            row,
            auth_method=AuthMethod(row.auth_method),
            imap=server_from_row(row, "imap"),
            pop3=server_from_row(row, "pop3"),
            smtp=server_from_row(row, "smtp"),
            password=self._sealed(row.password_enc),
            oauth=oauth,
            settings=from_row(
                ProcessingSettings,
                row,
                folders=folders_from_column(row.folders),
                sending=SendingSettings.from_json(json.loads(row.sending) if row.sending else None),
                contacts=contacts_from_column(row.contacts),
            ),
            health=from_row(Health, row, status=MailboxStatus(row.status)),
        )

    async def _one(self, query: Select[Any], what: str) -> Mailbox:
        if not plausible_id(what):
            raise NotFoundError(f"no mailbox {what!r}")
        async with self._db.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            raise NotFoundError(f"no mailbox {what!r}")
        return self._mailbox(row)

    # --- tenant-scoped ----------------------------------------------------------------------

    async def create(self, tenant_id: str, new: NewMailbox, *, now: datetime) -> Mailbox:
        mailbox_id = new_id("mbx")
        values = {
            "id": mailbox_id,
            "tenant_id": tenant_id,
            "email": new.email,
            "email_key": email_key(new.email),
            "label": new.label,
            "purpose": new.purpose,
            "provider_id": new.provider_id,
            "connector": new.connector,
            "owner": new.owner,
            **server_columns("imap", new.imap),
            **server_columns("pop3", new.pop3),
            **server_columns("smtp", new.smtp),
            "auth_method": new.auth_method.value,
            "password_enc": self._encrypt(new.password),
            **self._oauth_columns(new.oauth),
            "token_version": 0,
            **settings_columns(new.settings),
            "status": MailboxStatus.PENDING.value,
            "error_count_24h": 0,
            "created_at": now,
            "updated_at": now,
        }
        try:
            async with self._db.transaction() as conn:
                await conn.execute(insert(mailboxes).values(**values))
                if new.settings.contacts is not None:
                    await schedule.follow(conn, mailbox_id, None, new.settings.contacts, now=now)
        except IntegrityError as exc:
            raise await self._duplicate(tenant_id, new.email) from exc
        return await self.get(tenant_id, mailbox_id)

    async def _duplicate(self, tenant_id: str, email: str, *, exclude: str | None = None) -> ConflictError:
        """The 409 for a second mailbox with the address of an existing one (named when found)."""
        query = select(mailboxes.c.id, mailboxes.c.email).where(
            mailboxes.c.tenant_id == tenant_id, mailboxes.c.email_key == email_key(email)
        )
        if exclude is not None:
            query = query.where(mailboxes.c.id != exclude)
        async with self._db.connect() as conn:
            existing = (await conn.execute(query)).first()
        named = f" ({existing.id}, {existing.email})" if existing is not None else ""
        return ConflictError(
            f"this tenant already has a mailbox for {email}{named}; addresses are compared "
            "regardless of case",
            field="email",
            mailbox_id=existing.id if existing is not None else None,
            hint="Update the existing mailbox (PATCH) or delete it first.",
        )

    async def get(self, tenant_id: str, mailbox_id: str, *, owner: str | None = None) -> Mailbox:
        """The tenant's mailbox; with ``owner`` (a user's token) only if that user owns it, so
        another user's or an unowned mailbox is ``not_found`` like another tenant's."""
        query = select(mailboxes).where(mailboxes.c.id == mailbox_id, mailboxes.c.tenant_id == tenant_id)
        if owner is not None:
            query = query.where(mailboxes.c.owner == owner)
        return await self._one(query, mailbox_id)

    async def page(
        self,
        tenant_id: str,
        *,
        purpose: str | None = None,
        status: MailboxStatus | None = None,
        owner: str | None = None,
        after: str | None = None,
        limit: int = 50,
    ) -> list[Mailbox]:
        """A page of the tenant's mailboxes (``owner``: only that user's)."""
        query = select(mailboxes).where(mailboxes.c.tenant_id == tenant_id)
        if owner is not None:
            query = query.where(mailboxes.c.owner == owner)
        if purpose is not None:
            query = query.where(mailboxes.c.purpose == purpose)
        if status is not None:
            query = query.where(mailboxes.c.status == status.value)
        if after is not None:
            query = query.where(mailboxes.c.id > after)
        async with self._db.connect() as conn:
            rows = await conn.execute(query.order_by(mailboxes.c.id).limit(limit))
            return [self._mailbox(row) for row in rows]

    async def owned_ids(self, tenant_id: str, owner: str) -> set[str]:
        """The ids of one owner's mailboxes (to narrow rows that name a mailbox)."""
        query = select(mailboxes.c.id).where(mailboxes.c.tenant_id == tenant_id, mailboxes.c.owner == owner)
        async with self._db.connect() as conn:
            return {row.id for row in await conn.execute(query)}

    async def update(
        self,
        tenant_id: str,
        mailbox_id: str,
        *,
        now: datetime,
        columns: Mapping[str, Any] | None = None,
        password: Secret | None | _Unset = UNSET,
        oauth: OAuthGrant | None | _Unset = UNSET,
    ) -> Mailbox:
        """Change plain ``columns`` (names in :data:`UPDATABLE`) and, when given, the secrets."""
        if not plausible_id(mailbox_id):
            raise NotFoundError(f"no mailbox {mailbox_id!r}")
        values: dict[str, Any] = dict(columns or {})
        unknown = set(values) - UPDATABLE
        if unknown:
            raise ValueError(f"not updatable: {sorted(unknown)}")
        if not isinstance(password, _Unset):
            values["password_enc"] = self._encrypt(password)
        if not isinstance(oauth, _Unset):
            values.update(self._oauth_columns(oauth))
            values["token_version"] = mailboxes.c.token_version + 1
        values["updated_at"] = now
        where = (mailboxes.c.id == mailbox_id, mailboxes.c.tenant_id == tenant_id)
        email: str | None = None
        try:
            async with self._db.transaction() as conn:
                if values.get("status", MailboxStatus.DISABLED.value) != MailboxStatus.DISABLED.value:
                    # enabling a duplicate that migration 0009 disabled claims its address again
                    row = (
                        await conn.execute(select(mailboxes.c.email, mailboxes.c.email_key).where(*where))
                    ).first()
                    if row is not None and row.email_key is None:
                        email = row.email
                        values["email_key"] = email_key(row.email)
                before: Any = UNSET
                if "contacts" in values:  # harvesting switched on, off or changed: its schedule follows
                    found = (await conn.execute(select(mailboxes.c.contacts).where(*where))).first()
                    before = contacts_from_column(found.contacts) if found is not None else UNSET
                result = await conn.execute(update(mailboxes).where(*where).values(**values))
                if result.rowcount and not isinstance(before, _Unset):
                    after = contacts_from_column(values["contacts"])
                    await schedule.follow(conn, mailbox_id, before, after, now=now)
        except IntegrityError as exc:
            assert email is not None
            raise await self._duplicate(tenant_id, email, exclude=mailbox_id) from exc
        if result.rowcount == 0:
            raise NotFoundError(f"no mailbox {mailbox_id!r}")
        return await self.get(tenant_id, mailbox_id)

    async def delete(self, tenant_id: str, mailbox_id: str) -> None:
        if not plausible_id(mailbox_id):
            raise NotFoundError(f"no mailbox {mailbox_id!r}")
        async with self._db.transaction() as conn:
            result = await conn.execute(
                delete(mailboxes).where(mailboxes.c.id == mailbox_id, mailboxes.c.tenant_id == tenant_id)
            )
        if result.rowcount == 0:
            raise NotFoundError(f"no mailbox {mailbox_id!r}")

    async def count(self, tenant_id: str) -> int:
        query = select(func.count()).select_from(mailboxes).where(mailboxes.c.tenant_id == tenant_id)
        async with self._db.connect() as conn:
            return int((await conn.execute(query)).scalar_one())

    # --- workers (every tenant) --------------------------------------------------------------

    async def get_by_id(self, mailbox_id: str) -> Mailbox:
        return await self._one(select(mailboxes).where(mailboxes.c.id == mailbox_id), mailbox_id)

    async def page_all(
        self, *, after: str | None = None, limit: int = 200, statuses: tuple[MailboxStatus, ...] = ()
    ) -> list[Mailbox]:
        """Every tenant's mailboxes in id order (for watchers), optionally by status."""
        query = select(mailboxes)
        if statuses:
            query = query.where(mailboxes.c.status.in_([s.value for s in statuses]))
        if after is not None:
            query = query.where(mailboxes.c.id > after)
        async with self._db.connect() as conn:
            return [
                self._mailbox(row) for row in await conn.execute(query.order_by(mailboxes.c.id).limit(limit))
            ]

    async def save_oauth_tokens(
        self, mailbox_id: str, grant: OAuthGrant, *, expected_version: int, now: datetime
    ) -> bool:
        """Compare-and-swap: store ``grant`` only if nobody refreshed since ``expected_version``.

        Returns False when another worker won the race (reload the mailbox and use its tokens).
        """
        statement = (
            update(mailboxes)
            .where(mailboxes.c.id == mailbox_id, mailboxes.c.token_version == expected_version)
            .values(**self._oauth_columns(grant), token_version=expected_version + 1, updated_at=now)
        )
        async with self._db.transaction() as conn:
            result = await conn.execute(statement)
        return bool(result.rowcount == 1)

    # --- OAuth token refresh (compare-and-swap on ``token_version``) ----------------------------

    async def claim_token_refresh(
        self, mailbox_id: str, *, expected_version: int, until: datetime, now: datetime
    ) -> bool:
        """Take the lease ``token_refresh:<mailbox id>`` while the tokens are still at
        ``expected_version`` (the lease first: a holder's release commits with its new version, so
        the version read after taking the lease is the one the holder left)."""
        name = _refresh_lease(mailbox_id)
        async with self._db.transaction() as conn:
            if await leases.acquire(conn, name, self._holder, now=now, until=until) is None:
                return False
            version = select(mailboxes.c.token_version).where(mailboxes.c.id == mailbox_id)
            if (await conn.execute(version)).scalar_one_or_none() == expected_version:
                return True
            await leases.release(conn, name, self._holder)
        return False

    async def release_token_refresh(self, mailbox_id: str, *, expected_version: int) -> None:
        async with self._db.transaction() as conn:
            await leases.release(conn, _refresh_lease(mailbox_id), self._holder)

    async def save_refreshed_tokens(
        self, mailbox_id: str, *, expected_version: int, tokens: RefreshedTokens
    ) -> bool:
        """Store a refresh's tokens in one write, bump the version, drop the lease (in the same
        transaction) and lift a reauth mark (a refresh the provider accepted proves the grant
        alive; the watcher's next login sets the status)."""
        marked = mailboxes.c.status == MailboxStatus.REAUTH_REQUIRED.value
        statement = (
            update(mailboxes)
            .where(mailboxes.c.id == mailbox_id, mailboxes.c.token_version == expected_version)
            .values(
                token_version=expected_version + 1,
                status=case((marked, MailboxStatus.PENDING.value), else_=mailboxes.c.status),
                last_error=case((marked, None), else_=mailboxes.c.last_error),
                oauth_access_token_enc=self._encrypt(tokens.access_token),
                oauth_refresh_token_enc=self._encrypt(tokens.refresh_token),
                oauth_expires_at=tokens.expires_at,
                oauth_scopes=tokens.scope,
                oauth_issued_at=tokens.issued_at,
            )
        )
        async with self._db.transaction() as conn:
            saved = (await conn.execute(statement)).rowcount == 1
            if saved:
                await leases.release(conn, _refresh_lease(mailbox_id), self._holder)
        return bool(saved)

    async def mark_reauth_required(self, mailbox_id: str, *, error: str) -> None:
        """The grant is dead: ``reauth_required`` with the provider's words; the lease is dropped."""
        async with self._db.transaction() as conn:
            await conn.execute(
                update(mailboxes)
                .where(mailboxes.c.id == mailbox_id)
                .values(status=MailboxStatus.REAUTH_REQUIRED.value, last_error=error[:2000])
            )
            await leases.release(conn, _refresh_lease(mailbox_id), self._holder)

    async def record_health(
        self,
        mailbox_id: str,
        *,
        status: MailboxStatus,
        error: str | None,
        at: datetime,
        tenant_id: str | None = None,
        fence: leases.Fence | None = None,
    ) -> Mailbox:
        """Record a test or sync outcome: success stamps ``last_success_at``; an error counts
        towards ``error_count_24h`` (a window restarted 24 h after its first error). A disabled
        mailbox stays disabled: a watcher or test finishing after the switch never re-enables it.
        With ``tenant_id``, a mailbox of another tenant is a missing one. ``fence``: a watcher's
        lease; the write is refused (``LeaseLostError``) once another process took it over."""
        where = [mailboxes.c.id == mailbox_id]
        if tenant_id is not None:
            where.append(mailboxes.c.tenant_id == tenant_id)
        async with self._db.transaction() as conn:
            row = (
                await conn.execute(
                    select(mailboxes.c.error_count_24h, mailboxes.c.errors_since).where(*where)
                )
            ).first()
            if row is None:
                raise NotFoundError(f"no mailbox {mailbox_id!r}")
            count, since = int(row.error_count_24h), row.errors_since
            if since is None or at - since >= ERROR_WINDOW:
                count, since = 0, None
            disabled = MailboxStatus.DISABLED.value
            # decided in the statement itself: a switch committed after the read above still wins
            kept = case((mailboxes.c.status == disabled, disabled), else_=status.value)
            values: dict[str, Any] = {"status": kept, "last_tested_at": at, "updated_at": at}
            if error is None:
                values.update(last_success_at=at, last_error=None)
            else:
                values.update(last_error=error[:2000], error_count_24h=count + 1, errors_since=since or at)
            if error is None and since is None:
                values["error_count_24h"] = 0
            await conn.execute(update(mailboxes).where(*where).values(**values))
            if fence is not None:
                await fence(conn, what="health")
        return await self.get_by_id(mailbox_id)
