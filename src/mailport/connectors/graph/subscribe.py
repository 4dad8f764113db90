"""One watched folder's Graph subscription: created, renewed, reauthorized and recreated so that
notifications keep coming, recorded so that a restart renews instead of subscribing twice.

* **Where notifications go**: ``notificationUrl`` and ``lifecycleNotificationUrl`` are both
  ``<MAILPORT_PUBLIC_URL>/v1/push/graph/<channel>``, the mailbox's own channel (created once,
  shared by its folders' subscriptions); ``clientState`` is the channel's secret. Without a
  public URL there is no subscription: the folder is polled at the mailbox's check interval and
  the health says why.
* **Recorded** in ``provider_subscriptions`` (scope = the folder's path): the next connect, in
  this process or another, finds it and renews it (PATCH) rather than creating another.
* **Renewed** once 90 % of its life has passed, never asked beyond ``subscription_minutes``
  (Graph's cap for mail is 4230); a renewal Graph answers 404 (it dropped the subscription)
  creates a new one.
* **Lifecycle events** recorded by the push route on the row (:mod:`mailport.push.service`) are
  acted on at the next tick: ``subscriptionRemoved`` → a new subscription;
  ``reauthorizationRequired`` → ``/reauthorize`` (a renewal when that fails); ``missed`` → the
  tick's own delta catch-up already fetches what the lost notifications were about.
* **A mailbox being deleted** (its withdrawal marked it, :mod:`mailport.push.subscriptions`)
  gets no new subscription: the mark is looked at before asking Graph, and a subscription
  created while the withdrawal ran is refused by the store and deleted at Graph at once, so a
  watcher ticking between the withdrawal and the row's deletion leaves nothing behind.

A failure here never stops ingestion: the folder is polled until the next tick tries again.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from dataclasses import dataclass
from datetime import datetime, timedelta

from mailport.clock import Clock
from mailport.connectors.graph.client import GraphClient, folder_resource
from mailport.connectors.registry import PushContext
from mailport.errors import LeaseLostError, MailportError, NotFoundError, OAuthTokenRejectedError
from mailport.leases import Fence
from mailport.mailboxes.models import Mailbox
from mailport.push.channels import StoredChannel
from mailport.push.subscriptions import Subscription

log = logging.getLogger(__name__)

KEY = "graph"
CHANGE_TYPES = "created,updated,deleted"
RENEW_AT = 0.9  # of a subscription's life
RETRY_SECONDS = 60.0  # after a failed subscribe, the next try (a tick sooner does it sooner)

_CHANNEL_LOCKS: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()


def _channel_lock(mailbox_id: str) -> asyncio.Lock:
    """One channel per mailbox although each folder's connector subscribes on its own."""
    lock = _CHANNEL_LOCKS.get(mailbox_id)
    if lock is None:
        lock = asyncio.Lock()
        _CHANNEL_LOCKS[mailbox_id] = lock
    return lock


@dataclass
class SubscriptionStatus:
    live: bool = False
    expires_at: datetime | None = None
    renew_at: datetime | None = None
    why: str = "not subscribed yet"
    last_lifecycle: str | None = None


