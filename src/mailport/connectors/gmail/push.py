"""Gmail push: the Pub/Sub push receiver, and keeping a mailbox's ``users.watch`` alive.

**Receiving** (:class:`GmailPushReceiver`, registered under ``gmail_api``): a Pub/Sub push
subscription POSTs ``{"message": {"data": base64(JSON {"emailAddress", "historyId"}),
"messageId", "publishTime"}, "subscription"}`` to ``/v1/push/gmail_api/<channel>?token=<secret>``.
The channel is the tenant's shared one (one Pub/Sub push subscription serves all of a tenant's
mailboxes), the ``token`` query parameter its secret and ``emailAddress`` the account to wake.
Nothing else in the body is trusted or needed: the watcher fetches from its own cursor.

**Watching** (:class:`WatchKeeper`): ``users.watch`` makes Gmail publish the mailbox's changes on
a Pub/Sub topic — the tenant's (its shared channel's ``config["topic"]``, set with
``POST /v1/push-channels/gmail_api``) or else the operator's (``MAILPORT_GMAIL_PUBSUB_TOPIC``).
A watch lasts 7 days; Google asks for a renewal once a day, which is what we do (a watch
answered within a day is not asked again). What Gmail answered is recorded in
:class:`~mailport.push.subscriptions.SubscriptionStore` (scope ``""``: the watch is mailbox-wide),
so that a restart or another folder's watcher renews rather than piling up calls; ``users.watch``
replaces the previous watch, so two watchers renewing at once is harmless. A disconnect never
stops the watch (other folders' watchers and the next start share it); deleting the mailbox does
(:func:`stop_watch`). A mailbox being deleted (its withdrawal marked it,
:mod:`mailport.push.subscriptions`) is not watched again: the mark is looked at before
``users.watch``, and a watch made while the withdrawal ran is refused by the store and stopped at
once (unless another mailbox of the account holds a watch, as :func:`stop_watch` does).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from mailport.clock import Clock, utc_now
from mailport.connectors.gmail.client import GmailClient
from mailport.connectors.push import PushClaim, PushRequest, PushResponse, register_receiver
from mailport.connectors.registry import PushContext
from mailport.crypto import Secret
from mailport.errors import AuthenticationError, MailportError, OAuthError, PushInvalidError
from mailport.leases import Fence
from mailport.push.subscriptions import MAILBOX_SCOPE, Subscription

log = logging.getLogger(__name__)

KEY = "gmail_api"
WATCH_RENEW = timedelta(days=1)  # Google: "call watch at least every 7 days … we recommend once per day"
RECHECK = timedelta(seconds=60)  # how often a watcher looks again at the recorded watch and topic


# ------------------------------------------------------------------------------ receiving


class GmailPushReceiver:
    """Pub/Sub push JSON -> one claim (the ``token`` as secret, ``emailAddress`` as account)."""

    def handshake(self, request: PushRequest) -> PushResponse | None:
        return None  # Pub/Sub push has no validation call

    def claims(self, request: PushRequest) -> list[PushClaim]:
        try:
            document = json.loads(request.body)
            data = document["message"]["data"]
            decoded = json.loads(base64.b64decode(data + "=" * (-len(data) % 4), altchars=b"-_"))
            account = decoded["emailAddress"]
            if not isinstance(account, str) or not account:
                raise TypeError("emailAddress")
        except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError):
            raise PushInvalidError(
                'not a Pub/Sub push: expected {"message": {"data": base64({"emailAddress", "historyId"})}}'
            ) from None
        token = request.query.get("token")
        return [PushClaim(Secret(token) if token else None, account=account, raw=decoded)]


register_receiver(KEY, GmailPushReceiver())


# ------------------------------------------------------------------------------ watching


@dataclass
class WatchStatus:
    live: bool = False
    topic: str | None = None
    expires_at: datetime | None = None
    renewed_at: datetime | None = None
    error: str | None = None  # the last refusal of users.watch, for health details


class WatchKeeper:
    """Keeps one mailbox's ``users.watch`` on its topic (see the module docstring)."""

    def __init__(
        self,
        client: GmailClient,
        *,
        mailbox_id: str,
        tenant_id: str,
        push: PushContext | None,
        clock: Clock = utc_now,
        fence: Fence | None = None,
        renew_every: timedelta = WATCH_RENEW,
        recheck: timedelta = RECHECK,
    ) -> None:
        self._client = client
        self._mailbox_id = mailbox_id
        self._tenant_id = tenant_id
        self._push = push
        self._clock = clock
        self._fence = fence  # the watcher's lease: the row is saved only while it is this tenure
        self.renew_every = renew_every
        self._recheck = recheck
        self._next_check: datetime | None = None
        self.status = WatchStatus()
        self.renewals = 0  # users.watch calls made by this keeper (tests, health)

    def live(self) -> bool:
        """Is a watch in force now (notifications will come)?"""
        expires = self.status.expires_at
        return self.status.live and expires is not None and expires > self._clock()

    async def topic(self) -> tuple[str, str | None] | None:
        """The topic to watch and the tenant's channel for it: the tenant's shared Gmail channel
        wins over the operator's topic; None when neither is set (then the mailbox is polled)."""
        if self._push is None:
            return None
        for channel in await self._push.channels.shared(self._tenant_id, KEY):
            config = json.loads(channel.config) if channel.config else {}
            if isinstance(config.get("topic"), str) and config["topic"]:
                return config["topic"], channel.id
        if self._push.gmail_topic:
            return self._push.gmail_topic, None
        return None

    async def ensure(self, *, force: bool = False) -> bool:
        """Watch (or renew) when due; returns whether push is live. A refusal of ``users.watch``
        is not fatal: it is logged and kept for health, and the mailbox is polled meanwhile
        (an authentication failure is the watcher's business and goes up)."""
        now = self._clock()
        if not force and self._next_check is not None and now < self._next_check:
            return self.live()
        self._next_check = now + self._recheck
        target = await self.topic() if self._push is not None else None
        if target is None or self._push is None:
            self.status = WatchStatus()
            return False
        topic, channel_id = target
        store = self._push.subscriptions
        if await store.withdrawn(self._mailbox_id):
            self.status = WatchStatus(topic=topic, error="the mailbox is being deleted")
            return False
        recorded = await store.get(self._mailbox_id, MAILBOX_SCOPE)
        if recorded is not None and not _due(recorded, topic, now, self.renew_every):
            self._keep(recorded, topic)
            return self.live()
        try:
            answer = await self._client.watch(topic)
        except (AuthenticationError, OAuthError):
            raise
        except MailportError as exc:
            log.warning(
                "mailbox %s: users.watch on %s refused: [%s] %s", self._mailbox_id, topic, exc.code, exc
            )
            if recorded is not None and recorded.resource == topic:
                self._keep(recorded, topic)  # the previous watch lasts until it expires
            else:
                self.status = WatchStatus(topic=topic)
            self.status.error = f"[{exc.code}] {exc.message}"
            return self.live()
        expires = answer.expiration
        subscription = Subscription(
            mailbox_id=self._mailbox_id,
            scope=MAILBOX_SCOPE,
            connector=KEY,
            channel_id=channel_id,
            resource=topic,
            expires_at=expires,
            state={"history_id": answer.history_id, "watched_at": now.isoformat()},
        )
        if not await store.save(subscription, now=now, fence=self._fence):
            await self._withdraw_refused(topic)
            return False
        self.renewals += 1
        self.status = WatchStatus(live=True, topic=topic, expires_at=expires, renewed_at=now)
        log.info("mailbox %s: users.watch on %s until %s", self._mailbox_id, topic, expires)
        return self.live()

    async def _withdraw_refused(self, topic: str) -> None:
        """The store refused the watch just made (the mailbox is being deleted, and its
        withdrawal may have found nothing to stop yet): stop it, unless another mailbox of the
        account holds a watch (``users.stop`` ends the account's)."""
        assert self._push is not None
        log.info("mailbox %s: being deleted; stopping the watch just made", self._mailbox_id)
        self.status = WatchStatus(topic=topic, error="the mailbox is being deleted")
        if await self._push.subscriptions.shared_with(self._mailbox_id, KEY, MAILBOX_SCOPE):
            return
        try:
            await self._client.stop()
        except MailportError as exc:
            log.warning(
                "mailbox %s: stopping the watch just made failed (%s); it runs out by itself",
                self._mailbox_id,
                exc.code,
            )

    def _keep(self, recorded: Subscription, topic: str) -> None:
        watched = recorded.state.get("watched_at")
        self.status = WatchStatus(
            live=True,
            topic=topic,
            expires_at=recorded.expires_at,
            renewed_at=datetime.fromisoformat(watched) if isinstance(watched, str) else None,
        )


def _due(recorded: Subscription, topic: str, now: datetime, renew_every: timedelta) -> bool:
    if recorded.resource != topic or recorded.expires_at is None or recorded.expires_at <= now:
        return True
    watched = recorded.state.get("watched_at")
    if not isinstance(watched, str):
        return True
    try:
        return now - datetime.fromisoformat(watched) >= renew_every
    except ValueError:
        return True


async def stop_watch(client: GmailClient, push: PushContext | None, mailbox_id: str) -> None:
    """Stop the mailbox's watch and forget it (the mailbox is being deleted). ``users.stop``
    ends the account's watch, so it is left running while another mailbox of the same account
    (another tenant's) holds a watch row: that one still needs it."""
    if push is None:
        return
    if await push.subscriptions.get(mailbox_id, MAILBOX_SCOPE) is None:
        return
    if not await push.subscriptions.shared_with(mailbox_id, KEY, MAILBOX_SCOPE):
        await client.stop()
    await push.subscriptions.delete(mailbox_id, MAILBOX_SCOPE)
