"""``mailport apply`` / ``export`` run in this process (the console script's ``main``) against a
real database, SQLite and PostgreSQL, whose state the tests read through the service graph."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from mailport.bootstrap import build
from mailport.config import Settings
from mailport.declare.state import Snapshot, read_state
from mailport.services import Services
from tests.fixtures.api import make_settings
from tests.fixtures.schema import build_migrated
from tests.integration.store.test_cli import Cli, Result, one_line_error

__all__ = ["Accounts", "Result", "one_line_error"]


@dataclass
class Accounts:
    """The CLI on one database, the accounts file in ``dir``, and the state behind them."""

    cli: Cli
    settings: Settings
    dir: Path

    def write(self, data: dict[str, Any], name: str = "accounts.yaml") -> Path:
        path = self.dir / name
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        return path

    def apply(self, *args: str, ok: bool = True, **env: str) -> Result:
        return self.cli("apply", *args, ok=ok, **env)

    def state(self) -> Snapshot:
        return self.run(read_state)

    def run(self, action: Callable[[Services], Any]) -> Any:
        async def main() -> Any:
            services = await build(self.settings, migrate=False)
            try:
                return await action(services)
            finally:
                await services.aclose()

        return asyncio.run(main())

    def rows(self) -> dict[str, Any]:
        """Every declared thing with the time it last changed: equal dicts, nothing written."""
        out: dict[str, Any] = {}
        for name, tenant in self.state().tenants.items():
            out[name] = {
                "id": tenant.tenant.id,
                "mailboxes": {m.email: (m.id, m.updated_at, m.health.status) for m in tenant.mailboxes},
                "webhooks": {w.url: (w.id, w.updated_at, w.status) for w in tenant.webhooks},
                "apps": {a.provider: (a.id, a.updated_at) for a in tenant.apps},
            }
        return out


@pytest.fixture
def accounts(
    fresh_database_url: str,
    secret_key: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Accounts:
    settings = make_settings(fresh_database_url, tmp_path / "var", secret_key)
    settings.allow_private_hosts = True  # the webhooks and servers below are on loopback

    async def migrate() -> None:
        await (await build_migrated(settings)).aclose()

    asyncio.run(migrate())
    work = tmp_path / "work"
    work.mkdir()
    cli = Cli(
        monkeypatch,
        capsys,
        work,
        MAILPORT_DATABASE_URL=fresh_database_url,
        MAILPORT_SECRET_KEYS=secret_key,
        MAILPORT_DATA_DIR=str(tmp_path / "var"),
        MAILPORT_ALLOW_PRIVATE_HOSTS="true",
        MAILPORT_PUBLIC_URL="https://mail.example.test",
    )
    return Accounts(cli, settings, work)
