"""Per-account connection limits: what a provider's limit leaves each API process's command pool
beside the watched folders and the person's own programs, and the pool following the number of
live API processes as it changes."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from mailport.errors import TooManyWatchedFoldersError
from mailport.fleet.budgets import FleetBudgets
from mailport.fleet.registry import API, WATCHERS
from mailport.mailboxes.connection_limits import (
    LIMITS,
    account_limit,
    check_watched,
    command_cap,
    pool_cap,
)
from mailport.mailboxes.models import (
    Health,
    Mailbox,
    MailboxStatus,
    OAuthGrant,
    ProcessingSettings,
    Security,
    ServerSettings,
    WatchedFolder,
)
from tests.unit.fleet.test_budgets import row
from tests.unit.test_command_pool import Bed, Holder, make_mailbox, settle


def on(host: str, folders: int = 1, **changes: object) -> Mailbox:
    settings = ProcessingSettings(folders=tuple(WatchedFolder(f"F{n}") for n in range(folders)))
    return make_mailbox(imap=ServerSettings(host, 993, Security.SSL), settings=settings, **changes)


@pytest.mark.parametrize(
    ("host", "folders", "api", "size", "cap"),
    [
        ("imap.gmail.com", 1, 1, 40, 10),  # 15 - 4 kept - 1 watched
        ("imap.gmail.com", 1, 2, 40, 5),
        ("imap.gmail.com", 1, 3, 40, 3),  # 10 // 3: the three pools together stay within 10
        ("imap.gmail.com", 3, 3, 40, 2),  # (15 - 4 - 3) // 3
        ("imap.gmail.com", 1, 20, 40, 1),  # at least 1
        ("imap.gmail.com", 11, 1, 40, 1),  # every connection watched: still 1 for requests
        ("imap.gmail.com", 1, 1, 2, 2),  # never above MAILPORT_COMMAND_CONNECTIONS
        ("outlook.office365.com", 2, 2, 40, 7),  # (20 - 4 - 2) // 2
        ("imap.mail.yahoo.com", 1, 1, 40, 2),  # 5 - 2 - 1
        ("imap.mail.me.com", 2, 1, 40, 1),
        ("imap.example.test", 9, 7, 3, 3),  # no known limit: the setting alone
    ],
)
def test_the_command_share_of_one_api_process(host: str, folders: int, api: int, size: int, cap: int) -> None:
    assert command_cap(on(host, folders), size=size, api_processes=api) == cap


def test_a_disabled_mailbox_holds_no_watcher_connections() -> None:
    disabled = on("imap.gmail.com", 3, health=Health(status=MailboxStatus.DISABLED))
    assert command_cap(disabled, size=40) == 11


def test_providers_are_known_by_detection_oauth_or_host_and_api_connectors_are_not_counted() -> None:
    assert account_limit(make_mailbox(provider_id="gmail")) is LIMITS[0]
    grant = OAuthGrant("microsoft", connected_email="a@outlook.com")
    assert account_limit(make_mailbox(oauth=grant)) is LIMITS[1]
    assert account_limit(on("IMAP.mail.me.com.")) is LIMITS[3]
    graph = dataclasses.replace(make_mailbox(oauth=grant), connector="graph")
    assert account_limit(graph) is None and pool_cap(graph) is None
    assert pool_cap(on("imap.gmail.com")) == 10  # one API process, one folder: as before


def test_folders_past_the_accounts_limit_are_refused_by_name() -> None:
    yahoo = on("imap.mail.yahoo.com", 4)  # 5 - 2 kept: 3 folders
    for index in range(3):
        check_watched(yahoo, index)
    with pytest.raises(TooManyWatchedFoldersError) as refused:
        check_watched(yahoo, 3)
    assert "Yahoo allows 5 simultaneous IMAP connections" in str(refused.value)
    check_watched(on("imap.example.test", 40), 39)  # an unknown server: not ours to refuse


async def test_the_pool_follows_the_live_api_processes() -> None:
    budgets = FleetBudgets(None, "w", host_logins=10, connect_rate=100)
    budgets.apply([row("w"), row("api1", roles=(API,))])
    made = Bed(size=40, wait=0.2, api_processes=budgets.api_processes)
    mailbox = on("imap.gmail.com", 1)
    try:
        holders = [Holder(made.pool, mailbox) for _ in range(12)]
        await asyncio.sleep(0.05)
        assert made.pool.sizes(mailbox.id)["limit"] == 10 and made.open == 10
        for holder in holders:
            holder.done.set()
        await asyncio.gather(*(h.task for h in holders), return_exceptions=True)
        await settle()
        # a second API process registers: this one keeps 5, closing what it had above
        budgets.apply([row("w"), row("api1", roles=(API, WATCHERS)), row("api2", roles=(API,))])
        async with made.pool.borrow(mailbox):
            assert made.pool.sizes(mailbox.id)["limit"] == 5
        await settle()
        assert made.open <= 5
        holders = [Holder(made.pool, mailbox) for _ in range(8)]
        await asyncio.sleep(0.05)
        assert made.open == 5 and made.pool.sizes(mailbox.id)["waiting"] == 3
        for holder in holders:
            holder.done.set()
        await asyncio.gather(*(h.task for h in holders), return_exceptions=True)
    finally:
        await made.pool.aclose()


async def test_api_processes_counts_the_rows_with_role_api_and_at_least_this_one() -> None:
    budgets = FleetBudgets(None, "w", host_logins=10, connect_rate=100)
    assert await budgets.api_processes() == 1  # nobody registered (no database): this process
    budgets.apply([row("a", roles=(API,)), row("b", roles=(API,)), row("c", roles=(API,))])
    assert await budgets.api_processes() == 3
