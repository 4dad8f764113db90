"""A message the mailbox's own after-processing marked read produces ``message.updated`` like
anyone else's change (the application learns the server's state, whoever changed it), through
the ``fake`` connector on SQLite and PostgreSQL; the tenant opted in with a webhook listing it.
A check the server refuses does not break the watcher: ingestion goes on."""

from __future__ import annotations

import pytest

from mailport.bootstrap import Services
from mailport.connectors.base import Feature, ScopeState
from mailport.crypto import Secret
from mailport.delivery.schemas import WebhookCreate
from mailport.errors import CommandError
from mailport.mailboxes.models import AuthMethod, NewMailbox, ProcessingSettings, Security, ServerSettings
from mailport.sync import Orchestrator, WatcherOptions
from mailport.sync.watcher import Watcher
from tests.connectors.fake import ALL, FakeConnector, FakeMail, FakeServer
from tests.integration.sync.conftest import all_events, make_message, wait_for


async def _opted_in(services: Services, fake_connector: FakeServer, name: str) -> tuple[str, FakeMail]:
    """A tenant with a webhook listing ``message.updated``, and the remote mailbox
    ``<name>@example.test`` that reports changes."""
    tenant, _key = await services.tenants.create_tenant(name)
    await services.webhooks.create(
        tenant.id,
        WebhookCreate(url="http://127.0.0.1:9/hook", events=["message.updated"]),  # type: ignore[list-item]
    )
    remote = fake_connector[f"{name}@example.test"]
    remote.features = ALL | {Feature.CHANGES}
    return tenant.id, remote


async def _marking_read(services: Services, tenant_id: str, name: str) -> str:
    """The id of the fake mailbox ``<name>@example.test``, its mail marked read once accepted."""
    mailbox = await services.mailboxes.create(
        tenant_id,
        NewMailbox(
            email=f"{name}@example.test",
            auth_method=AuthMethod.PASSWORD,
            imap=ServerSettings("127.0.0.1", 993, Security.SSL),
            password=Secret("pw"),
            settings=ProcessingSettings(after_processing="mark_read", check_interval=1),
            connector="fake",
        ),
    )
    return mailbox.id


async def test_the_mailboxs_own_mark_read_produces_message_updated(
    services: Services, fake_connector: FakeServer
) -> None:
    tenant_id, remote = await _opted_in(services, fake_connector, "own")
    mailbox_id = await _marking_read(services, tenant_id, "own")
    options = WatcherOptions(backoff_base=0.05, backoff_cap=0.2, jitter=lambda: 1.0)
    orchestrator = Orchestrator(services, reconcile_interval=0.05, options=options)
    await orchestrator.start()
    try:
        remote.append(make_message("one"))
        received = await wait_for(
            lambda: all_events(services, mailbox_id=mailbox_id, type="message.received")
        )
        await services.events.mark_accepted(received[0].id)  # as a consumer would
        updated = await wait_for(lambda: all_events(services, mailbox_id=mailbox_id, type="message.updated"))
        assert "m1" in remote.read
        assert updated[0].payload["flags"] == ["seen"]
        assert updated[0].payload["ref"] == received[0].payload["ref"]
        assert updated[0].payload["message_id"] == received[0].payload["id"]
        connector = orchestrator.watchers[mailbox_id].connector
        assert isinstance(connector, FakeConnector) and connector.change_checks > 0
    finally:
        await orchestrator.stop()


async def test_a_refused_check_leaves_the_watcher_connected_and_ingesting(
    services: Services, fake_connector: FakeServer
) -> None:
    tenant, _key = await services.tenants.create_tenant("refused")
    await services.webhooks.create(
        tenant.id,
        WebhookCreate(url="http://127.0.0.1:9/hook", events=["message.deleted"]),  # type: ignore[list-item]
    )
    remote = fake_connector["refused@example.test"]
    remote.features = ALL | {Feature.CHANGES}
    remote.fail_next("changes", CommandError("STATUS failed: NO not now", server_said="not now"))
    mailbox = await services.mailboxes.create(
        tenant.id,
        NewMailbox(
            email="refused@example.test",
            auth_method=AuthMethod.PASSWORD,
            imap=ServerSettings("127.0.0.1", 993, Security.SSL),
            password=Secret("pw"),
            settings=ProcessingSettings(check_interval=1),
            connector="fake",
        ),
    )
    orchestrator = Orchestrator(services, reconcile_interval=0.05, options=WatcherOptions(jitter=lambda: 1.0))
    await orchestrator.start()
    try:
        remote.append(make_message("still ingested"))
        await wait_for(lambda: all_events(services, mailbox_id=mailbox.id, type="message.received"))
        watcher = orchestrator.watchers[mailbox.id]

        async def refused() -> bool:
            return watcher.changes.checks >= 1

        await wait_for(refused)
        remote.append(make_message("after the refusal"))
        await wait_for(lambda: _count(services, mailbox.id, 2))
        assert watcher.status.state == "connected" and watcher.status.consecutive_failures == 0
        assert await all_events(services, mailbox_id=mailbox.id, type="mailbox.error") == []
        assert watcher.changes.checks == 1  # refused once, then paused
    finally:
        await orchestrator.stop()


async def _count(services: Services, mailbox_id: str, n: int) -> bool:
    return len(await all_events(services, mailbox_id=mailbox_id, type="message.received")) >= n


async def test_an_action_accepted_before_the_first_change_check_is_still_reported(
    services: Services, fake_connector: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A consumer fast enough to accept the event between the watcher's ingestion and its
    after-processing: the change stream must not start after the mark-read (it would then take
    the read state as its starting point and never report it). Accepting inside ``catch_up``
    makes that order certain."""
    tenant_id, remote = await _opted_in(services, fake_connector, "fast")
    remote.append(make_message("one"))
    original = Watcher.catch_up

    async def catch_up_then_accept(self: Watcher, scope: ScopeState) -> int:
        appended = await original(self, scope)
        for event in await all_events(services, mailbox_id=self.mailbox.id, type="message.received"):
            await services.events.mark_accepted(event.id)
        return appended

    monkeypatch.setattr(Watcher, "catch_up", catch_up_then_accept)
    mailbox_id = await _marking_read(services, tenant_id, "fast")
    orchestrator = Orchestrator(services, reconcile_interval=0.05, options=WatcherOptions(jitter=lambda: 1.0))
    await orchestrator.start()
    try:
        received = await wait_for(
            lambda: all_events(services, mailbox_id=mailbox_id, type="message.received")
        )
        updated = await wait_for(lambda: all_events(services, mailbox_id=mailbox_id, type="message.updated"))
        assert "m1" in remote.read
        assert updated[0].payload["flags"] == ["seen"]
        assert updated[0].payload["message_id"] == received[0].payload["id"]
    finally:
        await orchestrator.stop()
