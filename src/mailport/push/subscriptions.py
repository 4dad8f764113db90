"""Provider subscriptions: what Gmail (``users.watch``) and Graph (``/subscriptions``) were asked
to notify about, per mailbox and scope.

A connector that subscribes records the provider's answer here (its id, its expiry, the channel
its notifications use), so that a restarted watcher — in this process or another — renews the
subscription it finds instead of creating a second one, and every holder can see what expires
soon. The connector owns ``state`` (a JSON object: Gmail keeps the historyId the watch returned),
except its ``lifecycle`` entry: the provider's lifecycle events (Graph: ``missed``,
``reauthorizationRequired``, ``subscriptionRemoved``) that the push route recorded
(:meth:`SubscriptionStore.note_lifecycle`) and the connector has not handled yet
(:meth:`SubscriptionStore.clear_lifecycle`); :meth:`SubscriptionStore.save` keeps them.
Rows go with their mailbox (``ON DELETE CASCADE``); a connector deletes the provider's side first.

**Deleting a mailbox races its watchers**: the withdrawal (``Services.withdraw_push``, run before
the row is deleted) reads the rows and deletes what they name at the provider, while a folder
watcher that ticks meanwhile may create a new subscription, which the row's deletion would then
forget at the provider (Graph keeps it until it expires, Gmail its watch for 7 days). So the
withdrawal first marks the mailbox (:meth:`SubscriptionStore.withdraw`: a marker row, scope
:data:`WITHDRAWN`), and :meth:`SubscriptionStore.save` refuses — returns False — for a marked
or deleted mailbox; a connector whose save is refused withdraws at once what it just made. Both
take the mailbox's row first (PostgreSQL: ``FOR UPDATE`` against ``FOR KEY SHARE``; SQLite: a
no-op ``UPDATE``, its one writer), so either the save commits before the mark, and the
withdrawal reads its row afterwards, or the save sees the mark: nothing is left behind. The
subscribe paths also look at the mark before asking the provider (:meth:`SubscriptionStore.withdrawn`),
so a watcher of a mailbox being deleted asks nothing new. The marker goes with the mailbox.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, exists, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import aliased

from mailport.leases import Fence
from mailport.store.database import Database, dialect_insert
from mailport.store.mailboxes import hold_mailbox
from mailport.store.tables import mailboxes, provider_subscriptions

MAILBOX_SCOPE = ""  # a subscription for the whole mailbox (Gmail's watch), not one folder
# the marker row of a mailbox being deleted (see the module docstring); a control character
# keeps it apart from every folder path and label name
WITHDRAWN = "\x1fwithdrawn"
LIFECYCLE = "lifecycle"  # state entry: {event: ISO time it was notified} not handled yet


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

    @property
    def lifecycle(self) -> dict[str, str]:
        """Lifecycle events the provider notified and the connector has not handled yet."""
        found = self.state.get(LIFECYCLE)
        return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}


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
        query = select(provider_subscriptions).where(
            provider_subscriptions.c.mailbox_id == mailbox_id, provider_subscriptions.c.scope != WITHDRAWN
        )
        async with self.database.connect() as conn:
            return [_record(row) for row in await conn.execute(query)]

    async def shared_with(self, mailbox_id: str, connector: str, scope: str = MAILBOX_SCOPE) -> list[str]:
        """Other mailboxes of the same account (any tenant) holding a ``connector`` subscription
        at ``scope``: Gmail's watch is the account's, so it is not stopped while one needs it."""
        me = aliased(mailboxes)
        other = aliased(mailboxes)
        query = (
            select(provider_subscriptions.c.mailbox_id)
            .join(other, other.c.id == provider_subscriptions.c.mailbox_id)
            .join(me, me.c.email_key == other.c.email_key)
            .where(
                me.c.id == mailbox_id,
                provider_subscriptions.c.mailbox_id != mailbox_id,
                provider_subscriptions.c.connector == connector,
                provider_subscriptions.c.scope == scope,
            )
        )
        async with self.database.connect() as conn:
            return [row.mailbox_id for row in await conn.execute(query)]

    async def withdraw(self, mailbox_id: str, *, now: datetime) -> bool:
        """Mark the mailbox as being deleted: from now on :meth:`save` refuses it, so the rows
        read after this are every subscription the provider holds for it (see the module
        docstring). False when the mailbox is already gone."""
        async with self.database.transaction() as conn:
            if not await hold_mailbox(conn, mailbox_id, exclusive=True):
                return False
            values = {"connector": "", "updated_at": now}
            statement = dialect_insert(conn, provider_subscriptions).values(
                mailbox_id=mailbox_id, scope=WITHDRAWN, created_at=now, **values
            )
            await conn.execute(
                statement.on_conflict_do_update(index_elements=["mailbox_id", "scope"], set_=values)
            )
        return True

    async def withdrawn(self, mailbox_id: str) -> bool:
        """Is the mailbox being deleted, or gone? (A subscribe path asks before asking the
        provider; :meth:`save` checks again, atomically.)"""
        present = select(exists().where(mailboxes.c.id == mailbox_id))
        async with self.database.connect() as conn:
            return not (await conn.execute(present)).scalar() or await _marked(conn, mailbox_id)

    async def save(self, subscription: Subscription, *, now: datetime, fence: Fence | None = None) -> bool:
        """Insert, or replace the row of the same mailbox and scope; lifecycle events recorded
        meanwhile are kept unless ``subscription.state`` says which are left (its ``lifecycle``).

        False, and nothing written, when the mailbox is deleted or being deleted
        (:meth:`withdraw`): the caller withdraws at the provider what it just asked for.
        ``fence``: the watcher's lease; ``LeaseLostError`` and nothing written once another
        process took the mailbox over (a paused watcher must not replace its subscription)."""
        async with self.database.transaction() as conn:
            if not await hold_mailbox(conn, subscription.mailbox_id, exclusive=False):
                return False
            if await _marked(conn, subscription.mailbox_id):
                return False
            state = dict(subscription.state)
            if LIFECYCLE not in state:
                pending = await self._pending(conn, subscription.mailbox_id, subscription.scope)
                if pending:
                    state[LIFECYCLE] = pending
            if not state.get(LIFECYCLE):
                state.pop(LIFECYCLE, None)
            values = {
                "connector": subscription.connector,
                "remote_id": subscription.remote_id,
                "channel_id": subscription.channel_id,
                "resource": subscription.resource,
                "expires_at": subscription.expires_at,
                "state": _dump(state),
                "updated_at": now,
            }
            statement = dialect_insert(conn, provider_subscriptions).values(
                mailbox_id=subscription.mailbox_id, scope=subscription.scope, created_at=now, **values
            )
            await conn.execute(
                statement.on_conflict_do_update(index_elements=["mailbox_id", "scope"], set_=values)
            )
            if fence is not None:
                await fence(conn, what="subscription")
        return True

    async def note_lifecycle(
        self, mailbox_ids: list[str], remote_id: str, event: str, *, now: datetime
    ) -> bool:
        """Record the provider's lifecycle ``event`` on the subscription ``remote_id`` of one of
        ``mailbox_ids`` (the channel's own: never another tenant's); False when none has it."""
        if not mailbox_ids:
            return False
        table = provider_subscriptions
        query = select(table.c.mailbox_id, table.c.scope, table.c.state).where(
            table.c.remote_id == remote_id, table.c.mailbox_id.in_(mailbox_ids)
        )
        async with self.database.transaction() as conn:
            rows = (await conn.execute(query.with_for_update())).all()
            for row in rows:
                state = json.loads(row.state) if row.state else {}
                found = state.get(LIFECYCLE)
                pending: dict[str, Any] = found if isinstance(found, dict) else {}
                state[LIFECYCLE] = {**pending, event: now.isoformat()}
                await self._set_state(conn, row.mailbox_id, row.scope, state, now=now)
        return bool(rows)

    async def clear_lifecycle(
        self, mailbox_id: str, scope: str, handled: dict[str, str], *, now: datetime
    ) -> None:
        """Forget the lifecycle events the connector handled (an event notified again since,
        with another time, stays)."""
        async with self.database.transaction() as conn:
            table = provider_subscriptions
            row = (
                await conn.execute(
                    select(table.c.state)
                    .where(table.c.mailbox_id == mailbox_id, table.c.scope == scope)
                    .with_for_update()
                )
            ).first()
            if row is None or not row.state:
                return
            state = json.loads(row.state)
            found = state.get(LIFECYCLE)
            pending: dict[str, Any] = found if isinstance(found, dict) else {}
            left = {k: v for k, v in pending.items() if handled.get(k) != v}
            if left:
                state[LIFECYCLE] = left
            else:
                state.pop(LIFECYCLE, None)
            await self._set_state(conn, mailbox_id, scope, state, now=now)

    @staticmethod
    async def _pending(conn: AsyncConnection, mailbox_id: str, scope: str) -> dict[str, str]:
        table = provider_subscriptions
        row = (
            await conn.execute(
                select(table.c.state)
                .where(table.c.mailbox_id == mailbox_id, table.c.scope == scope)
                .with_for_update()
            )
        ).first()
        state = json.loads(row.state) if row is not None and row.state else {}
        pending = state.get(LIFECYCLE)
        return dict(pending) if isinstance(pending, dict) else {}

    @staticmethod
    async def _set_state(
        conn: AsyncConnection, mailbox_id: str, scope: str, state: dict[str, Any], *, now: datetime
    ) -> None:
        table = provider_subscriptions
        await conn.execute(
            update(table)
            .where(table.c.mailbox_id == mailbox_id, table.c.scope == scope)
            .values(state=_dump(state), updated_at=now)
        )

    async def delete(self, mailbox_id: str, scope: str = MAILBOX_SCOPE) -> None:
        async with self.database.transaction() as conn:
            await conn.execute(
                delete(provider_subscriptions).where(
                    provider_subscriptions.c.mailbox_id == mailbox_id,
                    provider_subscriptions.c.scope == scope,
                )
            )


async def _marked(conn: AsyncConnection, mailbox_id: str) -> bool:
    table = provider_subscriptions
    query = select(exists().where(table.c.mailbox_id == mailbox_id, table.c.scope == WITHDRAWN))
    return bool((await conn.execute(query)).scalar())


def _dump(state: dict[str, Any]) -> str | None:
    return json.dumps(state, separators=(",", ":")) if state else None
