"""The watcher and orchestrator driven through the in-memory ``fake`` connector: the core's
flow (catch-up, epoch reset, after-processing, capabilities, push or poll, the failure rule,
choosing the connector by the mailbox's key) with no protocol in the way, on SQLite and
PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import pytest

from mailport.bootstrap import Services
from mailport.connectors import registry
from mailport.connectors.base import Feature, MessageRef
from mailport.crypto import Secret
from mailport.errors import AuthenticationError, ConnectionLostError, OAuthInvalidGrantError
from mailport.events import Event
from mailport.mailboxes.models import (
    AuthMethod,
    Mailbox,
    MailboxStatus,
    NewMailbox,
    ProcessingSettings,
    Security,
    ServerSettings,
)
from mailport.sync import Orchestrator, WatcherOptions
from tests.connectors.fake import ALL, FakeConnector, FakeMail, FakeServer
from tests.integration.sync.conftest import all_events, make_message, wait_for

LONG_AGO = datetime(2020, 1, 1, tzinfo=UTC)
# How long a step may take before a test fails: a bound, not a wait (a quiet machine takes
# milliseconds). A CI run's four workers on two cores took 10 s once for the first message.
BOUND = 20.0


@pytest.fixture
async def tenant(services: Services) -> str:
    created, _key = await services.tenants.create_tenant("fake")
    return created.id


def _new(email: str, connector: str = "fake", *, after: str = "none") -> NewMailbox:
    return NewMailbox(
        email=email,
        auth_method=AuthMethod.PASSWORD,
        imap=ServerSettings("127.0.0.1", 993, Security.SSL),  # unused by the fake connector
        password=Secret("pw"),
        settings=ProcessingSettings(after_processing=after, check_interval=60),
        connector=connector,
    )


async def _mailbox(
    services: Services, tenant: str, email: str = "box@example.test", *, after: str = "none"
) -> Mailbox:
    return await services.mailboxes.create(tenant, _new(email, after=after))


@pytest.fixture
async def orchestrator(services: Services, fake_connector: FakeServer) -> AsyncIterator[Orchestrator]:
    options = WatcherOptions(backoff_base=0.05, backoff_cap=0.2, auth_retry_seconds=600, jitter=lambda: 1.0)
    running = Orchestrator(services, reconcile_interval=0.05, options=options)
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


def _arrive(orchestrator: Orchestrator, mailbox: Mailbox, remote: FakeMail, *subjects: str) -> None:
    """New mail on a server without push, after ``mailbox`` was created. Its watcher may be past
    its first catch-up already (the orchestrator starts it as soon as the row is committed, while
    ``create`` still reads it back, and a loaded run's PostgreSQL makes that read slow), and its
    next poll is 60 s away: so it is woken, as a wake-up from its provider would. A watcher not
    started yet finds the mail at its first catch-up."""
    for subject in subjects:
        remote.append(make_message(subject))
    watcher = orchestrator.watchers.get(mailbox.id)
    if watcher is not None:
        watcher.wake()


async def _until(condition: Callable[[], object]) -> None:
    async def check() -> object:
        return condition()

    await wait_for(check, timeout=BOUND)


def _state(orchestrator: Orchestrator, mailbox_id: str) -> str | None:
    watcher = orchestrator.watchers.get(mailbox_id)
    return None if watcher is None else watcher.status.state


async def _received(services: Services, mailbox_id: str, count: int) -> list[Event]:
    async def enough() -> list[Event]:
        got = await all_events(services, mailbox_id=mailbox_id, type="message.received")
        return got if len(got) >= count else []

    found: list[Event] = await wait_for(enough, timeout=BOUND)
    return found


async def test_catch_up_ingests_what_arrived_since_creation_in_order_with_neutral_locations(
    services: Services, tenant: str, fake_connector: FakeServer, orchestrator: Orchestrator
) -> None:
    remote = fake_connector["box@example.test"]
    remote.append(make_message("old 1"), at=LONG_AGO)
    remote.append(make_message("old 2"), at=LONG_AGO)
    mailbox = await _mailbox(services, tenant)
    _arrive(orchestrator, mailbox, remote, "new 0", "new 1", "new 2")
    await _received(services, mailbox.id, 3)
    await asyncio.sleep(0.2)
    got = await all_events(services, mailbox_id=mailbox.id, type="message.received")
    assert [e.payload["subject"] for e in got] == ["new 0", "new 1", "new 2"]
    first = got[0].payload
    assert first["connector"] == "fake" and first["folder"] == "INBOX"
    assert first["source"] == {"fake": {"n": 3}}
    assert MessageRef.decode(first["ref"]) == MessageRef("INBOX", "1", "m3")
    assert "uid" not in first and "uidvalidity" not in first
    assert got[0].idempotency_key == f"msg:{mailbox.id}:1:m3"
    assert isinstance(orchestrator.watchers[mailbox.id].connector, FakeConnector)


async def test_an_epoch_change_emits_one_reset_and_delivers_only_the_new_message(
    services: Services, tenant: str, fake_connector: FakeServer, orchestrator: Orchestrator
) -> None:
    remote = fake_connector["box@example.test"]
    mailbox = await _mailbox(services, tenant)
    _arrive(orchestrator, mailbox, remote, "one", "two")
    await _received(services, mailbox.id, 2)
    remote.change_epoch()  # the same mail under new ids, and one new message; the server drops
    remote.append(make_message("three"))  # the session (an epoch is read when a scope is opened)
    remote.fail_next("fetch", ConnectionLostError("the folder was recreated"))
    orchestrator.watchers[mailbox.id].wake()
    await _received(services, mailbox.id, 3)
    await asyncio.sleep(0.2)
    resets = await all_events(services, mailbox_id=mailbox.id, type="mailbox.reset")
    got = await all_events(services, mailbox_id=mailbox.id, type="message.received")
    assert [e.payload["subject"] for e in got] == ["one", "two", "three"]
    assert len(resets) == 1
    reset = resets[0].payload
    assert (reset["connector"], reset["folder"], reset["old_epoch"], reset["new_epoch"]) == (
        "fake",
        "INBOX",
        "1",
        "2",
    )
    assert reset["source"] == {}  # the fake has no protocol details for an epoch change


async def test_accepted_messages_are_marked_read_and_moved(
    services: Services, tenant: str, fake_connector: FakeServer, orchestrator: Orchestrator
) -> None:
    remote = fake_connector["box@example.test"]
    mailbox = await _mailbox(services, tenant, after="move:Done")
    _arrive(orchestrator, mailbox, remote, "to move")
    (event,) = await _received(services, mailbox.id, 1)
    assert remote.moved == {}  # not before the event is accepted
    await services.events.mark_accepted(event.id)
    await _until(lambda: remote.moved)
    assert remote.moved == {"m1": "Done"}


async def test_an_action_the_connector_cannot_do_fails_at_once_with_unsupported_feature(
    services: Services, tenant: str, fake_connector: FakeServer, orchestrator: Orchestrator
) -> None:
    remote = fake_connector["box@example.test"]
    remote.features = ALL - {Feature.PUSH, Feature.MOVE}  # this server turned out unable to move
    mailbox = await _mailbox(services, tenant, after="move:Done")
    _arrive(orchestrator, mailbox, remote, "stuck")
    (event,) = await _received(services, mailbox.id, 1)
    await services.events.mark_accepted(event.id)
    failed = await wait_for(
        lambda: all_events(services, mailbox_id=mailbox.id, type="message.action_failed"), timeout=BOUND
    )
    payload = failed[0].payload
    assert (payload["error"], payload["attempts"]) == ("unsupported_feature", 1)
    assert payload["action"] == "move:Done"
    assert MessageRef.decode(payload["ref"]).item == "m1" and payload["source"] == {"fake": {"n": 1}}
    assert remote.moved == {}


async def test_a_refused_action_is_retried_then_done(
    services: Services, tenant: str, fake_connector: FakeServer, orchestrator: Orchestrator
) -> None:
    from mailport.errors import CommandError

    remote = fake_connector["box@example.test"]
    remote.fail_next("flags", CommandError("NO [OVERQUOTA] try later"))
    mailbox = await _mailbox(services, tenant, after="mark_read")
    orchestrator.options.action_retry_base = 0.05
    _arrive(orchestrator, mailbox, remote, "read me")
    (event,) = await _received(services, mailbox.id, 1)
    await services.events.mark_accepted(event.id)
    await _until(lambda: remote.read)
    assert remote.read == {"m1"}
    assert await all_events(services, mailbox_id=mailbox.id, type="message.action_failed") == []


async def test_push_delivers_at_once_and_polling_waits_for_its_tick_or_a_wake(
    services: Services, tenant: str, fake_connector: FakeServer, orchestrator: Orchestrator
) -> None:
    pushing = fake_connector["push@example.test"]
    pushing.features = ALL
    polling = fake_connector["poll@example.test"]
    pushed = await _mailbox(services, tenant, "push@example.test")
    polled = await _mailbox(services, tenant, "poll@example.test")
    await _until(lambda: all(_state(orchestrator, m.id) == "connected" for m in (pushed, polled)))
    assert orchestrator.watchers[pushed.id].status.push is True
    assert orchestrator.watchers[polled.id].status.push is False
    await asyncio.sleep(0.2)  # both past their first catch-up, watching
    pushing.append(make_message("pushed"))
    polling.append(make_message("polled"))
    await _received(services, pushed.id, 1)
    await asyncio.sleep(0.3)  # the poll interval is 60 s: nothing yet
    assert await all_events(services, mailbox_id=polled.id, type="message.received") == []
    orchestrator.watchers[polled.id].wake()
    await _received(services, polled.id, 1)


@pytest.mark.parametrize(
    ("error", "status", "event_type", "retried"),
    [
        (ConnectionLostError("the server went away"), "connected", "mailbox.error", True),
        (AuthenticationError("bad password"), "error", "mailbox.error", False),
        (OAuthInvalidGrantError("grant revoked"), "reauth_required", "mailbox.reauth_required", False),
    ],
)
async def test_the_failure_rule_decides_between_retry_error_and_reauth_required(
    services: Services,
    tenant: str,
    fake_connector: FakeServer,
    orchestrator: Orchestrator,
    error: Exception,
    status: str,
    event_type: str,
    retried: bool,
) -> None:
    remote = fake_connector["box@example.test"]
    remote.fail_next("connect", error)
    mailbox = await _mailbox(services, tenant)

    async def settled() -> Mailbox | None:
        current = await services.mailboxes.get(tenant, mailbox.id)
        return current if current.health.status.value == status else None

    await wait_for(settled, timeout=BOUND)
    events = await all_events(services, mailbox_id=mailbox.id, type=event_type)
    assert len(events) == 1 and events[0].payload["error"] == error.code  # type: ignore[attr-defined]
    remote.append(make_message("after the failure"))
    orchestrator.watchers[mailbox.id].wake()
    if retried:  # reconnected by itself with backoff, then caught up
        await _received(services, mailbox.id, 1)
    else:  # waits for a person (auth_retry_seconds), not in a loop
        await asyncio.sleep(0.3)
        assert remote.listeners == []
        current = await services.mailboxes.get(tenant, mailbox.id)
        assert current.health.status is MailboxStatus(status)


async def test_a_fetch_failure_is_retried_from_the_cursor_without_loss_or_duplicates(
    services: Services, tenant: str, fake_connector: FakeServer, orchestrator: Orchestrator
) -> None:
    remote = fake_connector["box@example.test"]
    mailbox = await _mailbox(services, tenant)
    _arrive(orchestrator, mailbox, remote, "before")
    await _received(services, mailbox.id, 1)
    remote.fail_next("fetch", ConnectionLostError("dropped mid-fetch"))
    remote.append(make_message("after"))
    orchestrator.watchers[mailbox.id].wake()
    await _received(services, mailbox.id, 2)
    await asyncio.sleep(0.2)
    got = await all_events(services, mailbox_id=mailbox.id, type="message.received")
    assert [e.payload["subject"] for e in got] == ["before", "after"]


async def test_a_mailbox_whose_connector_is_unknown_shows_an_error_and_blocks_no_other(
    services: Services, tenant: str, fake_connector: FakeServer, orchestrator: Orchestrator
) -> None:
    fake_connector.register("fake_gone")
    gone = await services.mailboxes.create(tenant, _new("gone@example.test", "fake_gone"))
    registry.unregister("fake_gone")  # e.g. a build without that connector
    kept = await _mailbox(services, tenant)
    _arrive(orchestrator, kept, fake_connector[kept.email], "still delivered")
    await _received(services, kept.id, 1)

    async def refused() -> Mailbox | None:
        current = await services.mailboxes.get(tenant, gone.id)
        return current if current.health.status is MailboxStatus.ERROR else None

    shown = await wait_for(refused, timeout=BOUND)
    assert shown.health.last_error is not None and "unsupported_feature" in shown.health.last_error
    assert "fake_gone" in shown.health.last_error and gone.id not in orchestrator.watchers


async def test_a_connector_without_folders_refuses_to_watch_more_than_its_inbox(
    services: Services, tenant: str, fake_connector: FakeServer
) -> None:
    from dataclasses import replace

    from mailport.errors import UnsupportedFeatureError
    from mailport.mailboxes.models import WatchedFolder
    from mailport.mailboxes.schemas import MailboxUpdate, SettingsPatch

    fake_connector.register("fake_flat", ALL - {Feature.FOLDERS})
    new = _new("flat@example.test", "fake_flat")
    watching = replace(new.settings, folders=(WatchedFolder("INBOX"), WatchedFolder("role:sent")))
    with pytest.raises(UnsupportedFeatureError) as refused:
        await services.mailboxes.create(tenant, replace(new, settings=watching))
    assert refused.value.details["field"] == "settings.folders" and "role:sent" in refused.value.message
    mailbox = await services.mailboxes.create(tenant, new)  # INBOX alone, as always
    with pytest.raises(UnsupportedFeatureError):
        await services.mailboxes.update(
            tenant, mailbox.id, MailboxUpdate(settings=SettingsPatch(folders=["INBOX", "Sent"]))
        )
    kept = await services.mailboxes.update(
        tenant, mailbox.id, MailboxUpdate(settings=SettingsPatch(folders=["role:inbox"]))
    )
    assert [w.spec for w in kept.settings.watched] == ["role:inbox"]
