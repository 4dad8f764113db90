"""Fixtures of the fleet tests: a Dovecot of their own and a :class:`Fleet` on a fresh
PostgreSQL schema with its mailboxes stored.

A Dovecot of their own (package scope): sixty mailboxes watched at once, handed from worker to
worker while mail arrives, must not share their server's process and connection limits with the
other tests of the same pytest worker; and the package-scoped fixture keeps these tests together
on one pytest worker (tests/fixtures/parallel.py), one after the other.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import require_binary
from tests.e2e.fleet.harness import Fleet, seed_mailboxes
from tests.mailstack.dovecot import Dovecot

MAILBOXES = 60  # 20 a worker of three: ±10 % is ±2, and the design's room is 21
LEASE_SECONDS = 5


@pytest.fixture(scope="package")
def fleet_dovecot(mail_root: Path) -> Iterator[Dovecot]:
    require_binary("dovecot", "apt-get install dovecot-core dovecot-imapd dovecot-lmtpd")
    server = Dovecot(mail_root / "fleet-dovecot")
    server.start()
    yield server
    server.stop()


@dataclass
class FleetBed:
    fleet: Fleet
    dovecot: Dovecot
    users: dict[str, str]  # mailbox id -> Dovecot user

    @property
    def mailbox_of(self) -> dict[str, str]:
        return {user: mailbox for mailbox, user in self.users.items()}


@pytest.fixture
async def fleet_bed(
    tmp_path: Path, fresh_database_url: str, secret_key: str, fleet_dovecot: Dovecot
) -> AsyncIterator[FleetBed]:
    """MAILBOXES mailboxes stored (none watched yet) and a fleet with no worker started; every
    worker the test starts is stopped afterwards."""
    tag = uuid.uuid4().hex[:6]
    users = await seed_mailboxes(
        fresh_database_url, tmp_path / "seed", secret_key, fleet_dovecot, MAILBOXES, tag=tag
    )
    env = {
        "MAILPORT_DATABASE_URL": fresh_database_url,
        "MAILPORT_SECRET_KEYS": secret_key,
        "MAILPORT_ALLOW_PRIVATE_HOSTS": "true",
        "MAILPORT_LOG_LEVEL": "INFO",
        "MAILPORT_LEASE_SECONDS": str(LEASE_SECONDS),
    }
    fleet = Fleet(tmp_path / "fleet", env, fresh_database_url)
    try:
        yield FleetBed(fleet, fleet_dovecot, users)
    finally:
        await fleet.close()
