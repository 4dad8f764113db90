"""Connector registry: the key stored on a mailbox (``imap``; later ``gmail_api``, ``graph``)
to the factory that builds its :class:`~mailport.connectors.base.Connector`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mailport.connectors.base import Connector
from mailport.errors import UnsupportedFeatureError

ConnectorFactory = Callable[..., Connector]

_FACTORIES: dict[str, ConnectorFactory] = {}


def register(key: str, factory: ConnectorFactory) -> None:
    _FACTORIES[key] = factory


def create(key: str, **options: Any) -> Connector:
    try:
        factory = _FACTORIES[key]
    except KeyError:
        raise UnsupportedFeatureError(
            f"no mailbox connector {key!r}", hint=f"Known connectors: {', '.join(sorted(_FACTORIES))}."
        ) from None
    return factory(**options)


def keys() -> list[str]:
    return sorted(_FACTORIES)
