"""The composition of a batched webhook request (pure): which deliveries go, the body, the id."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from mailport.delivery.batches import batch_body, batch_webhook_id, take_batch
from mailport.delivery.outbox import PendingDelivery

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def _item(n: int, *, due: datetime | None = NOW) -> PendingDelivery:
    body = json.dumps({"id": f"evt_{n}", "seq": n, "data": {"subject": "ünïcode"}}, ensure_ascii=False)
    return PendingDelivery(
        id=f"dlv_{n}",
        event_seq=n,
        event_id=f"evt_{n}",
        mailbox_id="mbx_1",
        attempts=0,
        window_started_at=NOW,
        next_attempt_at=due,
        event_created_at=NOW,
        body=body.encode(),
    )


def test_takes_up_to_the_size_from_the_start() -> None:
    items = [_item(n) for n in range(7)]
    assert take_batch(items, start=0, size=5, due_at=NOW) == 5
    assert take_batch(items, start=5, size=5, due_at=NOW) == 2
    assert take_batch(items, start=7, size=5, due_at=NOW) == 0


def test_stops_before_the_first_delivery_not_due_and_never_skips_it() -> None:
    later = NOW + timedelta(seconds=5)
    items = [_item(0), _item(1, due=None), _item(2, due=later), _item(3)]
    assert take_batch(items, start=0, size=10, due_at=NOW) == 2
    assert take_batch(items, start=2, size=10, due_at=NOW) == 0


def test_the_body_holds_each_event_body_verbatim_in_order() -> None:
    items = [_item(n) for n in (3, 4, 5)]
    body = batch_body(items)
    assert json.loads(body) == {"type": "batch", "events": [json.loads(i.body) for i in items]}
    assert all(item.body in body for item in items)  # spliced, not re-dumped


def test_the_webhook_id_names_the_first_and_last_event() -> None:
    assert batch_webhook_id([_item(3), _item(4), _item(9)]) == "batch_evt_3_evt_9"
    assert batch_webhook_id([_item(3)]) == "batch_evt_3_evt_3"
