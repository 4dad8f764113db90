"""Microsoft Graph change notifications in: the ``graph`` connector's
:class:`~mailport.connectors.push.PushReceiver`.

Graph calls the ``notificationUrl`` (and ``lifecycleNotificationUrl``) of a subscription, both
``/v1/push/graph/<channel>`` (one channel per mailbox):

* at creation, ``POST …?validationToken=<token>``: the token must come back as ``text/plain``
  with 200 within 10 seconds, or the subscription is refused;
* a change notification, ``{"value": [{"subscriptionId", "clientState", "changeType",
  "resource", "resourceData", …}, …]}``: each item presents the subscription's ``clientState``,
  which is the channel's secret;
* a lifecycle notification, ``{"value": [{"lifecycleEvent": "missed" |
  "reauthorizationRequired" | "subscriptionRemoved", "subscriptionId", "clientState", …}]}``:
  the claim carries the event and the subscription id, and the core records it on the
  subscription's row for the connector to act on at its next tick (:mod:`mailport.push.service`).

The items' contents are never trusted beyond that: a notification only wakes the mailbox's
watchers, which follow the folder's delta link with the mailbox's own token.
"""

from __future__ import annotations

import json

from mailport.connectors.push import PushClaim, PushRequest, PushResponse, register_receiver
from mailport.crypto import Secret
from mailport.errors import PushInvalidError

KEY = "graph"
MAX_TOKEN = 2048  # Graph's validation tokens are a few hundred characters
LIFECYCLE_EVENTS = frozenset({"missed", "reauthorizationRequired", "subscriptionRemoved"})


class GraphPushReceiver:
    def handshake(self, request: PushRequest) -> PushResponse | None:
        """Echo ``validationToken`` as text/plain (Graph's subscription validation)."""
        token = request.query.get("validationToken")
        if token is None:
            return None
        if len(token) > MAX_TOKEN:
            raise PushInvalidError("the validation token is too long")
        return PushResponse(200, token.encode(), "text/plain")

    def claims(self, request: PushRequest) -> list[PushClaim]:
        try:
            document = json.loads(request.body)
        except (ValueError, UnicodeDecodeError):
            raise PushInvalidError("the body is not JSON") from None
        items = document.get("value") if isinstance(document, dict) else None
        if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
            raise PushInvalidError('expected a Graph notification: {"value": [item, …]}')
        return [_claim(item) for item in items]


def _claim(item: dict[str, object]) -> PushClaim:
    state = item.get("clientState")
    event = item.get("lifecycleEvent")
    subscription = item.get("subscriptionId")
    return PushClaim(
        Secret(state) if isinstance(state, str) and state else None,
        raw=item,
        lifecycle=event if isinstance(event, str) and event in LIFECYCLE_EVENTS else None,
        subscription_id=subscription if isinstance(subscription, str) else None,
    )


register_receiver(KEY, GraphPushReceiver())
