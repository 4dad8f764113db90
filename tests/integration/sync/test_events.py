"""The event log contract: ordered seq, insert-or-ignore on the idempotency key, acceptance,
notification within milliseconds, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time

import pytest

from mailport.bootstrap import Services
from mailport.events import EventType, NewEvent, append, append_many, list_after, mark_accepted


async def _tenant(services: Services) -> str:
    tenant, _key = await services.tenants.create_tenant("acme")
    return tenant.id


async def test_append_is_ordered_idempotent_and_listable(services: Services) -> None:
    tenant_id = await _tenant(services)
    log = services.events
    async with log.transaction() as conn:
        first = await append(
            conn,
            tenant_id=tenant_id,
            mailbox_id="mbx_1",
            type=EventType.MESSAGE_RECEIVED,
            payload={"subject": "héllo"},
            idempotency_key="msg:mbx_1:7:1",
        )
        batch = await append_many(
            conn,
            [
                NewEvent(tenant_id, "mbx_1", EventType.MESSAGE_RECEIVED, {"n": 2}, "msg:mbx_1:7:2"),
                NewEvent(tenant_id, "mbx_1", EventType.MESSAGE_RECEIVED, {"n": 1}, "msg:mbx_1:7:1"),
                NewEvent(tenant_id, "mbx_2", EventType.MAILBOX_CONNECTED, {}, "conn:mbx_2:1"),
            ],
        )
    assert first is not None and first.id.startswith("evt_")
    assert [e.idempotency_key for e in batch] == ["msg:mbx_1:7:2", "conn:mbx_2:1"]
    async with log.transaction() as conn:
        again = await append(
            conn,
            tenant_id=tenant_id,
            mailbox_id="mbx_1",
            type=EventType.MESSAGE_RECEIVED,
            payload={},
            idempotency_key="msg:mbx_1:7:1",
        )
    assert again is None
    listed = await log.list_after(tenant_id, 0, 10)
    assert [e.seq for e in listed] == sorted(e.seq for e in listed)
    assert [e.payload for e in listed][:2] == [{"subject": "héllo"}, {"n": 2}]
    assert [e.seq for e in await log.list_after(tenant_id, listed[0].seq, 10)] == [e.seq for e in listed[1:]]
    only = await log.list_after(tenant_id, 0, 10, mailbox_id="mbx_2")
    assert [e.type for e in only] == ["mailbox.connected"]
    assert await log.mark_accepted(first.id) == 1
    assert await log.mark_accepted(first.id) == 0
    got = await log.get(first.id)
    assert got is not None and got.accepted_at is not None
    async with services.database.connect() as conn:
        assert await list_after(conn, tenant_id="ten_other", after_seq=0, limit=10) == []
        assert await mark_accepted(conn, []) == 0


@pytest.mark.serial
async def test_waiters_wake_within_milliseconds_of_a_commit(services: Services) -> None:
    tenant_id = await _tenant(services)
    log = services.events
    log.poll_interval = 5.0  # prove the in-process signal, not the poll, wakes the waiter
    waiter = asyncio.create_task(log.wait_after(0, timeout=10))
    await asyncio.sleep(0.05)
    started = time.perf_counter()
    await log.append(NewEvent(tenant_id, None, EventType.MAILBOX_ERROR, {"error": "x"}, "err:1"))
    seq = await asyncio.wait_for(waiter, 5)
    assert seq >= 1
    assert time.perf_counter() - started < 0.5
