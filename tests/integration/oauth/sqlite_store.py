"""The OAuth storage ports on real SQLite (a tiny table), so compare-and-swap is real in tests.

The production adapter lives with the mailbox store (``mailboxes.token_version``); this one
keeps exactly the same contract: every write is an ``UPDATE … WHERE token_version = :expected``
and its row count says who won.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Column, Float, Integer, MetaData, String, Table, Text, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from mailport.crypto import KeyRing, Secret
from mailport.errors import NotFoundError
from mailport.oauth.tokens import StoredTokens, TokenSet

metadata = MetaData()

oauth_tokens = Table(
    "oauth_tokens",
    metadata,
    Column("mailbox_id", String(40), primary_key=True),
    Column("provider", String(50), nullable=False),
    Column("tenant_id", String(40)),
    Column("access_token_enc", Text, nullable=False),
    Column("refresh_token_enc", Text),
    Column("expires_at", Float),
    Column("scope", Text),
    Column("issued_at", Float),
    Column("token_version", Integer, nullable=False),
    Column("reauth_error", Text),
    Column("refresh_lease_until", Float),
)

oauth_states = Table(
    "oauth_states",
    metadata,
    Column("nonce", String(64), primary_key=True),
    Column("expires_at", Float, nullable=False),
)


def _ts(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def _dt(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value is not None else None


async def open_engine(url: str) -> AsyncEngine:
    engine = create_async_engine(url, connect_args={"timeout": 30})
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    return engine


class SQLiteTokenStore:
    def __init__(self, engine: AsyncEngine, key_ring: KeyRing) -> None:
        self.engine = engine
        self.key_ring = key_ring

    async def create(
        self, mailbox_id: str, provider: str, tokens: TokenSet, *, tenant_id: str | None = None
    ) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(oauth_tokens).values(
                    mailbox_id=mailbox_id,
                    provider=provider,
                    tenant_id=tenant_id,
                    token_version=0,
                    **self._token_columns(tokens),
                )
            )

    def _token_columns(self, tokens: TokenSet) -> dict[str, object]:
        return {
            "access_token_enc": self.key_ring.encrypt(tokens.access_token.reveal()),
            "refresh_token_enc": (
                self.key_ring.encrypt(tokens.refresh_token.reveal()) if tokens.refresh_token else None
            ),
            "expires_at": _ts(tokens.expires_at),
            "scope": tokens.scope,
            "issued_at": _ts(tokens.issued_at),
        }

    async def load(self, mailbox_id: str) -> StoredTokens:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(select(oauth_tokens).where(oauth_tokens.c.mailbox_id == mailbox_id))
            ).first()
        if row is None:
            raise NotFoundError(f"no OAuth tokens for mailbox {mailbox_id}")
        refresh = row.refresh_token_enc
        return StoredTokens(
            mailbox_id=row.mailbox_id,
            provider=row.provider,
            tenant_id=row.tenant_id,
            tokens=TokenSet(
                access_token=Secret(self.key_ring.decrypt(row.access_token_enc)),
                refresh_token=Secret(self.key_ring.decrypt(refresh)) if refresh else None,
                expires_at=_dt(row.expires_at),
                scope=row.scope,
                issued_at=_dt(row.issued_at),
            ),
            version=row.token_version,
            reauth_error=row.reauth_error,
            refresh_lease_until=_dt(row.refresh_lease_until),
        )

    async def _update(self, mailbox_id: str, expected_version: int, *extra: object, **values: object) -> bool:
        statement = (
            update(oauth_tokens)
            .where(oauth_tokens.c.mailbox_id == mailbox_id, oauth_tokens.c.token_version == expected_version)
            .where(*extra)  # type: ignore[arg-type]
            .values(**values)
        )
        async with self.engine.begin() as conn:
            result = await conn.execute(statement)
        return result.rowcount == 1

    async def claim_refresh(
        self, mailbox_id: str, *, expected_version: int, until: datetime, now: datetime
    ) -> bool:
        lease = oauth_tokens.c.refresh_lease_until
        free = (lease.is_(None)) | (lease <= now.timestamp())
        return await self._update(mailbox_id, expected_version, free, refresh_lease_until=until.timestamp())

    async def release_refresh(self, mailbox_id: str, *, expected_version: int) -> None:
        await self._update(mailbox_id, expected_version, refresh_lease_until=None)

    async def save_refreshed(self, mailbox_id: str, *, expected_version: int, tokens: TokenSet) -> bool:
        return await self._update(
            mailbox_id,
            expected_version,
            token_version=expected_version + 1,
            refresh_lease_until=None,
            reauth_error=None,
            **self._token_columns(tokens),
        )

    async def mark_reauth_required(self, mailbox_id: str, *, error: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                update(oauth_tokens)
                .where(oauth_tokens.c.mailbox_id == mailbox_id)
                .values(reauth_error=error, refresh_lease_until=None)
            )


class SQLiteStateStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def consume(self, nonce: str, *, expires_at: datetime) -> bool:
        try:
            async with self.engine.begin() as conn:
                row = {"nonce": nonce, "expires_at": expires_at.timestamp()}
                await conn.execute(insert(oauth_states).values(**row))
        except IntegrityError:
            return False
        return True
