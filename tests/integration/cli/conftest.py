"""The CLI of webhooks and the event log, in-process (the console script's ``main``, as
tests/integration/store/test_cli.py runs it) on the test's database — SQLite and PostgreSQL —
with private hosts allowed, since the webhook receiver listens on 127.0.0.1."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from mailport.bootstrap import Services
from tests.fixtures.api import TenantHandle, create_tenant
from tests.integration.store.test_cli import Cli, Result, one_line_error


class AsyncCli:
    """``await cli(...)``: the in-process CLI in a worker thread, so that the test's event loop
    (the dispatcher, the receiver's waits) keeps running while a command runs its own loop."""

    def __init__(self, cli: Cli) -> None:
        self.sync = cli

    async def __call__(self, *args: str, **options: Any) -> Result:
        return await asyncio.to_thread(self.sync, *args, **options)

    async def refused(self, code: str, *args: str, **options: Any) -> Result:
        """The command fails with one line ``error [code]: …`` on stderr and exit status 1."""
        result = await self(*args, ok=False, **options)
        one_line_error(result, code)
        return result


@pytest.fixture
def cli(
    delivery_services: Services,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> AsyncCli:
    settings = delivery_services.settings
    assert settings.secret_keys is not None
    return AsyncCli(
        Cli(
            monkeypatch,
            capsys,
            tmp_path,
            MAILPORT_DATABASE_URL=settings.database_url,
            MAILPORT_SECRET_KEYS=settings.secret_keys.get_secret_value(),
            MAILPORT_ALLOW_PRIVATE_HOSTS="true",
        )
    )


@pytest.fixture
async def acme(delivery_services: Services) -> TenantHandle:
    return await create_tenant(delivery_services, "acme")


@pytest.fixture
async def other(delivery_services: Services) -> TenantHandle:
    return await create_tenant(delivery_services)
