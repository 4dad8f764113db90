"""Several orchestrators in one test process, each its own fleet member (its own owner id),
over the in-memory ``fake`` connector: no mail server needed to watch the assignment move."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import pytest

from mailport.bootstrap import Services
from mailport.crypto import Secret
from mailport.mailboxes.models import (
    AuthMethod,
    Mailbox,
    NewMailbox,
    ProcessingSettings,
    Security,
    ServerSettings,
)
from mailport.sync import Orchestrator, WatcherOptions
from tests.connectors.fake import FakeServer
from tests.integration.sync.conftest import wait_for

__all__ = ["Fleet", "wait_for"]


def new_mailbox(email: str) -> NewMailbox:
    return NewMailbox(
        email=email,
        auth_method=AuthMethod.PASSWORD,
        imap=ServerSettings("127.0.0.1", 993, Security.SSL),  # unused by the fake connector
        password=Secret("pw"),
        settings=ProcessingSettings(check_interval=600),
        connector="fake",
    )


class Fleet:
    """Mailboxes made behind the orchestrators' backs (as another process would) and members."""

    def __init__(self, services: Services, tenant: str) -> None:
        self.services = services
        self.tenant = tenant
        self.members: list[Orchestrator] = []

    async def mailboxes(self, count: int, prefix: str = "box") -> list[Mailbox]:
        repository = self.services.mailboxes.repository
        now = datetime.now(UTC)
        return [
            await repository.create(self.tenant, new_mailbox(f"{prefix}{i}@fleet.test"), now=now)
            for i in range(count)
        ]

    async def member(self, name: str, *, lease_ttl: float = 30.0, start: bool = True) -> Orchestrator:
        orchestrator = Orchestrator(
            self.services,
            owner=f"host-{name}:{1000 + len(self.members)}:{name}",
            reconcile_interval=0.1,
            lease_ttl=lease_ttl,
            stagger_seconds=0,
            membership_refresh=0.5,
            options=WatcherOptions(backoff_base=0.05, backoff_cap=0.2, jitter=lambda: 1.0),
        )
        self.members.append(orchestrator)
        if start:
            await orchestrator.start()
        return orchestrator

    def holdings(self, members: list[Orchestrator] | None = None) -> dict[str, set[str]]:
        return {m.owner: set(m.watchers) for m in members or self.members}

    async def settled(self, ids: set[str], members: list[Orchestrator], *, timeout: float = 10.0) -> float:
        """Until ``members`` hold exactly ``ids`` between them, each its assigned share, never
        two the same mailbox; returns the seconds it took."""
        started = time.monotonic()

        async def done() -> bool:
            held = [set(m.watchers) for m in members]
            for i, one in enumerate(held):
                for other in held[i + 1 :]:
                    assert not one & other, "two members watch the same mailbox"
            union = set().union(*held)
            return union == ids and all(set(m.watchers) == m.wanted for m in members)

        await wait_for(done, timeout=timeout, interval=0.05)
        return time.monotonic() - started


@pytest.fixture
async def fleet(services: Services, fake_connector: FakeServer) -> AsyncIterator[Fleet]:
    tenant, _ = await services.tenants.create_tenant("fleet")
    running = Fleet(services, tenant.id)
    try:
        yield running
    finally:
        for member in running.members:
            await member.stop()


postgres_only: Callable[[object], object] = pytest.mark.parametrize(
    "database_url", ["postgres"], indirect=True
)
