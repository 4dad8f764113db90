"""The push hooks: what a connector fills so that its provider's notifications wake its watchers.

Gmail (Cloud Pub/Sub push) and Microsoft Graph (change notifications) call an HTTP endpoint of
ours when a mailbox changes. Both are the same three steps, and only the first two differ per
provider, so a connector's :class:`PushReceiver` fills two hooks (as an anymail backend parses
its provider's webhooks) and the core does the rest once (:mod:`mailport.push`):

1. :meth:`PushReceiver.handshake` answers a provider's validation call, when the request is one
   (Graph: ``POST …?validationToken=…`` must be echoed as ``text/plain`` within 10 s);
2. :meth:`PushReceiver.claims` translates a notification into :class:`PushClaim` s: the secret
   each item presents (Graph: ``clientState`` per item; Pub/Sub: a token in the push URL) and,
   for a channel shared by a tenant's mailboxes, the account it is about (Gmail: the
   ``emailAddress`` inside ``message.data``);
3. the core compares every presented secret with the channel's stored one in constant time,
   records one wake-up per mailbox and answers 202 — it never fetches mail on the request.

Receivers are pure translators: they never touch the database, never see a stored secret and
raise :class:`~mailport.errors.PushInvalidError` for a body they cannot read. They register by
connector key (``gmail_api``, ``graph``), as connectors do in :mod:`mailport.connectors.registry`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from mailport.crypto import Secret
from mailport.errors import UnknownConnectorError


@dataclass(frozen=True, slots=True)
class PushRequest:
    """An incoming notification, free of the web framework: what a receiver may look at."""

    channel: str  # the last path segment: which channel (subscription) the provider was given
    query: Mapping[str, str]
    headers: Mapping[str, str]  # lower-case names
    body: bytes


@dataclass(frozen=True, slots=True)
class PushResponse:
    """What to answer the provider directly (a handshake)."""

    status: int
    body: bytes = b""
    media_type: str = "text/plain"


@dataclass(frozen=True, slots=True)
class PushClaim:
    """One notification item: the secret it presents (None: it presents none) and, on a channel
    shared by a tenant's mailboxes, the address of the account it is about. A lifecycle item
    (Graph: ``missed``, ``reauthorizationRequired``, ``subscriptionRemoved``) names its event and
    the provider's subscription id; the core records it on that subscription's row
    (:meth:`~mailport.push.subscriptions.SubscriptionStore.note_lifecycle`) for the connector
    to act on at its next tick."""

    secret: Secret | None
    account: str | None = None
    raw: Mapping[str, object] = field(default_factory=dict, repr=False)  # the provider's item
    lifecycle: str | None = None
    subscription_id: str | None = None


@runtime_checkable
class PushReceiver(Protocol):
    """The two hooks of a push-capable connector (see the module docstring)."""

    def handshake(self, request: PushRequest) -> PushResponse | None:
        """The answer to a provider's validation call, or None when this is no such call."""
        ...

    def claims(self, request: PushRequest) -> list[PushClaim]:
        """The notification's items; raise ``PushInvalidError`` for a body that is not one."""
        ...


_RECEIVERS: dict[str, PushReceiver] = {}


def register_receiver(key: str, receiver: PushReceiver) -> None:
    _RECEIVERS[key] = receiver


def unregister_receiver(key: str) -> None:
    _RECEIVERS.pop(key, None)


def receiver_for(key: str) -> PushReceiver:
    """The receiver of connector ``key``; ``unknown_connector`` (404) when it has none."""
    try:
        return _RECEIVERS[key]
    except KeyError:
        raise UnknownConnectorError(f"no connector {key[:40]!r} receives push notifications") from None


def receiver_keys() -> list[str]:
    return sorted(_RECEIVERS)
