"""Pure parts of ingestion: backoff, idempotency keys, lease ownership, health summaries."""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime

from mailport.events import Event, message_key
from mailport.leases import holder_is_dead as owner_is_dead
from mailport.sync import Backoff
from mailport.sync.health import MailboxHealth, tenant_health, tenant_stats
from mailport.sync.repository import Totals


def test_backoff_grows_exponentially_with_full_jitter_and_a_cap() -> None:
    top = Backoff(base=1.0, cap=30.0, rand=lambda: 1.0)
    assert [top.next() for _ in range(7)] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    low = Backoff(base=1.0, cap=30.0, rand=lambda: 0.0)
    assert low.next() == 0.2  # never a busy loop
    top.reset()
    assert top.next() == 1.0


def test_message_keys_are_stable_and_name_the_folder_only_when_not_inbox() -> None:
    assert message_key("mbx_1", 7, 42) == "msg:mbx_1:7:42"
    assert message_key("mbx_1", 7, 42, "Work") == "msg:mbx_1:Work:7:42"


def test_event_public_shape() -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    event = Event(5, "evt_1", "ten_1", "mbx_1", "message.received", "msg:mbx_1:7:1", {"uid": 1}, at, None)
    assert event.to_dict() == {
        "id": "evt_1",
        "seq": 5,
        "type": "message.received",
        "tenant_id": "ten_1",
        "mailbox_id": "mbx_1",
        "idempotency_key": "msg:mbx_1:7:1",
        "created_at": "2026-01-02T03:04:05+00:00",
        "data": {"uid": 1},
    }


def test_only_a_dead_process_of_this_host_loses_its_lease_at_once() -> None:
    host = socket.gethostname()
    assert not owner_is_dead(f"{host}:{os.getpid()}:abc")  # alive: me
    assert owner_is_dead(f"{host}:999999999:abc")  # no such process
    assert not owner_is_dead("another-host:999999999:abc")  # cannot tell: wait for expiry
    assert not owner_is_dead("garbage")


def _health(mailbox_id: str, status: str, processed: int, avg: float | None) -> MailboxHealth:
    return MailboxHealth(
        mailbox_id=mailbox_id,
        status=status,
        watcher=None,
        last_connected_at=None,
        last_success_at=None,
        last_error=None,
        errors_24h=1,
        processed_24h=processed,
        failed_24h=0,
        avg_processing_ms=avg,
        queue_size=2,
    )


def test_tenant_summaries_weight_the_average_by_messages() -> None:
    items = [_health("a", "connected", 30, 1.0), _health("b", "error", 10, 5.0)]
    summary = tenant_health(items)
    assert summary.status == "degraded" and summary.by_status == {"connected": 1, "error": 1}
    stats = tenant_stats(items)
    assert stats.processed_24h == 40 and stats.avg_processing_ms == 2.0 and stats.queue_size == 4
    assert Totals(0, 0, 0, 0).avg_processing_ms is None
