"""What a broker receives for one event: the webhook body and the event's keys as headers.

The body is byte for byte the webhook body (:func:`mailport.delivery.outbox.event_body`), so a
consumer can move between webhooks, pull and a broker without a second parser. ``id`` is the
idempotency key webhooks send as ``webhook-id``: each broker carries it where its consumers
(and JetStream's duplicate window) look for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, select

from mailport.delivery.outbox import event_body
from mailport.store.tables import events


@dataclass(frozen=True)
class BrokerMessage:
    seq: int
    id: str  # the event id: the idempotency key (webhook-id)
    idempotency_key: str  # the event's own key (its source: msg:<mailbox>:…)
    tenant_id: str
    mailbox_id: str | None
    type: str
    body: bytes

    def headers(self) -> dict[str, str]:
        """Mailport-* headers (NATS headers, AMQP headers, Redis stream fields)."""
        return {
            "Mailport-Event-Id": self.id,
            "Mailport-Idempotency-Key": self.idempotency_key,
            "Mailport-Tenant-Id": self.tenant_id,
            "Mailport-Mailbox-Id": self.mailbox_id or "",
            "Mailport-Event-Type": self.type,
            "Mailport-Seq": str(self.seq),
        }


def after(seq: int, limit: int) -> Select[Any]:
    """The events after ``seq``, every tenant, in seq order (the order they were committed in)."""
    c = events.c
    return (
        select(
            c.seq.label("event_seq"),
            c.id.label("event_id"),
            c.type,
            c.tenant_id,
            c.mailbox_id,
            c.idempotency_key,
            c.created_at.label("event_created_at"),
            c.payload,
        )
        .where(c.seq > seq)
        .order_by(c.seq)
        .limit(limit)
    )


def from_row(row: Any) -> BrokerMessage:
    return BrokerMessage(
        seq=int(row.event_seq),
        id=row.event_id,
        idempotency_key=row.idempotency_key,
        tenant_id=row.tenant_id,
        mailbox_id=row.mailbox_id,
        type=row.type,
        body=event_body(row),
    )
