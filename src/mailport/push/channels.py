"""Push channels: the rows behind ``/v1/push/<connector>/<channel>``.

A connector that subscribes to its provider's notifications first creates a channel here: mailport
generates the channel id (the URL's last segment) and a secret (Graph's ``clientState``, or a
token in a Pub/Sub push URL), stores the secret encrypted and hands both to the connector once.
The secret stays ciphertext on every read (:class:`StoredChannel`) until
:meth:`StoredChannel.authenticates` decrypts it, once per notification, to compare in constant
time.
"""

from __future__ import annotations

import hmac
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select

from mailport.crypto import KeyRing, Secret
from mailport.store.database import Database
from mailport.store.ids import new_id, plausible_id
from mailport.store.rows import from_row
from mailport.store.tables import mailboxes, push_channels
from mailport.validation import email_key

SECRET_BYTES = 32  # 43 characters: within Graph's 128-character clientState
MAX_ACCOUNTS = 1000  # distinct accounts looked up for one notification


@dataclass(frozen=True)
class NewChannel:
    """A channel just created: its secret in plaintext, to give the provider once."""

    id: str
    secret: Secret


@dataclass(frozen=True)
class StoredChannel:
    """A channel as read for authentication: the secret still encrypted."""

    id: str
    tenant_id: str
    mailbox_id: str | None  # None: shared by the tenant's mailboxes (claims name the account)
    connector: str
    secret_enc: str = field(repr=False)
    config: str | None = None  # JSON: the channel's own settings (Gmail: the tenant's topic)

    def authenticates(self, presented: Sequence[Secret | None], key_ring: KeyRing) -> bool:
        """Whether every one of ``presented`` (at least one) is this channel's secret: one
        decryption, then a constant-time comparison each, all made whatever the outcome."""
        stored = key_ring.decrypt(self.secret_enc).encode()
        results = [
            hmac.compare_digest(stored, given.reveal().encode() if given is not None else b"")
            and given is not None
            for given in presented
        ]
        return bool(results) and all(results)


class ChannelRepository:
    def __init__(self, database: Database, key_ring: KeyRing) -> None:
        self.database = database
        self.key_ring = key_ring

    async def create(
        self,
        tenant_id: str,
        connector: str,
        *,
        mailbox_id: str | None = None,
        now: datetime,
        config: dict[str, Any] | None = None,
    ) -> NewChannel:
        """A channel for one mailbox, or (``mailbox_id=None``) for all of a tenant's."""
        channel = NewChannel(new_id("pch"), Secret(secrets.token_urlsafe(SECRET_BYTES)))
        async with self.database.transaction() as conn:
            await conn.execute(
                insert(push_channels).values(
                    id=channel.id,
                    tenant_id=tenant_id,
                    mailbox_id=mailbox_id,
                    connector=connector,
                    secret_enc=self.key_ring.encrypt(channel.secret.reveal()),
                    created_at=now,
                    config=json.dumps(config) if config else None,
                )
            )
        return channel

    async def find(self, connector: str, channel_id: str) -> StoredChannel | None:
        """The channel, if it exists and belongs to ``connector``."""
        if not plausible_id(channel_id):
            return None
        query = select(push_channels).where(
            push_channels.c.id == channel_id, push_channels.c.connector == connector
        )
        async with self.database.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        return from_row(StoredChannel, row)

    async def for_mailbox(self, mailbox_id: str, connector: str) -> list[StoredChannel]:
        """The channels of one mailbox (Graph: its subscriptions' notification URLs)."""
        query = select(push_channels).where(
            push_channels.c.mailbox_id == mailbox_id, push_channels.c.connector == connector
        )
        async with self.database.connect() as conn:
            return [from_row(StoredChannel, row) for row in await conn.execute(query)]

    async def shared(self, tenant_id: str, connector: str) -> list[StoredChannel]:
        """The tenant's shared channels of ``connector`` (Gmail: its Pub/Sub push endpoints)."""
        query = select(push_channels).where(
            push_channels.c.tenant_id == tenant_id,
            push_channels.c.connector == connector,
            push_channels.c.mailbox_id.is_(None),
        )
        async with self.database.connect() as conn:
            return [from_row(StoredChannel, row) for row in await conn.execute(query)]

    def reveal(self, channel: StoredChannel) -> Secret:
        """The channel's secret in plaintext, to give the provider again (a renewal)."""
        return Secret(self.key_ring.decrypt(channel.secret_enc))

    async def targets(self, channel: StoredChannel, accounts: list[str]) -> list[str]:
        """The mailboxes a notification on ``channel`` concerns: the channel's own mailbox, or on
        a shared channel the tenant's mailboxes of the named accounts (never another tenant's)."""
        if channel.mailbox_id is not None:
            return [channel.mailbox_id]
        keys = sorted({email_key(account) for account in accounts})[:MAX_ACCOUNTS]
        if not keys:
            return []
        query = select(mailboxes.c.id).where(
            mailboxes.c.tenant_id == channel.tenant_id, mailboxes.c.email_key.in_(keys)
        )
        async with self.database.connect() as conn:
            return [row.id for row in await conn.execute(query)]

    async def delete(self, channel_id: str) -> None:
        async with self.database.transaction() as conn:
            await conn.execute(delete(push_channels).where(push_channels.c.id == channel_id))
