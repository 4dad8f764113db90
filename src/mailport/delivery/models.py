"""Webhook endpoints, deliveries and attempts as plain dataclasses (no I/O, no ORM).

Event types a tenant can subscribe to are listed in :data:`EVENT_TYPES`; an endpoint with no
``events`` list receives every type except the opt-in ones (:data:`mailport.events.OPT_IN_TYPES`:
changes made on the server), which only an endpoint listing them receives.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from mailport.crypto import Secret
from mailport.events import EventType, subscribes

EVENT_TYPES: tuple[str, ...] = tuple(t.value for t in EventType)

WEBHOOK_DISABLED = EventType.WEBHOOK_DISABLED.value


class EndpointStatus(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # waiting for its (next) attempt
    DELIVERED = "delivered"  # the endpoint answered 2xx
    DEAD = "dead"  # retries exhausted (or the endpoint was disabled); replayable


@dataclass(frozen=True)
class WebhookEndpoint:
    id: str
    tenant_id: str
    url: str
    events: tuple[str, ...] | None  # None = every type but the opt-in ones
    description: str | None
    secret: Secret
    status: EndpointStatus
    disabled_reason: str | None
    failing_since: datetime | None
    last_success_at: datetime | None
    created_at: datetime
    updated_at: datetime
    batch_size: int = 1  # consecutive events of one mailbox per request (docs/webhooks.md)

    def subscribes(self, event_type: str) -> bool:
        return subscribes(self.events, event_type)

    @property
    def active(self) -> bool:
        return self.status is EndpointStatus.ACTIVE


@dataclass(frozen=True)
class Attempt:
    id: str
    delivery_id: str
    attempted_at: datetime
    result: str  # success | http_error | timeout | network_error | refused
    status_code: int | None
    error: str | None
    duration_ms: int


@dataclass(frozen=True)
class Delivery:
    id: str
    endpoint_id: str
    event_id: str
    event_seq: int
    event_type: str
    mailbox_id: str | None
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    attempt_log: tuple[Attempt, ...] = ()
