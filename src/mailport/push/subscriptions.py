"""Provider subscriptions: what Gmail (``users.watch``) and Graph (``/subscriptions``) were asked
to notify about, per mailbox and scope.

A connector that subscribes records the provider's answer here (its id, its expiry, the channel
its notifications use), so that a restarted watcher — in this process or another — renews the
subscription it finds instead of creating a second one, and every holder can see what expires
soon. The connector owns ``state`` (a JSON object: Gmail keeps the historyId the watch returned).
Rows go with their mailbox (``ON DELETE CASCADE``); a connector deletes the provider's side first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select

from mailport.store.database import Database, dialect_insert
from mailport.store.tables import provider_subscriptions

MAILBOX_SCOPE = ""  # a subscription for the whole mailbox (Gmail's watch), not one folder


@dataclass(frozen=True)
class Subscription:
    mailbox_id: str
    scope: str
    connector: str
    remote_id: str | None = None
    channel_id: str | None = None
    resource: str | None = None
    expires_at: datetime | None = None
    state: dict[str, Any] = field(default_factory=dict)

    def expires_within(self, now: datetime, seconds: float) -> bool:
        """Does it lapse within ``seconds`` of ``now`` (or has it no known expiry)?"""
        return self.expires_at is None or (self.expires_at - now).total_seconds() <= seconds


def _record(row: Any) -> Subscription:
    return Subscription(
        mailbox_id=row.mailbox_id,
        scope=row.scope,
        connector=row.connector,
        remote_id=row.remote_id,
        channel_id=row.channel_id,
        resource=row.resource,
        expires_at=row.expires_at,
        state=json.loads(row.state) if row.state else {},
    )


class SubscriptionStore:
    def __init__(self, database: Database) -> None:
        self.database = database

    async def get(self, mailbox_id: str, scope: str = MAILBOX_SCOPE) -> Subscription | None:
        query = select(provider_subscriptions).where(
            provider_subscriptions.c.mailbox_id == mailbox_id, provider_subscriptions.c.scope == scope
        )
        async with self.database.connect() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else _record(row)

    async def for_mailbox(self, mailbox_id: str) -> list[Subscription]:
        query = select(provider_subscriptions).where(provider_subscriptions.c.mailbox_id == mailbox_id)
        async with self.database.connect() as conn:
            return [_record(row) for row in await conn.execute(query)]

    async def save(self, subscription: Subscription, *, now: datetime) -> None:
        """Insert, or replace the row of the same mailbox and scope."""
        values = {
            "connector": subscription.connector,
            "remote_id": subscription.remote_id,
            "channel_id": subscription.channel_id,
            "resource": subscription.resource,
            "expires_at": subscription.expires_at,
            "state": json.dumps(subscription.state, separators=(",", ":")) if subscription.state else None,
            "updated_at": now,
        }
        async with self.database.transaction() as conn:
            statement = dialect_insert(conn, provider_subscriptions).values(
                mailbox_id=subscription.mailbox_id, scope=subscription.scope, created_at=now, **values
            )
            await conn.execute(
                statement.on_conflict_do_update(index_elements=["mailbox_id", "scope"], set_=values)
            )

    async def delete(self, mailbox_id: str, scope: str = MAILBOX_SCOPE) -> None:
        async with self.database.transaction() as conn:
            await conn.execute(
                delete(provider_subscriptions).where(
                    provider_subscriptions.c.mailbox_id == mailbox_id,
                    provider_subscriptions.c.scope == scope,
                )
            )
