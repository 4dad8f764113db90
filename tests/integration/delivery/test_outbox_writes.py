"""The outbox's writes taken off SQLAlchemy's executemany (issue 21): the fan-out's delivery
rows and the attempt rows go to the driver as tuples (on SQLite one multi-row statement), and
on SQLite the results' delivery rows are set by one ``UPDATE … FROM (VALUES …)``. They must
store exactly what the ORM-level statements stored, on SQLite and PostgreSQL, and a delivery
attempted twice in one batch of results must count both attempts."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from mailport.bootstrap import Services
from mailport.clock import utc_now
from mailport.delivery.models import DeliveryStatus
from mailport.delivery.outbox import AttemptRecord
from mailport.delivery.schemas import WebhookCreate
from mailport.events import NewEvent, append_many
from mailport.store.tables import webhook_attempts, webhook_deliveries


async def _fanned_out(services: Services, count: int) -> tuple[str, list[str]]:
    """An endpoint and ``count`` pending deliveries to it (delivery ids, event order)."""
    tenant, _key = await services.tenants.create_tenant("outbox")
    endpoint, _secret = await services.webhooks.create(tenant.id, WebhookCreate(url="http://127.0.0.1:9/x"))
    outbox = services.webhooks.repository.outbox
    endpoints = await services.webhooks.repository.endpoints.active_endpoints()
    async with services.events.transaction() as conn:
        await append_many(
            conn,
            [NewEvent(tenant.id, "mbx_a", "message.received", {"n": n}, f"outbox:{n}") for n in range(count)],
        )
    async with services.events.transaction() as conn:
        done = await outbox.fanout(conn, endpoints, batch=1000, now=utc_now())
    return endpoint.id, [item.id for item in done.queued[endpoint.id]]


async def test_fanned_out_rows_read_back_as_written(delivery_services: Services) -> None:
    services = delivery_services
    before = utc_now()
    endpoint_id, ids = await _fanned_out(services, 3)
    async with services.database.connect() as conn:
        rows = (await conn.execute(select(webhook_deliveries).order_by(webhook_deliveries.c.event_seq))).all()
    assert [r.id for r in rows] == ids
    for row in rows:
        assert row.endpoint_id == endpoint_id and row.status == "pending" and row.attempts == 0
        assert row.mailbox_id == "mbx_a" and row.event_type == "message.received"
        assert row.window_started_at == row.next_attempt_at == row.created_at
        assert before <= row.created_at <= utc_now()  # an aware UTC timestamp, as stored by the ORM
        assert row.last_attempt_at is None and row.delivered_at is None


async def test_results_set_each_delivery_and_count_every_attempt(delivery_services: Services) -> None:
    services = delivery_services
    endpoint_id, ids = await _fanned_out(services, 3)
    outbox = services.webhooks.repository.outbox
    at = utc_now()
    retry_at = at + timedelta(minutes=5)

    def record(delivery_id: str, seq: int, *, ok: bool, when: timedelta) -> AttemptRecord:
        return AttemptRecord(
            delivery_id=delivery_id,
            event_seq=seq,
            attempted_at=at + when,
            result="success" if ok else "http_error",
            status_code=200 if ok else 503,
            error=None if ok else "HTTP 503: busy " + "x" * 2000,
            duration_ms=7,
            new_status=DeliveryStatus.DELIVERED if ok else DeliveryStatus.PENDING,
            next_attempt_at=None if ok else retry_at,
            window_started_at=at,
        )

    async with services.events.transaction() as conn:  # each delivery once: one statement
        await outbox.record(
            conn,
            endpoint_id,
            [record(ids[0], 1, ok=True, when=timedelta()), record(ids[1], 2, ok=False, when=timedelta())],
        )
    async with services.events.transaction() as conn:  # the same delivery twice
        await outbox.record(
            conn,
            endpoint_id,
            [
                record(ids[2], 3, ok=False, when=timedelta(seconds=1)),
                record(ids[2], 3, ok=True, when=timedelta(seconds=2)),
            ],
        )
    async with services.database.connect() as conn:
        rows = {r.id: r for r in (await conn.execute(select(webhook_deliveries))).all()}
        attempts = (await conn.execute(select(webhook_attempts))).all()
    first, second, third = rows[ids[0]], rows[ids[1]], rows[ids[2]]
    assert (first.status, first.attempts, first.last_status_code) == ("delivered", 1, 200)
    assert first.delivered_at == first.last_attempt_at == at and first.next_attempt_at is None
    assert (second.status, second.attempts, second.last_status_code) == ("pending", 1, 503)
    assert second.next_attempt_at == retry_at and second.delivered_at is None
    assert second.last_error.startswith("HTTP 503: busy") and len(second.last_error) == 1000
    assert (third.status, third.attempts, third.delivered_at) == ("delivered", 2, at + timedelta(seconds=2))
    assert sorted((a.delivery_id, a.status_code) for a in attempts) == sorted(
        [(ids[0], 200), (ids[1], 503), (ids[2], 503), (ids[2], 200)]
    )
    assert all(a.duration_ms == 7 and a.attempted_at >= at for a in attempts)
