"""Delivery: webhooks (signed, outbox, retries, replay, auto-disable) and the pull API.

* :class:`DeliveryService` — endpoints, deliveries, replay, backfill, pull consumers and their
  acknowledgements (who owes and accepts an event: :mod:`mailport.events.acceptance`);
* :class:`Dispatcher` — the background sender (``start()`` / ``stop()``); :func:`start_dispatcher`
  builds and starts one from the service graph;
* :class:`RetryPolicy` — backoff with jitter for 24 h and the auto-disable rule.

See ``docs/webhooks.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailport.delivery.dispatcher import Dispatcher, EndpointWorker
from mailport.delivery.repository import WebhookRepository
from mailport.delivery.retry import RetryPolicy
from mailport.delivery.service import DeliveryService
from mailport.delivery.signing import generate_secret, signature_headers

if TYPE_CHECKING:
    from mailport.services import Services

__all__ = [
    "DeliveryService",
    "Dispatcher",
    "EndpointWorker",
    "RetryPolicy",
    "WebhookRepository",
    "build_dispatcher",
    "generate_secret",
    "signature_headers",
    "start_dispatcher",
]


def build_dispatcher(services: Services, **options: object) -> Dispatcher:
    """A dispatcher on the service graph (options: see :class:`Dispatcher`)."""
    from mailport.net.guard import HostGuard

    return Dispatcher(
        repository=services.webhooks.repository,
        event_log=services.events,
        guard=HostGuard.from_settings(services.settings),
        **options,  # type: ignore[arg-type]
    )


async def start_dispatcher(services: Services, **options: object) -> Dispatcher:
    """Build and start the dispatcher; ``await dispatcher.stop()`` on shutdown."""
    dispatcher = build_dispatcher(services, **options)
    await dispatcher.start()
    return dispatcher
