"""After-processing against real servers: folder names resolved through NAMESPACE (a second
Dovecot whose personal namespace is ``INBOX.`` with separator ``.``), refused actions retried
without tearing down the session and then reported, a changed setting applied to pending
actions, and a reconnect backoff that does not reset until a connection proved healthy."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select

from mailport.bootstrap import Services
from mailport.events import Event
from mailport.mailboxes.models import Mailbox
from mailport.mailboxes.schemas import MailboxUpdate
from mailport.store.tables import pending_actions
from mailport.sync import Orchestrator, WatcherOptions
from mailport.sync.health import mailbox_health
from tests.fixtures.scripted import IMAPScript, scripted_imap
from tests.integration.sync.conftest import Bed, all_events, make_message, wait_for
from tests.mailstack.dovecot import Dovecot


@pytest.fixture
async def dotted(services: Services, dovecot_dotted: Dovecot) -> AsyncIterator[Bed]:
    tenant, _key = await services.tenants.create_tenant("dotted")
    user, password = dovecot_dotted.dyn_user(f"d{uuid.uuid4().hex[:10]}")
    yield Bed(services, dovecot_dotted, user, password, tenant.id)


def options(**kw: Any) -> WatcherOptions:
    base: dict[str, Any] = dict(
        backoff_base=0.2, backoff_cap=1.0, auth_retry_seconds=600, action_retry_base=0.3, jitter=lambda: 1.0
    )
    return WatcherOptions(**(base | kw))


async def _subjects(bed: Bed, folder: str) -> str:
    result = await asyncio.to_thread(
        bed.dovecot.doveadm, "fetch", "-u", bed.user, "hdr.subject", "mailbox", folder, "all"
    )
    return result.stdout.decode()


async def _arrives(bed: Bed, folder: str, subject: str) -> None:
    async def there() -> bool:
        try:
            return subject in await _subjects(bed, folder)
        except Exception:  # the folder does not exist yet
            return False

    await wait_for(there, timeout=10)


async def _accept_one(bed: Bed, mailbox_id: str, subject: str) -> Event:
    await asyncio.to_thread(bed.dovecot.deliver, bed.user, make_message(subject))
    got = await wait_for(lambda: bed.received(mailbox_id), timeout=10)
    await bed.services.events.mark_accepted(got[0].id)
    return got[0]


async def _action_rows(bed: Bed, mailbox_id: str) -> list[Any]:
    async with bed.services.database.connect() as conn:
        result = await conn.execute(select(pending_actions).where(pending_actions.c.mailbox_id == mailbox_id))
        return list(result)


async def _refused_move(bed: Bed, orchestrator: Orchestrator, subject: str) -> Mailbox:
    """A mailbox whose after-processing moves into a folder the dotted server refuses to create
    (a name beginning with ``~``), and one accepted message whose move was refused at least once."""
    mailbox = await bed.add_mailbox(after_processing="move:~Processed")
    orchestrator.poke()
    await _accept_one(bed, mailbox.id, subject)

    async def refused_once() -> bool:
        rows = await _action_rows(bed, mailbox.id)
        return bool(rows) and rows[0].attempts >= 1

    await wait_for(refused_once, timeout=10)
    return mailbox


async def _set_after_processing(bed: Bed, orchestrator: Orchestrator, mailbox_id: str, value: str) -> None:
    """Change the setting through the service, as the API does, and wake the watchers."""
    patch = MailboxUpdate.model_validate({"settings": {"after_processing": value}})
    await bed.services.mailboxes.update(bed.tenant_id, mailbox_id, patch)
    orchestrator.poke()


async def test_move_into_a_new_folder_on_a_dotted_namespace(dotted: Bed) -> None:
    orchestrator = dotted.orchestrator(options=options())
    await orchestrator.start()
    try:
        mailbox = await dotted.add_mailbox(after_processing="move:Processed")
        orchestrator.poke()
        await _accept_one(dotted, mailbox.id, "to be processed")
        await _arrives(dotted, "INBOX.Processed", "to be processed")
    finally:
        await orchestrator.stop()
    assert "to be processed" not in await _subjects(dotted, "INBOX")
    assert dotted.dovecot.logins(dotted.user) == 1
    assert not await all_events(dotted.services, mailbox_id=mailbox.id, type="mailbox.error")
    [row] = await _action_rows(dotted, mailbox.id)
    assert (row.state, row.action) == ("done", "move:Processed")


async def test_a_refused_action_keeps_the_session_is_retried_then_reported(dotted: Bed) -> None:
    # This server refuses a folder name beginning with "~": CREATE INBOX.~Processed -> NO [CANNOT].
    orchestrator = dotted.orchestrator(options=options(action_max_attempts=3))
    await orchestrator.start()
    try:
        mailbox = await dotted.add_mailbox(after_processing="move:~Processed")
        orchestrator.poke()
        received = await _accept_one(dotted, mailbox.id, "cannot be moved")
        failed = await wait_for(
            lambda: all_events(dotted.services, mailbox_id=mailbox.id, type="message.action_failed"),
            timeout=15,
        )
        await asyncio.sleep(0.5)
        watcher = orchestrator.watchers[mailbox.id]
        assert watcher.status.state == "connected"
    finally:
        await orchestrator.stop()
    assert dotted.dovecot.logins(dotted.user) == 1  # never reconnected
    assert len(failed) == 1
    payload = failed[0].payload
    assert payload["message_id"] == received.payload["id"]
    assert payload["event_id"] == received.id
    assert payload["action"] == "move:~Processed"
    assert payload["attempts"] == 3
    assert payload["error"] == "command_failed"
    assert "CREATE" in payload["detail"]
    assert payload["server_said"]
    [row] = await _action_rows(dotted, mailbox.id)
    assert (row.state, row.attempts) == ("failed", 3)
    [health] = await mailbox_health(dotted.services.database, [mailbox])
    assert health.failed_24h == 1
    assert not await all_events(dotted.services, mailbox_id=mailbox.id, type="mailbox.error")


async def test_a_changed_setting_applies_to_pending_actions(dotted: Bed) -> None:
    orchestrator = dotted.orchestrator(options=options(action_retry_base=0.5, action_max_attempts=100))
    await orchestrator.start()
    try:
        mailbox = await _refused_move(dotted, orchestrator, "move me after the fix")
        await _set_after_processing(dotted, orchestrator, mailbox.id, "move:Done/2026")
        await _arrives(dotted, "INBOX.Done.2026", "move me after the fix")
    finally:
        await orchestrator.stop()
    [row] = await _action_rows(dotted, mailbox.id)
    assert (row.state, row.action) == ("done", "move:Done/2026")
    assert not await all_events(dotted.services, mailbox_id=mailbox.id, type="message.action_failed")


async def test_backoff_does_not_reset_until_a_connection_proved_healthy(bed: Bed) -> None:
    """A server that accepts every login and refuses the first command after SELECT: before,
    the backoff reset at each login and the watcher reconnected every 0.2 s."""
    script = IMAPScript(capabilities="IMAP4rev1 AUTH=PLAIN SASL-IR")
    async with scripted_imap(script) as port:
        orchestrator = bed.orchestrator(options=options(backoff_base=0.2, backoff_cap=60.0))
        await orchestrator.start()
        try:
            await bed.add_mailbox(port=port)
            orchestrator.poke()
            await asyncio.sleep(4.0)
        finally:
            await orchestrator.stop()
    logins = script.commands.count("AUTHENTICATE") + script.commands.count("LOGIN")
    # delays 0.2, 0.4, 0.8, 1.6 s: at most 5 logins in 4 s (resetting at each login: ~20)
    assert 2 <= logins <= 5, script.commands


async def test_changing_the_setting_to_none_cancels_pending_actions(dotted: Bed) -> None:
    orchestrator = dotted.orchestrator(options=options(action_retry_base=0.5, action_max_attempts=100))
    await orchestrator.start()
    try:
        mailbox = await _refused_move(dotted, orchestrator, "leave me where I am")
        await _set_after_processing(dotted, orchestrator, mailbox.id, "none")

        async def cancelled() -> bool:
            return (await _action_rows(dotted, mailbox.id))[0].state == "cancelled"

        await wait_for(cancelled, timeout=10)
    finally:
        await orchestrator.stop()
    assert "leave me where I am" in await _subjects(dotted, "INBOX")
