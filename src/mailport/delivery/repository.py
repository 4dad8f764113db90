"""The three webhook stores on one database, as the service graph hands them around.

Why a module of its own: endpoints (:mod:`mailport.delivery.endpoints`), the outbox
(:mod:`mailport.delivery.outbox`) and the delivery history (:mod:`mailport.delivery.history`)
are built together, the history on the endpoints' tenant check, and reached as
``services.webhooks.repository``. New code uses the store it needs (``repository.outbox``);
code written when they were one class may still call a method on the whole
(``repository.fanout(...)``), which finds it on the store that has it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mailport.crypto import KeyRing
from mailport.delivery.endpoints import EndpointRepository
from mailport.delivery.history import DeliveryHistory
from mailport.delivery.outbox import AttemptRecord, Outbox, PendingDelivery, event_body
from mailport.store.database import Database

__all__ = [
    "AttemptRecord",
    "DeliveryHistory",
    "EndpointRepository",
    "Outbox",
    "PendingDelivery",
    "WebhookRepository",
    "event_body",
]


class WebhookRepository:
    def __init__(self, database: Database, key_ring: KeyRing) -> None:
        self.database = database
        self.endpoints = EndpointRepository(database, key_ring)
        self.outbox = Outbox(database)
        self.history = DeliveryHistory(database, self.endpoints)

    if not TYPE_CHECKING:  # typed code names the store; mypy flags a method called on the whole

        def __getattr__(self, name: str) -> Any:
            stores = (self.__dict__.get(part) for part in ("endpoints", "outbox", "history"))
            for store in stores:
                if store is not None and not name.startswith("_") and hasattr(store, name):
                    return getattr(store, name)
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
