"""Provider registry: the key stored on a mailbox (``imap``; later ``gmail_api``, ``graph``)
to the factory that builds its :class:`~mailport.providers.base.MailboxProvider`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mailport.errors import UnsupportedFeatureError
from mailport.providers.base import MailboxProvider

ProviderFactory = Callable[..., MailboxProvider]

_FACTORIES: dict[str, ProviderFactory] = {}


def register(key: str, factory: ProviderFactory) -> None:
    _FACTORIES[key] = factory


def create(key: str, **options: Any) -> MailboxProvider:
    try:
        factory = _FACTORIES[key]
    except KeyError:
        raise UnsupportedFeatureError(
            f"no mailbox provider {key!r}", hint=f"Known providers: {', '.join(sorted(_FACTORIES))}."
        ) from None
    return factory(**options)


def keys() -> list[str]:
    return sorted(_FACTORIES)
