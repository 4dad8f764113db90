"""The one thing a publisher needs from a broker library: connect, publish in order with the
broker's acknowledgement, close. One module per broker implements it (:mod:`.nats`,
:mod:`.rabbitmq`, :mod:`.redis`), each importing its optional library lazily."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Protocol

from mailport.brokers.messages import BrokerMessage
from mailport.brokers.targets import BrokerTarget
from mailport.errors import ConfigurationError
from mailport.net.guard import HostGuard

EXTRAS = {"nats": ("nats", "nats-py"), "rabbitmq": ("aio_pika", "aio-pika"), "redis": ("redis", "redis")}


class Transport(Protocol):
    async def connect(self) -> None:
        """Open the connection (through the host guard); raises on failure."""

    async def publish(self, messages: Sequence[BrokerMessage]) -> None:
        """Publish ``messages`` in order; returns only once the broker acknowledged every one,
        raises otherwise (the publisher then publishes them again: at least once)."""

    async def aclose(self) -> None:
        """Close; never raises."""


def require_extra(kind: str) -> None:
    """A configured broker whose library is missing: a clear error at start-up."""
    module, package = EXTRAS[kind]
    try:
        importlib.import_module(module)
    except ImportError:
        raise ConfigurationError(
            f"MAILPORT_BROKERS names a {kind} broker but {package} is not installed: "
            f"pip install 'mailport[{'nats' if kind == 'nats' else kind}]'"
        ) from None


def make_transport(target: BrokerTarget, guard: HostGuard, *, timeout: float) -> Transport:
    require_extra(target.kind)
    if target.kind == "nats":
        from mailport.brokers.nats import NatsTransport

        return NatsTransport(target, guard, timeout=timeout)
    if target.kind == "rabbitmq":
        from mailport.brokers.rabbitmq import RabbitTransport

        return RabbitTransport(target, guard, timeout=timeout)
    from mailport.brokers.redis import RedisTransport

    return RedisTransport(target, guard, timeout=timeout)


async def vetted_address(target: BrokerTarget, guard: HostGuard) -> str:
    """The address to connect to: the host resolved once and vetted by the guard; the library
    is handed this address, so it never resolves the name again."""
    vetted = await guard.vet(target.host, target.port, field="MAILPORT_BROKERS")
    return str(vetted.addresses[0])
