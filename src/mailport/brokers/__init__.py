"""Brokers: the event log published to NATS JetStream, RabbitMQ and Redis Streams.

Besides webhooks and the pull API, an operator may list brokers in ``MAILPORT_BROKERS``
(comma-separated URLs, :mod:`.targets`). Each gets a :class:`~.publisher.Publisher` in every
process that runs delivery; a lease keeps one of them active per broker. Each broker's library
is an optional extra (``mailport[nats]``, ``mailport[rabbitmq]``, ``mailport[redis]``), imported
only when that broker is configured; a configured broker whose extra is missing stops start-up
with a ``config_invalid`` error naming the extra. See ``docs/brokers.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailport.brokers.publisher import Publisher
from mailport.brokers.targets import BrokerTarget, parse
from mailport.brokers.transport import make_transport
from mailport.errors import ConfigurationError
from mailport.net.guard import HostGuard
from mailport.net.resolve import DnsResolver, SystemResolver

if TYPE_CHECKING:
    from mailport.config import Settings
    from mailport.services import Services

__all__ = ["BrokerTarget", "Publisher", "build_publisher", "start_publishers", "targets_of"]


def targets_of(settings: Settings) -> list[BrokerTarget]:
    """The configured brokers, parsed (``ConfigurationError`` on a bad or repeated entry)."""
    found = [parse(url.get_secret_value()) for url in settings.brokers]
    names = [t.name for t in found]
    if len(set(names)) != len(names):
        raise ConfigurationError(
            "MAILPORT_BROKERS: two entries publish to the same place (or share a ?name=)"
        )
    return found


def operator_guard(settings: Settings) -> HostGuard:
    """Brokers are the operator's configuration, not a user's: every address is allowed, but the
    name is still resolved once, by mailport's resolver (``MAILPORT_DNS_NAMESERVERS``)."""
    resolver = DnsResolver(settings.dns_nameservers) if settings.dns_nameservers else SystemResolver()
    return HostGuard.for_operator(resolver=resolver)


def build_publisher(services: Services, url: str, **options: object) -> Publisher:
    """A publisher of the event log to the broker at ``url`` (options: see :class:`Publisher`)."""
    target = parse(url)
    timeout = float(options.pop("timeout", 10.0))  # type: ignore[arg-type]
    transport = make_transport(target, operator_guard(services.settings), timeout=timeout)
    return Publisher(target, transport, event_log=services.events, **options)  # type: ignore[arg-type]


def start_publishers(services: Services) -> list[Publisher]:
    """One started publisher per configured broker (none when ``MAILPORT_BROKERS`` is empty)."""
    guard = operator_guard(services.settings)
    publishers = [
        Publisher(t, make_transport(t, guard, timeout=10.0), event_log=services.events)
        for t in targets_of(services.settings)
    ]
    for publisher in publishers:
        publisher.start()
    return publishers
