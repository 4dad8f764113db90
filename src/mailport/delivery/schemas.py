"""Request and response bodies of ``/v1/webhooks`` and ``/v1/events`` (never ORM rows).

The signing secret appears in exactly one response: the one that created the endpoint
(:class:`WebhookCreated`). Requests refuse unknown fields; a secret they carry is left out of
the model's ``repr`` and of ``str()`` of its validation errors.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    field_validator,
)

from mailport.crypto.secret_input import SecretText
from mailport.delivery.consumers import PullConsumer
from mailport.delivery.models import EVENT_TYPES, Delivery
from mailport.validation import RequestModel, clean_line

EventType = Literal[
    "message.received",
    "mailbox.connected",
    "mailbox.error",
    "mailbox.reauth_required",
    "mailbox.reset",
    "message.action_failed",
    "webhook.disabled",
    "message.updated",
    "message.deleted",
    "folder.created",
    "folder.deleted",
    "message.sent",
    "message.send_failed",
    "message.bounced",
    "message.complaint",
    "contact.created",
    "contact.updated",
    "contact.deleted",
]
assert set(EventType.__args__) == set(EVENT_TYPES)  # type: ignore[attr-defined]


def _unique(events: list[EventType] | None) -> list[EventType] | None:
    if events is None:
        return None
    if not events:
        raise ValueError("give at least one event type, or leave `events` out for all of them")
    return list(dict.fromkeys(events))


# SecretStr (never shown by a repr or a validation error); the text is checked first so a 422
# reads like any other text field (see mailport.crypto.secret_input).
WebhookSecret = Annotated[
    SecretStr,
    SecretText(max_length=200),
    Field(json_schema_extra={"format": "password", "writeOnly": True}),
]


Description = Annotated[str, StringConstraints(max_length=200), AfterValidator(clean_line)]

MAX_BATCH_SIZE = 100
BATCH_SIZE_HELP = (
    "Up to this many consecutive events of one mailbox in one request, as "
    '`{"type": "batch", "events": [...]}` (docs/webhooks.md, "Batched delivery"); 1: one event '
    "per request, each as its own body"
)
# strict: 2.5, "5" and true are refused rather than coerced to a size nobody asked for
BatchSize = Annotated[int, Field(strict=True, ge=1, le=MAX_BATCH_SIZE, description=BATCH_SIZE_HELP)]


class WebhookCreate(RequestModel):
    url: str = Field(max_length=2000, description="Where to POST events (https:// recommended)")
    events: list[EventType] | None = Field(
        None,
        description=(
            "Event types to receive; leave out for every type except the changes made on the "
            "server (message.updated, message.deleted, folder.created, folder.deleted), which "
            "are sent only to endpoints that list them"
        ),
    )
    secret: WebhookSecret | None = Field(
        None,
        repr=False,
        description="A Standard Webhooks secret (`whsec_` + base64); generated when left out",
    )
    description: Description | None = None
    batch_size: BatchSize = 1
    backfill: bool = Field(
        False,
        description=(
            "Also take the events of these types that are waiting for no webhook endpoint "
            "(appended before it, not yet accepted); by default it receives the events appended "
            "after its creation only"
        ),
    )

    _events = field_validator("events")(classmethod(lambda cls, v: _unique(v)))


class WebhookUpdate(RequestModel):
    url: str | None = Field(None, max_length=2000)
    events: list[EventType] | None = None
    secret: WebhookSecret | None = Field(None, repr=False, description="Replace the signing secret")
    description: Description | None = None
    enabled: bool | None = Field(None, description="false disables the endpoint; true re-enables it")
    batch_size: BatchSize | None = None

    _events = field_validator("events")(classmethod(lambda cls, v: _unique(v)))


class WebhookRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)  # read from a WebhookEndpoint as it is

    id: str
    url: str
    events: list[str] | None
    description: str | None
    status: str = Field(description="active or disabled")
    batch_size: int = Field(description=BATCH_SIZE_HELP)
    disabled_reason: str | None
    failing_since: datetime | None
    last_success_at: datetime | None
    created_at: datetime
    updated_at: datetime


class WebhookCreated(WebhookRead):
    secret: str | None = Field(
        description="The signing secret: shown here once when generated, never again (null when you gave it)"
    )


class WebhookPage(BaseModel):
    items: list[WebhookRead]
    next_cursor: str | None


class AttemptRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)  # read from an Attempt as it is

    id: str
    attempted_at: datetime
    result: str = Field(description="success, http_error, timeout, network_error or refused")
    status_code: int | None
    error: str | None
    duration_ms: int


class DeliveryRead(BaseModel):
    id: str
    event_id: str
    event_type: str
    mailbox_id: str | None
    status: str = Field(description="pending, delivered or dead (replayable)")
    attempt_count: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    attempts: list[AttemptRead] = Field(description="Every attempt, oldest first")

    @classmethod
    def from_model(cls, delivery: Delivery) -> DeliveryRead:
        return cls(
            id=delivery.id,
            event_id=delivery.event_id,
            event_type=delivery.event_type,
            mailbox_id=delivery.mailbox_id,
            status=delivery.status.value,
            attempt_count=delivery.attempts,
            next_attempt_at=delivery.next_attempt_at,
            last_attempt_at=delivery.last_attempt_at,
            last_status_code=delivery.last_status_code,
            last_error=delivery.last_error,
            created_at=delivery.created_at,
            delivered_at=delivery.delivered_at,
            attempts=[AttemptRead.model_validate(a) for a in delivery.attempt_log],
        )


class DeliveryPage(BaseModel):
    items: list[DeliveryRead]
    next_cursor: str | None


class ReplayRequest(RequestModel):
    delivery_id: str | None = Field(
        None, max_length=64, description="Replay this delivery; leave out to replay every dead letter"
    )


class ReplayResult(BaseModel):
    replayed: int = Field(description="How many deliveries were queued again")


class BackfillResult(BaseModel):
    queued: int = Field(description="How many waiting events the endpoint took over")


ConsumerName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        description="The pull consumer (each name acknowledges its own events); `default` when left out",
    ),
]


class EventAck(RequestModel):
    through: str = Field(
        max_length=20, description="A `cursor` (or `next_cursor`): everything up to it is done"
    )
    consumer: ConsumerName = "default"
    mailbox_id: str | None = Field(
        None, max_length=64, description="The scope the consumer reads (the `mailbox_id` filter it uses)"
    )


class PullConsumerRead(BaseModel):
    name: str
    mailbox_id: str | None = Field(description="The one mailbox it reads, or null for every mailbox")
    acked_cursor: str = Field(description="Everything of its scope up to this cursor is acknowledged")
    created_at: datetime
    updated_at: datetime = Field(
        description="Its last read or acknowledgement (updated at most once a minute)"
    )

    @classmethod
    def from_model(cls, consumer: PullConsumer) -> PullConsumerRead:
        return cls(
            name=consumer.name,
            mailbox_id=consumer.mailbox_id,
            acked_cursor=str(consumer.acked_seq),
            created_at=consumer.created_at,
            updated_at=consumer.updated_at,
        )


class EventAckResult(BaseModel):
    consumer: PullConsumerRead
    accepted: int = Field(description="How many events became accepted (every consumer owing them is done)")


class PullConsumerPage(BaseModel):
    items: list[PullConsumerRead]


class EventRead(BaseModel):
    id: str = Field(description="Stable id; the `webhook-id` of its webhook deliveries (idempotency key)")
    cursor: str = Field(description="Pass as `after` to read the events after this one")
    type: str
    mailbox_id: str | None
    created_at: datetime
    data: Any


class EventPage(BaseModel):
    items: list[EventRead]
    next_cursor: str = Field(description="Pass as `after` next time (unchanged when no event was new)")
