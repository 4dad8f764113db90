"""``mailport workers list|show`` on SQLite and PostgreSQL: the table of the fleet, a worker's
details with its mailboxes, and one line and exit status 1 for an unknown id."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mailport.bootstrap import Services
from tests.integration.cli.conftest import AsyncCli
from tests.integration.fleet.test_workers_api import ALIVE, DEAD, seed
from tests.integration.store.test_cli import Cli


@pytest.fixture
def cli(
    services: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> AsyncCli:
    settings = services.settings
    assert settings.secret_keys is not None
    return AsyncCli(
        Cli(
            monkeypatch,
            capsys,
            tmp_path,
            MAILPORT_DATABASE_URL=settings.database_url,
            MAILPORT_SECRET_KEYS=settings.secret_keys.get_secret_value(),
        )
    )


@pytest.fixture
async def fleet(services: Services) -> None:
    await seed(services)


async def test_workers_list_is_a_table_of_the_fleet(cli: AsyncCli, fleet: None) -> None:
    out = (await cli("workers", "list")).stdout
    lines = out.splitlines()
    header = next(line for line in lines if "connects/min" in line)
    for column in ("id", "host", "state", "alive", "mailboxes", "heartbeat"):
        assert column in header
    [alive] = [line for line in lines if ALIVE in line]
    [dead] = [line for line in lines if DEAD in line]
    cells = alive.replace("│", " ").split()
    assert cells[cells.index(ALIVE) + 2 :][:4] == ["active", "yes", "2", "4.5"], alive
    assert " no " in dead and "2m ago" in dead  # its last heartbeat, two minutes ago


async def test_workers_list_json_is_the_api_shape(cli: AsyncCli, fleet: None) -> None:
    listed = json.loads((await cli("workers", "list", "--json")).stdout)
    assert [w["id"] for w in listed["workers"]] == [ALIVE, DEAD]
    assert listed["workers"][0]["queues"]["events_unaccepted"] == 7


async def test_workers_show_prints_the_details_and_mailboxes(cli: AsyncCli, fleet: None) -> None:
    shown = json.loads((await cli("workers", "show", ALIVE)).stdout)
    assert shown["id"] == ALIVE and shown["alive"] is True
    assert shown["mailbox_ids"] == ["mbx_a", "mbx_b"] and shown["rss_bytes"] == 123456789


async def test_workers_show_of_an_unknown_id_is_one_line_and_exit_1(cli: AsyncCli, fleet: None) -> None:
    result = await cli.refused("worker_not_found", "workers", "show", "nohost:1:00000000")
    assert "nohost:1:00000000" in result.stderr and len(result.stderr.strip().splitlines()) == 1
