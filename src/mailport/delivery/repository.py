"""The three webhook stores on one database, as the service graph hands them around.

Why a module of its own: endpoints (:mod:`mailport.delivery.endpoints`), the outbox
(:mod:`mailport.delivery.outbox`) and the delivery history (:mod:`mailport.delivery.history`)
are built together, the history on the endpoints' tenant check, and reached as
``services.webhooks.repository``; callers use the store they need (``repository.outbox``).
"""

from __future__ import annotations

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
    """Endpoints, outbox and history, built once per database."""

    def __init__(self, database: Database, key_ring: KeyRing) -> None:
        self.database = database
        self.endpoints = EndpointRepository(database, key_ring)
        self.outbox = Outbox(database)
        self.history = DeliveryHistory(database, self.endpoints)
