"""Fixtures for connection-check tests: a checker that may reach the loopback bed, and helpers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mailport.check import ConnectionChecker
from mailport.config import Settings
from mailport.net.guard import HostGuard
from tests.fixtures.api import make_settings


@pytest.fixture
def checker() -> ConnectionChecker:
    """The CLI's guard (private hosts allowed: the bed is on 127.0.0.1), short deadlines."""
    return ConnectionChecker(HostGuard.for_operator(), timeout=8, step_timeout=4)


# --------------------------------------------------------------------------- the service


@pytest.fixture
def check_overrides() -> dict[str, Any]:
    """Settings for this test's service; override with ``@pytest.mark.parametrize("check_overrides", …)``.

    The bed runs on 127.0.0.1, so by default private hosts are allowed; SSRF tests set
    ``allow_private_hosts`` to False and ``dns`` to True (names resolve through a local DNS
    server, ``dns_server``)."""
    return {"allow_private_hosts": True}


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """API check tests need the tables, not both databases (the health columns are covered on
    both by the store tests and by ``test_mailbox_test.py``)."""
    return f"sqlite+aiosqlite:///{tmp_path / 'mailport.db'}"


@pytest.fixture
def settings(
    fresh_database_url: str,
    tmp_path: Path,
    secret_key: str,
    check_overrides: dict[str, Any],
    request: pytest.FixtureRequest,
) -> Settings:
    built = make_settings(fresh_database_url, tmp_path / "var", secret_key)
    for key, value in check_overrides.items():
        if key == "dns":
            if value:
                built.dns_nameservers = [request.getfixturevalue("dns_server").nameserver]
            continue
        setattr(built, key, value)
    return built
