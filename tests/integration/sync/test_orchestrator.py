"""The orchestrator follows mailbox changes within 2 s, and two processes never watch the same
mailbox (leases)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest

from mailport.crypto import Secret
from mailport.mailboxes.models import (
    AuthMethod,
    MailboxStatus,
    NewMailbox,
    ProcessingSettings,
    Security,
    ServerSettings,
)
from mailport.mailboxes.schemas import MailboxUpdate, SettingsPatch
from mailport.sync import Orchestrator
from tests.integration.sync.conftest import Bed, wait_for


@pytest.mark.serial
async def test_created_changed_and_deleted_mailboxes_follow_within_two_seconds(
    bed: Bed, running: Orchestrator
) -> None:
    started = time.monotonic()
    mailbox = await bed.add_mailbox()  # through the service: it pokes the orchestrator

    async def connected() -> bool:
        watcher = running.watchers.get(mailbox.id)
        return watcher is not None and watcher.status.state == "connected"

    await wait_for(connected, timeout=5)
    assert time.monotonic() - started < 2.0
    first = running.watchers[mailbox.id]
    started = time.monotonic()
    await bed.services.mailboxes.update(
        bed.tenant_id, mailbox.id, MailboxUpdate(settings=SettingsPatch(check_interval=120))
    )

    async def restarted() -> bool:
        watcher = running.watchers.get(mailbox.id)
        return watcher is not None and watcher is not first

    await wait_for(restarted, timeout=5)
    assert time.monotonic() - started < 2.0
    assert running.watchers[mailbox.id].mailbox.settings.check_interval == 120
    started = time.monotonic()
    await bed.services.mailboxes.set_enabled(bed.tenant_id, mailbox.id, False)

    async def stopped() -> bool:
        return mailbox.id not in running.watchers

    await wait_for(stopped, timeout=5)
    assert time.monotonic() - started < 2.0
    await bed.services.mailboxes.set_enabled(bed.tenant_id, mailbox.id, True)
    await wait_for(connected, timeout=5)
    started = time.monotonic()
    await bed.services.mailboxes.delete(bed.tenant_id, mailbox.id)

    async def gone() -> bool:
        return mailbox.id not in running.watchers

    await wait_for(gone, timeout=5)
    assert time.monotonic() - started < 2.0


@pytest.mark.serial
async def test_changes_made_by_another_process_are_found_by_the_poll(bed: Bed, running: Orchestrator) -> None:
    """Written straight to the database (as another process would): no poke reaches this
    orchestrator, its change detector must find the mailbox and its being disabled."""
    repository = bed.services.mailboxes.repository
    started = time.monotonic()
    mailbox = await repository.create(bed.tenant_id, _new_mailbox(bed), now=datetime.now(UTC))

    async def found() -> bool:
        return mailbox.id in running.watchers

    async def connected() -> bool:
        watcher = running.watchers.get(mailbox.id)
        return watcher is not None and watcher.status.state == "connected"

    await wait_for(found, timeout=5)
    assert time.monotonic() - started < 2.0  # the poll found it (what this test is about) …
    await wait_for(connected, timeout=15)  # … and its connect, on a loaded machine, takes what it takes
    started = time.monotonic()
    await repository.update(
        bed.tenant_id, mailbox.id, now=datetime.now(UTC), columns={"status": MailboxStatus.DISABLED.value}
    )

    async def stopped() -> bool:
        return mailbox.id not in running.watchers

    await wait_for(stopped, timeout=5)
    assert time.monotonic() - started < 2.0


def _new_mailbox(bed: Bed) -> NewMailbox:
    return NewMailbox(
        email=bed.user,
        auth_method=AuthMethod.PASSWORD,
        imap=ServerSettings("127.0.0.1", bed.dovecot.imap_port, Security.NONE),
        password=Secret(bed.password),
        settings=ProcessingSettings(check_interval=60),
    )


async def test_two_processes_never_watch_the_same_mailbox(bed: Bed) -> None:
    """Whichever of the two the assignment gives it to watches it (the other may hold it until
    it sees the newcomer, then hands it over); never both; when its watcher stops, the other
    takes over."""
    mailbox = await bed.add_mailbox()
    one, two = bed.orchestrator(owner="host-a:1:x"), bed.orchestrator(owner="host-b:2:y")
    await one.start()
    await two.start()
    try:

        async def settled() -> bool:
            assert not (mailbox.id in one.watchers and mailbox.id in two.watchers)
            members = {m.owner for m in (one, two)}
            held = [m for m in (one, two) if mailbox.id in m.watchers and mailbox.id in m.wanted]
            return len(held) == 1 and set(one.membership.active_weights()) == members

        await wait_for(settled, timeout=10)
        holder, other = (one, two) if mailbox.id in one.watchers else (two, one)
        await holder.stop()  # drains and releases: the other process takes over

        await wait_for(lambda: _has(other, mailbox.id), timeout=15)
    finally:
        await one.stop()
        await two.stop()


async def _has(orchestrator: Orchestrator, mailbox_id: str) -> bool:
    return mailbox_id in orchestrator.watchers


@pytest.mark.serial
async def test_idle_watchers_without_after_processing_cost_no_action_polls(
    bed: Bed, running: Orchestrator
) -> None:
    """Idle cost follows changes, not watchers (issue 21): with no mailbox asking for an
    after-processing action, the actions loop never polls for accepted actions; once one asks,
    it does."""
    from sqlalchemy import event

    mailbox = await bed.add_mailbox()
    first = None

    async def connected() -> bool:
        watcher = running.watchers.get(mailbox.id)
        return watcher is not None and watcher is not first and watcher.status.state == "connected"

    await wait_for(connected, timeout=10)
    first = running.watchers[mailbox.id]
    await asyncio.sleep(1)  # its catch-up after connecting
    statements: list[str] = []

    def polls() -> list[str]:  # the actions loop's query: pending actions whose event was accepted
        return [s for s in statements if "pending_actions" in s and "accepted_at" in s]

    def record(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    engine = bed.services.database.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        await asyncio.sleep(5)  # the loop wakes every 2 s
        assert statements, "the orchestrator's other loops still run"
        assert not polls()
        await bed.services.mailboxes.update(
            bed.tenant_id, mailbox.id, MailboxUpdate(settings=SettingsPatch(after_processing="mark_read"))
        )
        await wait_for(connected, timeout=10)  # restarted with the action
        statements.clear()
        await asyncio.sleep(5)
        assert polls()
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def test_a_running_orchestrator_keeps_its_heap_out_of_full_collections(bed: Bed) -> None:
    """While it runs, what was alive at its start (and its watcher) is frozen out of the cyclic
    collector's full collections (mailport.sync.heap); once it stops, it is collectable again."""
    import gc

    mailbox = await bed.add_mailbox()
    orchestrator = bed.orchestrator()
    assert gc.get_freeze_count() == 0
    await orchestrator.start()
    try:
        assert gc.get_freeze_count() > 0
        assert not any(o is bed.services for o in gc.get_objects())  # frozen: in no generation

        async def watching() -> bool:
            return mailbox.id in orchestrator.watchers

        await wait_for(watching, timeout=10)
    finally:
        await orchestrator.stop()
    assert gc.get_freeze_count() == 0
    assert any(o is bed.services for o in gc.get_objects())
