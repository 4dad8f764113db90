"""Receive a push notification: answer the handshake, authenticate, record the wake-ups.

The flow every push-capable connector shares, written once (a connector only translates, in its
:class:`~mailport.connectors.push.PushReceiver`):

* an unknown connector key is ``unknown_connector`` (404) — that says nothing about mailboxes;
* a handshake is answered at once, without the database (Graph wants it within 10 s);
* every item of the notification must present the channel's secret; an unknown channel, a
  channel of another connector and a wrong or missing secret all get the same
  ``push_unauthenticated`` (401), after the same work (a decoy secret is decrypted and compared
  when the channel does not exist), so a caller without the secret learns nothing about which
  channels or mailboxes exist;
* an authenticated notification records one wake-up per mailbox it concerns
  (:func:`mailport.push.wakeups.request_wakes`) and is answered 202 at once: the watcher, in
  whichever process holds it, fetches the mail. A watcher held by this very process (``serve``
  runs the API and the watchers together) is woken at once as well (:meth:`PushService.add_local`),
  so a notification costs no poll interval there. A channel belongs to one tenant, so a
  notification can only ever wake that tenant's mailboxes.
* a lifecycle item (Graph: ``missed``, ``reauthorizationRequired``, ``subscriptionRemoved``) is
  recorded, after authentication, on the matching subscription row of the channel's mailboxes
  (:meth:`~mailport.push.subscriptions.SubscriptionStore.note_lifecycle`), then the mailbox is
  woken like for any notification: the connector acts on it at that tick (a delta catch-up for
  ``missed`` is the tick itself; a renewal or reauthorization; a new subscription).

Rejection is cheap (a bounded body, one primary-key read, one decryption): there is no
per-caller rate limit, which behind a proxy would let anyone throttle the providers themselves.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Sequence

from mailport.clock import Clock, utc_now
from mailport.connectors.push import PushReceiver, PushRequest, PushResponse, receiver_for
from mailport.errors import PushUnauthenticatedError
from mailport.metrics import PUSH_NOTIFICATIONS
from mailport.push.channels import ChannelRepository, StoredChannel
from mailport.push.subscriptions import SubscriptionStore
from mailport.push.wakeups import Wakeable, request_wakes

log = logging.getLogger(__name__)

ACCEPTED = PushResponse(202, b'{"status":"accepted"}', "application/json")


class PushService:
    def __init__(
        self,
        channels: ChannelRepository,
        *,
        receivers: Callable[[str], PushReceiver] = receiver_for,
        clock: Clock = utc_now,
        subscriptions: SubscriptionStore | None = None,
    ) -> None:
        self.channels = channels
        self.subscriptions = subscriptions or SubscriptionStore(channels.database)
        self._receivers = receivers
        self._clock = clock
        decoy = channels.key_ring.encrypt(secrets.token_urlsafe(32))
        self._decoy = StoredChannel("", "", None, "", decoy)
        self._local: list[Callable[[str], Wakeable | None]] = []

    def add_local(self, lookup: Callable[[str], Wakeable | None]) -> Callable[[], None]:
        """Also wake the watchers ``lookup`` finds in this process at once (an orchestrator
        beside the API, as in ``serve``), rather than at the follower's next look; returns the
        function that stops it."""
        self._local.append(lookup)
        return lambda: self._local.remove(lookup) if lookup in self._local else None

    async def wake(self, mailbox_ids: Sequence[str]) -> None:
        """Record a wake-up for each mailbox (served by whichever process holds its watcher) and
        wake the watchers held in this process now. Also what a Pub/Sub puller calls."""
        if not mailbox_ids:
            return
        async with self.channels.database.transaction() as conn:
            await request_wakes(conn, mailbox_ids, now=self._clock())
        for mailbox_id in mailbox_ids:
            for lookup in list(self._local):
                watcher = lookup(mailbox_id)
                if watcher is not None:
                    watcher.wake()

    async def receive(self, connector: str, request: PushRequest) -> PushResponse:
        """The answer to one request on ``/v1/push/<connector>/<channel>``."""
        receiver = self._receivers(connector)
        handshake = receiver.handshake(request)
        if handshake is not None:
            PUSH_NOTIFICATIONS.labels(connector=connector, result="handshake").inc()
            return handshake
        claims = receiver.claims(request)
        channel = await self.channels.find(connector, request.channel)
        checked = channel or self._decoy  # the same work when the channel does not exist
        authentic = checked.authenticates([claim.secret for claim in claims], self.channels.key_ring)
        if channel is None or not authentic:
            PUSH_NOTIFICATIONS.labels(connector=connector, result="refused").inc()
            log.debug("push notification refused (connector %s, channel %.40r)", connector, request.channel)
            raise PushUnauthenticatedError("the notification is not authenticated")
        mailbox_ids = await self.channels.targets(channel, [c.account for c in claims if c.account])
        for claim in claims:
            if claim.lifecycle is not None and claim.subscription_id is not None:
                noted = await self.subscriptions.note_lifecycle(
                    mailbox_ids, claim.subscription_id, claim.lifecycle, now=self._clock()
                )
                log.info(
                    "push: lifecycle event %s for subscription %.60s (%s)",
                    claim.lifecycle,
                    claim.subscription_id,
                    "recorded" if noted else "no such subscription",
                )
                PUSH_NOTIFICATIONS.labels(connector=connector, result=f"lifecycle_{claim.lifecycle}").inc()
        await self.wake(mailbox_ids)
        PUSH_NOTIFICATIONS.labels(connector=connector, result="accepted").inc()
        return ACCEPTED
