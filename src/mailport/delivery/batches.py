"""What goes into one batched webhook request (an endpoint's ``batch_size`` > 1), as pure functions.

Why batches: per-mailbox order allows one request in flight per mailbox, so a single busy
mailbox is bounded by one round trip per event, and every event pays both sides' per-request
CPU. A batch carries up to ``batch_size`` *consecutive* deliveries of *one* mailbox, in event
order, and is retried as a whole; each event inside keeps its own ``id`` so a receiver
deduplicates per event (a retried batch may carry more events than the first try: the
deliveries queued behind it meanwhile).

The body is ``{"type":"batch","events":[<body>,…]}``, each ``<body>`` the very bytes a
single delivery of that event would send (:func:`mailport.delivery.outbox.event_body`), spliced
in without a parse or re-dump. ``webhook-id`` is ``batch_<first event id>_<last event id>``:
the same composition always has the same id (see docs/webhooks.md, "Batched delivery").
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from mailport.delivery.outbox import PendingDelivery

BATCH_TYPE = "batch"
_HEAD = b'{"type":"' + BATCH_TYPE.encode("ascii") + b'","events":['
_TAIL = b"]}"


def take_batch(items: Sequence[PendingDelivery], *, start: int, size: int, due_at: datetime) -> int:
    """How many of ``items[start:]`` (one mailbox's deliveries, event order) go in the next
    request: up to ``size`` consecutive ones, stopping before the first not due at ``due_at``
    (a delivery waiting for its retry is never skipped, so nothing after it goes either)."""
    taken = 0
    for item in items[start : start + size]:
        if item.next_attempt_at is not None and item.next_attempt_at > due_at:
            break
        taken += 1
    return taken


def batch_body(items: Sequence[PendingDelivery]) -> bytes:
    """The request body carrying ``items`` (one mailbox, event order)."""
    return _HEAD + b",".join(item.body for item in items) + _TAIL


def batch_webhook_id(items: Sequence[PendingDelivery]) -> str:
    """The batch's ``webhook-id``: stable for the same first and last event."""
    return f"{BATCH_TYPE}_{items[0].event_id}_{items[-1].event_id}"
