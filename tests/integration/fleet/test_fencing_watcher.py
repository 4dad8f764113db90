"""A watcher whose lease another process took over writes nothing, on every write path (SQLite
and PostgreSQL, real Dovecot): the chunk (events + cursor), the first cursor, after-processing
(checked before the server action, fenced when recorded, and when a refusal is recorded), and
the mailbox's health on connecting and on an error. Each refusal is counted in
``mailport_fenced_writes_refused_total{what}``, and the watcher stops without a traceback."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from mailport.bootstrap import Services
from mailport.clock import utc_now
from mailport.config import Settings
from mailport.connectors.base import Cursor
from mailport.errors import LeaseLostError
from mailport.mailboxes.models import Mailbox
from mailport.store.tables import leases as leases_table
from mailport.store.tables import pending_actions, watcher_leases
from mailport.sync import repository as repo
from tests.integration.fleet.fencing_bed import OWNER, Interposed, hold, refused, take_over, watcher
from tests.integration.sync.conftest import Bed, all_events, make_message
from tests.mailstack.dovecot import Dovecot


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"allowed_hosts": ["127.0.0.1"]})


@pytest.fixture
async def bed(services: Services, dovecot: Dovecot, password_user: tuple[str, str]) -> AsyncIterator[Bed]:
    tenant, _key = await services.tenants.create_tenant("fencing")
    yield Bed(services, dovecot, password_user[0], password_user[1], tenant.id)


@pytest.fixture
async def dotted(services: Services, dovecot_dotted: Dovecot) -> AsyncIterator[Bed]:
    """A Dovecot that refuses to create a folder whose name begins with ``~`` (a refused move)."""
    tenant, _key = await services.tenants.create_tenant("fencing-dotted")
    user, password = dovecot_dotted.dyn_user(f"f{uuid.uuid4().hex[:10]}")
    yield Bed(services, dovecot_dotted, user, password, tenant.id)


async def cursor(bed: Bed, mailbox: Mailbox) -> Cursor | None:
    async with bed.services.database.connect() as conn:
        return await repo.get_cursor(conn, mailbox.id, "INBOX")


async def action_rows(bed: Bed, mailbox: Mailbox) -> list[Any]:
    async with bed.services.database.connect() as conn:
        query = select(pending_actions).where(pending_actions.c.mailbox_id == mailbox.id)
        return list(await conn.execute(query))


async def flags(bed: Bed, subject: str) -> str:
    """The IMAP flags of the message ``subject`` in the INBOX, as Dovecot has them."""
    done = await asyncio.to_thread(
        bed.dovecot.doveadm, "fetch", "-u", bed.user, "flags hdr.subject", "mailbox", "INBOX", "all"
    )
    text = done.stdout.decode()
    assert subject in text, text
    return text


async def _connected(bed: Bed, mailbox: Mailbox, connector: Any, lease: Any, **options: Any) -> Any:
    w = watcher(bed, mailbox, connector, lease, **options)
    await connector.connect()
    scope = await connector.open("INBOX")
    return w, scope


async def _ingest_one(bed: Bed, w: Any, scope: Any, mailbox: Mailbox) -> None:
    """The first catch-up places the cursor and ingests the message delivered before it."""
    assert await w.catch_up(scope) == 1
    [event] = await bed.received(mailbox.id)
    await bed.services.events.mark_accepted(event.id)


# --------------------------------------------------------------------------- ingestion


async def test_a_chunk_read_before_the_take_over_is_not_stored(bed: Bed) -> None:
    mailbox = await bed.add_mailbox()
    lease = await hold(bed, mailbox)
    await asyncio.to_thread(bed.dovecot.deliver, bed.user, make_message("read, then taken over"))
    real = bed.services.connector(mailbox)
    # the first catch-up places the cursor, reads the chunk, and then the lease moves on
    connector = Interposed(real, after={"fetch_since": lambda: take_over(bed, mailbox)})
    w, scope = await _connected(bed, mailbox, connector, lease)
    counted = refused("events")
    try:
        with pytest.raises(LeaseLostError):
            await w.catch_up(scope)
    finally:
        await real.disconnect()
    assert await bed.received(mailbox.id) == []
    placed = await cursor(bed, mailbox)
    assert placed is not None and placed.position == "0"  # the first cursor, not past the message
    assert refused("events") == counted + 1


async def test_the_first_cursor_is_not_placed_after_the_take_over(bed: Bed) -> None:
    mailbox = await bed.add_mailbox()
    lease = await hold(bed, mailbox)
    real = bed.services.connector(mailbox)
    connector = Interposed(real, after={"baseline": lambda: take_over(bed, mailbox)})
    w, scope = await _connected(bed, mailbox, connector, lease)
    counted = refused("cursor")
    try:
        with pytest.raises(LeaseLostError):
            await w.catch_up(scope)
    finally:
        await real.disconnect()
    assert await cursor(bed, mailbox) is None
    assert refused("cursor") == counted + 1


# --------------------------------------------------------------------------- after-processing


async def test_no_server_action_once_the_lease_moved_on(bed: Bed) -> None:
    mailbox = await bed.add_mailbox(after_processing="mark_read")
    lease = await hold(bed, mailbox)
    await asyncio.to_thread(bed.dovecot.deliver, bed.user, make_message("not to be marked by the old owner"))
    real = bed.services.connector(mailbox)
    w, scope = await _connected(bed, mailbox, real, lease)
    try:
        await _ingest_one(bed, w, scope, mailbox)
        await take_over(bed, mailbox)  # after the watcher read its due actions, before the server
        counted = refused("actions")
        with pytest.raises(LeaseLostError):
            await w.apply_actions(scope)
    finally:
        await real.disconnect()
    assert "\\Seen" not in await flags(bed, "not to be marked by the old owner")
    [row] = await action_rows(bed, mailbox)
    assert (row.state, row.attempts, row.next_attempt_at) == ("pending", 0, None)
    assert refused("actions") == counted + 1


async def test_a_done_action_is_not_recorded_by_the_old_owner(bed: Bed) -> None:
    mailbox = await bed.add_mailbox(after_processing="mark_read")
    lease = await hold(bed, mailbox)
    await asyncio.to_thread(bed.dovecot.deliver, bed.user, make_message("marked, then taken over"))
    real = bed.services.connector(mailbox)
    connector = Interposed(real)
    w, scope = await _connected(bed, mailbox, connector, lease)
    try:
        await _ingest_one(bed, w, scope, mailbox)
        # the server action is done, then the lease moves on before the record commits
        connector._after["mark_read"] = lambda: take_over(bed, mailbox)
        counted = refused("actions")
        with pytest.raises(LeaseLostError):
            await w.apply_actions(scope)
    finally:
        await real.disconnect()
    [row] = await action_rows(bed, mailbox)
    assert (row.state, row.attempts) == ("pending", 0)  # the new owner applies it (idempotent)
    assert refused("actions") == counted + 1


@pytest.mark.parametrize("final", [False, True], ids=["retry_later", "action_failed"])
async def test_a_refused_action_is_not_recorded_by_the_old_owner(dotted: Bed, final: bool) -> None:
    # This server refuses CREATE INBOX.~Processed: the move fails after the lease moved on.
    mailbox = await dotted.add_mailbox(after_processing="move:~Processed")
    lease = await hold(dotted, mailbox)
    await asyncio.to_thread(dotted.dovecot.deliver, dotted.user, make_message("cannot be moved"))
    real = dotted.services.connector(mailbox)
    connector = Interposed(real)
    w, scope = await _connected(dotted, mailbox, connector, lease, action_max_attempts=1 if final else 5)
    try:
        await _ingest_one(dotted, w, scope, mailbox)
        connector._before["move"] = lambda: take_over(dotted, mailbox)
        counted = refused("actions")
        with pytest.raises(LeaseLostError):
            await w.apply_actions(scope)
    finally:
        await real.disconnect()
    [row] = await action_rows(dotted, mailbox)
    assert (row.state, row.attempts, row.next_attempt_at, row.last_error) == ("pending", 0, None, None)
    assert await all_events(dotted.services, mailbox_id=mailbox.id, type="message.action_failed") == []
    assert refused("actions") == counted + 1


# --------------------------------------------------------------------------- health


async def _stopped(w: Any, timeout: float = 15) -> None:
    task = w._task
    assert task is not None
    await asyncio.wait_for(asyncio.shield(task), timeout)
    assert task.exception() is None
    assert w.status.state == "stopped"


async def test_connected_is_not_recorded_after_the_take_over(
    bed: Bed, caplog: pytest.LogCaptureFixture
) -> None:
    mailbox = await bed.add_mailbox()
    lease = await hold(bed, mailbox)
    connector = Interposed(bed.services.connector(mailbox), after={"open": lambda: take_over(bed, mailbox)})
    w = watcher(bed, mailbox, connector, lease)
    counted = refused("health")
    caplog.set_level(logging.INFO)
    w.start()
    await _stopped(w)
    stored = await bed.services.mailboxes.repository.get_by_id(mailbox.id)
    assert stored.health.status == mailbox.health.status and stored.health.last_success_at is None
    assert await all_events(bed.services, mailbox_id=mailbox.id, type="mailbox.connected") == []
    async with bed.services.database.connect() as conn:
        [state] = await conn.execute(select(watcher_leases).where(watcher_leases.c.mailbox_id == mailbox.id))
    assert state.state == "starting" and state.last_connected_at is None
    assert refused("health") == counted + 1
    assert any("changed hands" in r.getMessage() for r in caplog.records)
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


async def test_an_error_is_not_recorded_after_the_take_over(
    bed: Bed, caplog: pytest.LogCaptureFixture
) -> None:
    mailbox = await bed.add_mailbox(password="not the password")
    lease = await hold(bed, mailbox)
    taking_over = {"connect": lambda: take_over(bed, mailbox)}
    connector = Interposed(bed.services.connector(mailbox), before=taking_over)
    w = watcher(bed, mailbox, connector, lease)
    counted = refused("health")
    caplog.set_level(logging.INFO)
    w.start()
    await _stopped(w)
    stored = await bed.services.mailboxes.repository.get_by_id(mailbox.id)
    assert stored.health.status == mailbox.health.status
    assert stored.health.last_error is None and stored.health.error_count_24h == 0
    assert await all_events(bed.services, mailbox_id=mailbox.id, type="mailbox.error") == []
    assert refused("health") == counted + 1
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


async def test_an_action_waits_while_the_lease_ran_out_unrenewed(bed: Bed) -> None:
    """This process was paused past its lease and nobody took it yet: still its tenure (a fence
    would pass), but anyone may take it any moment, so no server action starts until the
    renewal; nothing is refused."""
    mailbox = await bed.add_mailbox(after_processing="mark_read")
    await asyncio.to_thread(bed.dovecot.deliver, bed.user, make_message("waits for the renewal"))
    lease = await hold(bed, mailbox)
    real = bed.services.connector(mailbox)
    w, scope = await _connected(bed, mailbox, real, lease)
    try:
        await _ingest_one(bed, w, scope, mailbox)
        async with bed.services.database.transaction() as conn:  # ran out a second ago
            await conn.execute(
                update(leases_table)
                .where(leases_table.c.name == f"watcher:{mailbox.id}")
                .values(expires_at=utc_now() - timedelta(seconds=1))
            )
        counted = refused("actions")
        assert await w.apply_actions(scope) == 0
        assert "\\Seen" not in await flags(bed, "waits for the renewal")
        [row] = await action_rows(bed, mailbox)
        assert (row.state, row.attempts) == ("pending", 0)
        assert refused("actions") == counted
        async with bed.services.database.transaction() as conn:  # renewed
            assert await repo.renew_leases(conn, OWNER, now=utc_now(), ttl=timedelta(hours=1))
        assert await w.apply_actions(scope) == 1
    finally:
        await real.disconnect()
    assert "\\Seen" in await flags(bed, "waits for the renewal")
    [row] = await action_rows(bed, mailbox)
    assert row.state == "done"
