"""A connector written outside the core (:mod:`tests.connectors.directory`) plugs in by its key
alone: the orchestrator picks it for a mailbox that names it, the watcher ingests its files into
``message.received`` events, runs ``delete`` once the events are accepted, and refuses an action
the connector does not declare — on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from mailport.bootstrap import Services
from mailport.connectors import registry
from mailport.connectors.base import Feature
from mailport.crypto import Secret
from mailport.errors import UnsupportedFeatureError
from mailport.mailboxes.models import AuthMethod, NewMailbox, ProcessingSettings
from mailport.sync import Orchestrator, WatcherOptions
from tests.connectors.directory import DirectoryConnector
from tests.integration.sync.conftest import all_events, make_message, wait_for


@pytest.fixture
def mail_dir(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / "INBOX").mkdir()
    registry.register(
        "directory", lambda _mailbox, _context: DirectoryConnector(tmp_path), DirectoryConnector.capabilities
    )
    yield tmp_path
    registry.unregister("directory")


def _new(after: str) -> NewMailbox:
    return NewMailbox(
        email="files@example.test",
        auth_method=AuthMethod.PASSWORD,
        imap=None,  # a connector without servers
        password=Secret("unused"),
        settings=ProcessingSettings(after_processing=after, check_interval=1),
        connector="directory",
    )


@pytest.fixture
async def orchestrator(services: Services, mail_dir: Path) -> AsyncIterator[Orchestrator]:
    running = Orchestrator(services, reconcile_interval=0.05, options=WatcherOptions(jitter=lambda: 1.0))
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


async def test_a_connector_outside_the_core_ingests_and_deletes_by_its_key(
    services: Services, mail_dir: Path, orchestrator: Orchestrator
):
    tenant, _key = await services.tenants.create_tenant("files")
    mailbox = await services.mailboxes.create(tenant.id, _new("delete"))
    await wait_for(lambda: _connected(orchestrator, mailbox.id))
    for n in (1, 2):
        (mail_dir / "INBOX" / f"{n:04}.eml").write_bytes(make_message(f"file {n}"))
    orchestrator.watchers[mailbox.id].wake()

    async def received() -> list:
        found = await all_events(services, mailbox_id=mailbox.id, type="message.received")
        return found if len(found) == 2 else []

    events = await wait_for(received)
    assert [e.payload["subject"] for e in events] == ["file 1", "file 2"]
    assert all(e.payload["connector"] == "directory" and e.payload["source"] == {} for e in events)
    for event in events:
        await services.events.mark_accepted(event.id)
    orchestrator.watchers[mailbox.id].wake()

    async def deleted() -> bool:
        return not list((mail_dir / "INBOX").glob("*.eml"))

    assert await wait_for(deleted)
    assert len(await all_events(services, mailbox_id=mailbox.id, type="message.received")) == 2


async def test_an_action_the_connector_does_not_declare_is_refused(services: Services, mail_dir: Path):
    assert not DirectoryConnector(mail_dir).supports(Feature.MOVE)
    tenant, _key = await services.tenants.create_tenant("files")
    with pytest.raises(UnsupportedFeatureError):
        await services.mailboxes.create(tenant.id, _new("move:Done"))


async def _connected(orchestrator: Orchestrator, mailbox_id: str) -> bool:
    watcher = orchestrator.watchers.get(mailbox_id)
    return watcher is not None and watcher.status.state == "connected"
