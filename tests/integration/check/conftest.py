"""Fixtures for connection-check tests: a checker that may reach the loopback bed, and helpers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mailport.check import ConnectionChecker
from mailport.config import Settings
from mailport.net.guard import HostGuard
from tests.fixtures.api import SecretWatch, make_settings
from tests.fixtures.bodies import check_body, mailbox_body
from tests.mailstack.dovecot import Dovecot
from tests.mailstack.smtp import SubmissionServer


@pytest.fixture
def checker() -> ConnectionChecker:
    """The CLI's guard (private hosts allowed: the bed is on 127.0.0.1), short deadlines."""
    return ConnectionChecker(HostGuard.for_operator(), timeout=8, step_timeout=4)


@dataclass
class BedAccount:
    """A fresh password mailbox on the bed; its password is in the test's secret watch."""

    user: str
    password: str
    dovecot: Dovecot
    smtp: SubmissionServer

    def mailbox_body(self, password: str | None = None) -> dict[str, Any]:
        """``POST /v1/mailboxes`` for this account (with ``password`` instead of its own)."""
        return mailbox_body(self.dovecot, self.smtp, self.user, password or self.password)

    def check_body(self) -> dict[str, Any]:
        """``POST /v1/check`` for this account."""
        return check_body(self.dovecot, self.smtp, self.user, self.password)


@pytest.fixture
def bed_account(
    dovecot: Dovecot, smtp: SubmissionServer, password_user: tuple[str, str], secret_watch: SecretWatch
) -> BedAccount:
    user, password = password_user
    secret_watch.add(password)
    return BedAccount(user, password, dovecot, smtp)


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