class FolderSubscription:
    """The subscription of one folder (its connector holds one)."""

    def __init__(self, mailbox: Mailbox, push: PushContext | None, *, clock: Clock) -> None:
        self.mailbox = mailbox
        self.push = push
        self.clock = clock
        self.status = SubscriptionStatus()
        self.fence: Fence | None = None  # the watcher's lease: rows are saved only under it
        self._lock = _channel_lock(mailbox.id)  # held strongly while this connector lives

    @property
    def minutes(self) -> int:
        return min(4230, self.push.subscription_minutes) if self.push else 4230

    def due_in(self, now: datetime) -> float | None:
        """Seconds until it must be renewed (None: nothing to renew)."""
        if not self.status.live or self.status.renew_at is None:
            return None
        return max(0.0, (self.status.renew_at - now).total_seconds())

    async def ensure(self, client: GraphClient, scope: str, folder_id: str) -> SubscriptionStatus:
        """Make the folder's subscription live (or say why not); never raises a provider error
        except a rejected token (the watcher's business: the next fetch would fail the same)."""
        if self.push is None or not self.push.public_url:
            self.status = SubscriptionStatus(why="no public URL (MAILPORT_PUBLIC_URL): polling")
            return self.status
        try:
            await self._ensure(client, scope, folder_id)
        except (OAuthTokenRejectedError, LeaseLostError):
            raise
        except MailportError as exc:
            log.warning(
                "mailbox %s: the Graph subscription of %s failed: [%s] %s; polling meanwhile",
                self.mailbox.id,
                scope,
                exc.code,
                exc.message,
            )
            self.status = SubscriptionStatus(
                why=f"subscribing failed: [{exc.code}] {exc.message[:200]}",
                renew_at=self.clock() + timedelta(seconds=RETRY_SECONDS),
            )
        return self.status

    async def _channel(self) -> tuple[StoredChannel, str]:
        assert self.push is not None
        async with self._lock:
            found = await self.push.channels.for_mailbox(self.mailbox.id, KEY)
            if not found:
                await self.push.channels.create(
                    self.mailbox.tenant_id, KEY, mailbox_id=self.mailbox.id, now=self.clock()
                )
                found = await self.push.channels.for_mailbox(self.mailbox.id, KEY)
        channel = sorted(found, key=lambda c: c.id)[0]
        return channel, f"{self.push.public_url.rstrip('/')}/v1/push/{KEY}/{channel.id}"

    async def _ensure(self, client: GraphClient, scope: str, folder_id: str) -> None:
        assert self.push is not None
        store = self.push.subscriptions
        if await store.withdrawn(self.mailbox.id):
            self._withdrawn()
            return
        channel, url = await self._channel()
        resource = folder_resource(folder_id)
        row = await store.get(self.mailbox.id, scope)
        now = self.clock()
        pending = row.lifecycle if row is not None else {}
        if pending:
            self.status.last_lifecycle = ", ".join(
                f"{event} at {at}" for event, at in sorted(pending.items())
            )
            log.info(
                "mailbox %s: Graph lifecycle for %s: %s", self.mailbox.id, scope, self.status.last_lifecycle
            )
        usable = (
            row is not None
            and row.remote_id is not None
            and row.resource == resource
            and row.channel_id == channel.id
            and "subscriptionRemoved" not in pending
            and (row.expires_at is None or row.expires_at > now)
        )
        if row is not None and row.remote_id is not None and not usable:
            try:  # another folder id (the folder was made again), another channel, or dropped
                await client.delete_subscription(row.remote_id)
            except MailportError as exc:
                log.info("mailbox %s: deleting the old subscription failed: %s", self.mailbox.id, exc.message)
        if not usable or row is None or row.remote_id is None:
            await self._create(client, scope, resource, channel, url, now)
        else:
            remote_id = row.remote_id
            expires = row.expires_at
            try:
                if "reauthorizationRequired" in pending:
                    expires = await self._reauthorize(client, remote_id, expires)
                if expires is None or now >= self._renew_at(expires):
                    expires = (await client.renew_subscription(remote_id, self._expiry(now))).expiration
                    log.info("mailbox %s: Graph subscription of %s renewed", self.mailbox.id, scope)
            except NotFoundError:  # Graph dropped it: subscribe again
                log.info("mailbox %s: Graph subscription of %s gone; recreating", self.mailbox.id, scope)
                await self._create(client, scope, resource, channel, url, now)
                await self._handled(scope, pending)
                return
            if expires != row.expires_at:
                saved = await store.save(
                    Subscription(
                        self.mailbox.id,
                        scope,
                        KEY,
                        remote_id,
                        channel.id,
                        resource,
                        expires,
                        {k: v for k, v in row.state.items() if k != "lifecycle"},  # events kept
                    ),
                    now=now,
                    fence=self.fence,  # renewed at Graph: the same subscription as the new owner's
                )
                if not saved:  # the mailbox is being deleted; its withdrawal deletes remote_id
                    self._withdrawn()
                    return
            self._live(expires)
        await self._handled(scope, pending)

    async def _reauthorize(
        self, client: GraphClient, remote_id: str, expires: datetime | None
    ) -> datetime | None:
        """Answer ``reauthorizationRequired``; a renewal does too when reauthorize is refused."""
        try:
            await client.reauthorize_subscription(remote_id)
            log.info("mailbox %s: Graph subscription %s reauthorized", self.mailbox.id, remote_id[:40])
            return expires
        except NotFoundError:
            raise
        except MailportError as exc:
            log.info("mailbox %s: reauthorize refused (%s); renewing", self.mailbox.id, exc.code)
            return None  # renewed by the caller

    async def _create(
        self, client: GraphClient, scope: str, resource: str, channel: StoredChannel, url: str, now: datetime
    ) -> None:
        assert self.push is not None
        secret = self.push.channels.reveal(channel)
        created = await client.create_subscription(
            resource, CHANGE_TYPES, url, url, secret.reveal(), self._expiry(now)
        )
        try:
            saved = await self.push.subscriptions.save(
                Subscription(
                    self.mailbox.id,
                    scope,
                    KEY,
                    created.id,
                    channel.id,
                    resource,
                    created.expiration,
                    {"lifecycle": {}},  # events about an earlier subscription are void
                ),
                now=now,
                fence=self.fence,
            )
        except LeaseLostError:  # another process watches the folder now, with its own subscription
            await self._drop_made(client, created.id)
            raise
        if not saved:  # the mailbox is being deleted: its withdrawal has not seen this one
            log.info("mailbox %s: being deleted; withdrawing the subscription just made", self.mailbox.id)
            await self._drop_made(client, created.id)
            self._withdrawn()
            return
        log.info("mailbox %s: Graph subscription for %s created", self.mailbox.id, scope)
        self._live(created.expiration)

    async def _drop_made(self, client: GraphClient, remote_id: str) -> None:
        """Delete at Graph the subscription just made that no row will name."""
        try:
            await client.delete_subscription(remote_id)
        except MailportError as exc:
            log.warning(
                "mailbox %s: deleting the subscription just made failed (%s); it runs out by itself",
                self.mailbox.id,
                exc.code,
            )

    async def _handled(self, scope: str, pending: dict[str, str]) -> None:
        if pending and self.push is not None:
            await self.push.subscriptions.clear_lifecycle(self.mailbox.id, scope, pending, now=self.clock())

    def _expiry(self, now: datetime) -> datetime:
        return now + timedelta(minutes=self.minutes)

    def _renew_at(self, expires: datetime) -> datetime:
        life = timedelta(minutes=self.minutes)
        return expires - life * (1 - RENEW_AT)

    def _withdrawn(self) -> None:
        self.status = SubscriptionStatus(why="the mailbox is being deleted")

    def _live(self, expires: datetime | None) -> None:
        self.status = SubscriptionStatus(
            live=True,
            expires_at=expires,
            renew_at=self._renew_at(expires) if expires else None,
            why="subscribed",
            last_lifecycle=self.status.last_lifecycle,
        )

    async def remove(self, client: GraphClient, scope: str) -> None:
        """Delete the provider's subscription and its row (the folder is no longer watched)."""
        if self.push is None:
            return
        row = await self.push.subscriptions.get(self.mailbox.id, scope)
        if row is not None and row.remote_id:
            await client.delete_subscription(row.remote_id)
        await self.push.subscriptions.delete(self.mailbox.id, scope)


async def unsubscribe_mailbox(client: GraphClient, push: PushContext, mailbox_id: str) -> None:
    """Delete every Graph subscription of a mailbox being deleted, their rows, and its push
    channel (a late notification then finds no channel). Each subscription is tried even when
    another failed; the first failure is raised afterwards (a subscription left behind stops at
    its expiry, and its notifications are refused)."""
    failures: list[MailportError] = []
    for row in await push.subscriptions.for_mailbox(mailbox_id):
        if row.connector != KEY:
            continue
        if row.remote_id:
            try:
                await client.delete_subscription(row.remote_id)
            except MailportError as exc:
                failures.append(exc)
        await push.subscriptions.delete(mailbox_id, row.scope)
    for channel in await push.channels.for_mailbox(mailbox_id, KEY):
        await push.channels.delete(channel.id)
    if failures:
        raise failures[0]
