"""Within one connection a watcher keeps the cursor it committed last instead of reading it for
every new message (the latency of issue 21); a failed round forgets it, so the next one starts
from what the database holds and nothing is lost or ingested twice (real Dovecot, SQLite and
PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from mailport.bootstrap import Services
from mailport.config import Settings
from mailport.leases import guard
from mailport.sync import repository as repo
from tests.integration.fleet.fencing_bed import hold, watcher
from tests.integration.sync.conftest import Bed, make_message
from tests.mailstack.dovecot import Dovecot


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"allowed_hosts": ["127.0.0.1"]})


@pytest.fixture
async def bed(services: Services, dovecot: Dovecot, password_user: tuple[str, str]) -> AsyncIterator[Bed]:
    tenant, _key = await services.tenants.create_tenant("held-cursor")
    yield Bed(services, dovecot, password_user[0], password_user[1], tenant.id)


class FailingOnce:
    """The lease's real check, failing the next ``events`` write once when armed (a commit that
    did not happen, whatever the reason)."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.armed = False

    async def __call__(self, conn: AsyncConnection, /, *, what: str | None = None) -> None:
        if self.armed and what == "events":
            self.armed = False
            raise RuntimeError("the commit failed")
        await self.real(conn, what=what)

    async def ready(self, conn: AsyncConnection, /, *, now: datetime, what: str | None = None) -> bool:
        return bool(await self.real.ready(conn, now=now, what=what))


async def _deliver(bed: Bed, connector: Any, subject: str) -> None:
    """Deliver, then wait until the open session sees it (what IDLE's EXISTS tells a watcher:
    Dovecot's maildir may show a new file to a session's next command rather than this one)."""
    before = len(await connector.list_uids(1))
    await asyncio.to_thread(bed.dovecot.deliver, bed.user, make_message(subject))
    for _ in range(100):
        if len(await connector.list_uids(1)) > before:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{subject!r} did not show up in the session")


async def test_new_mail_on_one_connection_is_ingested_once_each_in_order(bed: Bed) -> None:
    mailbox = await bed.add_mailbox()
    lease = await hold(bed, mailbox)
    connector = bed.services.connector(mailbox)
    w = watcher(bed, mailbox, connector, lease)
    await connector.connect()
    try:
        scope = await connector.open("INBOX")
        assert await w.catch_up(scope) == 0  # the first cursor
        for subject in ("one", "two", "three"):
            await _deliver(bed, connector, subject)
            assert await w.catch_up(scope) == 1
        assert await w.catch_up(scope) == 0
    finally:
        await connector.disconnect()
    assert [e.payload["subject"] for e in await bed.received(mailbox.id)] == ["one", "two", "three"]
    async with bed.services.database.connect() as conn:
        saved = await repo.get_cursor(conn, mailbox.id, "INBOX")
    assert saved is not None and saved.position == "3"


async def test_a_failed_round_reads_the_cursor_again(bed: Bed) -> None:
    mailbox = await bed.add_mailbox()
    lease = await hold(bed, mailbox)
    connector = bed.services.connector(mailbox)
    w = watcher(bed, mailbox, connector, lease)
    fence = FailingOnce(guard(lease))
    w.fence = fence
    await connector.connect()
    try:
        scope = await connector.open("INBOX")
        await w.catch_up(scope)
        await _deliver(bed, connector, "before")
        assert await w.catch_up(scope) == 1
        await _deliver(bed, connector, "failed once")
        fence.armed = True
        with pytest.raises(RuntimeError, match="the commit failed"):
            await w.catch_up(scope)
        await _deliver(bed, connector, "after")
        assert await w.catch_up(scope) == 2  # from the cursor the database holds
        assert await w.catch_up(scope) == 0
    finally:
        await connector.disconnect()
    subjects = [e.payload["subject"] for e in await bed.received(mailbox.id)]
    assert subjects == ["before", "failed once", "after"]
