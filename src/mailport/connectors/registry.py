"""Connector registry: the key stored on a mailbox (``imap``; later ``pop3``, ``gmail_api``,
``graph``) to the factory that builds its :class:`~mailport.connectors.base.Connector` and the
features it declares (so a request can be refused before any watcher runs)."""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mailport.connectors.base import Connector, Feature
from mailport.crypto import Secret
from mailport.errors import UnsupportedFeatureError

if TYPE_CHECKING:
    from mailport.mailboxes.models import Mailbox
    from mailport.net.guard import HostGuard
    from mailport.net.trust import Certificate
    from mailport.oauth.providers import MailApi
    from mailport.push.channels import ChannelRepository
    from mailport.push.subscriptions import SubscriptionStore

TokenSource = Callable[[], Awaitable[Secret]]
ForceRefresh = Callable[[Secret | None], Awaitable[Secret]]


@dataclass(frozen=True)
class PushContext:
    """What a connector needs to subscribe to its provider's notifications (Gmail, Graph): the
    service's public base URL (notification URLs start there; empty: unreachable, so poll), the
    channels and the subscriptions it records, and the operator's Pub/Sub topic for Gmail."""

    public_url: str
    channels: ChannelRepository
    subscriptions: SubscriptionStore
    gmail_topic: str | None = None
    subscription_minutes: int = 4230  # Graph: how long a subscription is asked for (its cap)


@dataclass(frozen=True)
class ConnectorContext:
    """What the composition root hands every connector it builds: the mailbox's OAuth tokens,
    the TLS trust, the SSRF guard and the service-wide limits. A connector uses what it needs."""

    token_source: TokenSource | None = None
    force_refresh: ForceRefresh | None = None
    ssl_context: Callable[[Certificate | None], ssl.SSLContext] | None = None  # None: system CAs
    guard: HostGuard | None = None
    max_message_bytes: int = 25 * 1024 * 1024
    push_renew_seconds: float = 25 * 60  # IMAP: IDLE; Gmail, Graph: the watch or subscription
    api: MailApi | None = None  # Gmail API / Graph: base URL (the providers file may point it elsewhere)
    push: PushContext | None = None  # Gmail / Graph: subscribing to notifications
    api_concurrency: int = 4  # requests in flight per mailbox (Graph's MailboxConcurrency is 4)
    poll_seconds: float = 300.0  # API connectors: catch up this often when no notification came


ConnectorFactory = Callable[["Mailbox", ConnectorContext], Connector]


@dataclass(frozen=True)
class Registered:
    factory: ConnectorFactory
    capabilities: frozenset[Feature]


_CONNECTORS: dict[str, Registered] = {}


def register(key: str, factory: ConnectorFactory, capabilities: frozenset[Feature]) -> None:
    """Make ``key`` a connector a mailbox may name (a later registration of a key replaces it)."""
    _CONNECTORS[key] = Registered(factory, capabilities)


def unregister(key: str) -> None:
    _CONNECTORS.pop(key, None)


def _get(key: str) -> Registered:
    try:
        return _CONNECTORS[key]
    except KeyError:
        raise UnsupportedFeatureError(
            f"no mailbox connector {key!r}", hint=f"Known connectors: {', '.join(keys())}."
        ) from None


def create(mailbox: Mailbox, context: ConnectorContext) -> Connector:
    """The connector for ``mailbox``, chosen by ``mailbox.connector``."""
    return _get(mailbox.connector).factory(mailbox, context)


def capabilities(key: str) -> frozenset[Feature]:
    """What connector ``key`` declares it can do (push may still depend on the server)."""
    return _get(key).capabilities


def keys() -> list[str]:
    return sorted(_CONNECTORS)
