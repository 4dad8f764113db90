"""The ``sends_due`` queue of a worker's stats (:meth:`StatsCollector.refresh`) counts what the
send workers may claim now: a queued send, not one scheduled for later (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

from mailport.clock import utc_now
from mailport.fleet.stats import StatsCollector
from mailport.sending.models import SendRequest
from tests.integration.sending.outbox_bed import Box, box, settings  # noqa: F401  (fixtures)


async def test_sends_due_counts_the_sends_due_now(box: Box) -> None:  # noqa: F811
    sending = box.services.sending
    collector = StatsCollector()
    await collector.refresh(box.services.database, now=utc_now())
    assert collector.sends_due == 0 and collector()["queues"]["sends_due"] == 0
    later = SendRequest(to=("a@example.test",), text="later", send_at=utc_now() + timedelta(days=1))
    await sending.send(box.tenant_id, box.mailbox_id, later)
    await sending.send(box.tenant_id, box.mailbox_id, SendRequest(to=("a@example.test",), text="now"))
    await collector.refresh(box.services.database, now=utc_now())
    assert collector()["queues"]["sends_due"] == 1
    await collector.refresh(box.services.database, now=utc_now() + timedelta(days=2))
    assert collector.sends_due == 2  # the scheduled one is due by then
