"""The real watchers behind the fleet budgets' connect gate (what the orchestrator passes as
``connect_slots``), against the real Dovecot: a mailbox of a provider that allows 5 connections
per account (Yahoo) watching 4 folders gets its 4th folder refused with a clear health error
before any login, while the 3 others connect."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from mailport.bootstrap import Services
from mailport.config import Settings
from mailport.crypto import Secret
from mailport.fleet.budgets import FleetBudgets
from mailport.mailboxes.models import (
    AuthMethod,
    Mailbox,
    MailboxStatus,
    NewMailbox,
    ProcessingSettings,
    Security,
    ServerSettings,
    WatchedFolder,
)
from mailport.sync.folders import MailboxFolders
from mailport.sync.watcher import Watcher, WatcherOptions
from tests.integration.sync.conftest import wait_for
from tests.mailstack.dovecot import Dovecot


@pytest.fixture
def database_url(postgres_url: str) -> str:
    return postgres_url


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"allowed_hosts": ["127.0.0.1"]})


@pytest.fixture
async def budgets(services: Services) -> AsyncIterator[FleetBudgets]:
    budgets = FleetBudgets.from_settings(
        services.database, "host-w:1:gate", services.settings, local_connects=20
    )
    await budgets.start()
    yield budgets
    await budgets.stop()


async def test_a_folder_past_the_accounts_limit_is_a_health_error_and_never_logs_in(
    services: Services, dovecot: Dovecot, budgets: FleetBudgets
) -> None:
    user, password = dovecot.dyn_user(f"gate{uuid.uuid4().hex[:10]}")
    tenant, _key = await services.tenants.create_tenant("budgets")
    folders = tuple(WatchedFolder(spec) for spec in ("INBOX", "Sent", "Drafts", "Trash"))
    mailbox = await services.mailboxes.create(
        tenant.id,
        NewMailbox(
            email=user,
            auth_method=AuthMethod.PASSWORD,
            imap=ServerSettings("127.0.0.1", dovecot.imap_port, Security.NONE),
            password=Secret(password),
            provider_id="yahoo",  # 5 per account, 2 kept for the person's programs: 3 folders
            settings=ProcessingSettings(folders=folders, check_interval=60),
        ),
    )
    shared = MailboxFolders(services.mailboxes, mailbox.settings.watched)
    watchers = [
        Watcher(
            mailbox,
            services.connector(mailbox),
            log_=services.events,
            mailboxes=shared.sink(folder.spec),
            owner="host-w:1:gate",
            connect_slots=budgets.gate(mailbox, index),  # type: ignore[arg-type]  # the hook's type
            options=WatcherOptions(backoff_base=0.2, backoff_cap=1.0),
            folder=folder.spec,
            primary=index == 0,
            resolve=shared.resolve,
        )
        for index, folder in enumerate(mailbox.settings.watched)
    ]
    for watcher in watchers:
        watcher.start()
    try:

        async def connected() -> bool:
            return all(w.status.state == "connected" for w in watchers[:3])

        async def refused() -> bool:
            return watchers[3].status.state == "error"

        async def recorded() -> Mailbox | None:  # the health is written after the state is set
            found = await services.mailboxes.repository.get_by_id(mailbox.id)
            return found if found.health.status is MailboxStatus.ERROR else None

        await wait_for(connected, timeout=20)
        await wait_for(refused, timeout=10)
        stored = await wait_for(recorded, timeout=10)
        error = stored.health.last_error or ""
        assert "folder Trash: [too_many_watched_folders]" in error
        assert "Yahoo allows 5 simultaneous IMAP connections" in error and "at most 3 folders" in error
        assert "folder INBOX" not in error  # the others are watched as usual
        assert dovecot.logins(user) == 3  # the refused folder never signed in
    finally:
        for watcher in watchers:
            await watcher.stop()
