"""The ``check_runs`` store on SQLite and PostgreSQL: only the runner writes a running run,
giving up on a run loses to a runner that wrote since, another tenant finds nothing, and
expired runs are purged."""

from __future__ import annotations

from datetime import timedelta

from mailport.bootstrap import Services
from mailport.check.runs import CheckRunStore
from mailport.clock import utc_now
from tests.fixtures.api import TenantHandle, create_tenant


async def test_the_check_runs_store(services: Services, tenant: TenantHandle) -> None:
    store = CheckRunStore(services.database)
    now = utc_now()
    await store.create(
        "chk_store",
        tenant_id=tenant.id,
        kind="pop3",
        data={"protocols": []},
        runner="host:1:a",
        now=now,
        expires_at=now + timedelta(minutes=10),
    )
    record = await store.get(tenant.id, "chk_store")
    assert (
        record is not None and record.running and record.kind == "pop3" and record.data == {"protocols": []}
    )
    other = await create_tenant(services)
    assert await store.get(other.id, "chk_store") is None

    later = now + timedelta(seconds=1)
    assert not await store.update("chk_store", runner="host:2:b", data={"x": 1}, now=later)
    assert await store.update("chk_store", runner="host:1:a", data={"steps": 1}, now=later)
    # Read before the runner's write: giving up on that reading is refused (the runner lives).
    assert not await store.give_up(record, data={"lost": True}, now=later, expires_at=later)
    fresh = await store.get(tenant.id, "chk_store")
    assert fresh is not None and fresh.data == {"steps": 1} and fresh.running
    assert await store.give_up(
        fresh, data={"lost": True}, now=later, expires_at=later + timedelta(minutes=10)
    )
    # Final: the runner that wakes up late cannot overwrite it.
    assert not await store.update("chk_store", runner="host:1:a", data={"steps": 2}, now=later, state="done")
    final = await store.get(tenant.id, "chk_store")
    assert final is not None and final.state == "failed" and final.data == {"lost": True}

    assert await store.started_since(tenant.id, now - timedelta(seconds=1)) == [final.created_at]
    assert await store.purge(now=later + timedelta(minutes=5)) == 0
    assert await store.purge(now=later + timedelta(minutes=11)) == 1
    assert await store.get(tenant.id, "chk_store") is None
