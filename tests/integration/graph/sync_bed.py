"""The Graph sync bed: ``mailport serve``'s app (API and watchers in one process, as ``serve``
runs them) under uvicorn in the test's loop, its public URL its own address so that the fake
Graph's notifications come through the real ``/v1/push/graph/<channel>`` route, and helpers to
make ``graph`` mailboxes and read what was ingested."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
import uvicorn
from sqlalchemy import select

from mailport.api.app import create_app
from mailport.bootstrap import Services, build
from mailport.config import Settings
from mailport.connectors.graph.connector import GraphConnector
from mailport.events import Event
from mailport.mailboxes.models import (
    Mailbox,
    ProcessingSettings,
    WatchedFolder,
)
from mailport.store.tables import mailbox_wakeups
from mailport.sync import Orchestrator
from tests.fakes.graph import Account, GraphFake
from tests.fixtures.graph import connect_graph_mailbox
from tests.integration.sync.conftest import all_events, make_message, wait_for
from tests.mailstack.idp import MockIdP

__all__ = ["SyncBed", "make_message", "wait_for"]


@dataclass
class SyncBed:
    services: Services
    fake: GraphFake
    idp: MockIdP
    url: str
    orchestrator: Orchestrator

    async def mailbox(
        self, *, folders: tuple[str, ...] = (), check_interval: int = 3600, expires_in: int = 3600
    ) -> tuple[Mailbox, Account]:
        """A connected ``graph`` mailbox of a fresh account (no tick gets in the way unless asked)."""
        made = await connect_graph_mailbox(
            self.services,
            self.fake,
            self.idp,
            expires_in=expires_in,
            settings=ProcessingSettings(
                check_interval=check_interval, folders=tuple(WatchedFolder(f) for f in folders)
            ),
        )
        return made.mailbox, made.account

    def connectors(self, mailbox_id: str) -> list[GraphConnector]:
        watchers = [
            self.orchestrator.watchers.get(mailbox_id),
            *self.orchestrator.folder_watchers.get(mailbox_id, []),
        ]
        return [w.connector for w in watchers if w is not None and isinstance(w.connector, GraphConnector)]

    async def subscribed(self, mailbox_id: str, count: int = 1, *, timeout: float = 10.0) -> list[str]:
        """Wait until the mailbox's watchers hold ``count`` live subscriptions; their ids."""

        async def live() -> list[str] | None:
            rows = await self.services.subscriptions.for_mailbox(mailbox_id)
            connectors = self.connectors(mailbox_id)
            ok = (
                len(rows) == count
                and len(connectors) == count
                and all(c.subscription.status.live for c in connectors)
                and all(r.remote_id in self.fake.subscriptions for r in rows)
            )
            return [str(r.remote_id) for r in rows] if ok else None

        return list(await wait_for(live, timeout=timeout))

    async def idle(self, mailbox_id: str) -> None:
        """Wait until no wake-up of the mailbox is left to serve (and its tick is done)."""

        async def served() -> bool:
            query = select(mailbox_wakeups.c.mailbox_id).where(mailbox_wakeups.c.mailbox_id == mailbox_id)
            async with self.services.database.connect() as conn:
                return (await conn.execute(query)).first() is None

        await wait_for(served, timeout=5)
        await asyncio.sleep(0.3)

    async def received(self, mailbox_id: str) -> list[Event]:
        return await all_events(self.services, mailbox_id=mailbox_id, type="message.received")

    async def wait_received(self, mailbox_id: str, count: int, *, timeout: float = 10.0) -> list[Event]:
        async def enough() -> list[Event] | None:
            found = await self.received(mailbox_id)
            return found if len(found) >= count else None

        return list(await wait_for(enough, timeout=timeout, interval=0.05))

    async def exactly(self, mailbox_id: str, subjects: list[str], *, settle: float = 0.5) -> list[Event]:
        """Every subject delivered, each exactly once (after a pause for any late duplicate)."""
        await self.wait_received(mailbox_id, len(subjects))
        await asyncio.sleep(settle)
        found = await self.received(mailbox_id)
        keys = [e.idempotency_key for e in found]
        assert len(keys) == len(set(keys)), keys
        assert sorted(e.payload["subject"] for e in found) == sorted(subjects)
        return found


Configure = Callable[[Settings], None]


@pytest.fixture
def configure() -> list[Configure]:
    """Settings changes a test wants before the bed starts (``configure.append(fn)``)."""
    return []


@pytest.fixture
async def sync_bed(
    graph_settings: Settings, graph: GraphFake, idp: MockIdP, configure: list[Configure]
) -> AsyncIterator[SyncBed]:
    async with running_bed(graph_settings, graph, idp, configure) as bed:
        yield bed


@contextlib.asynccontextmanager
async def running_bed(
    graph_settings: Settings, graph: GraphFake, idp: MockIdP, configure: list[Configure]
) -> AsyncIterator[SyncBed]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    graph_settings.public_url = url
    graph_settings.api_poll_seconds = 300.0  # push is what delivers, unless a test says otherwise
    for change in configure:
        change(graph_settings)
    services = await build(graph_settings, migrate=True)
    app = create_app(services=services)
    app.state.serve = True  # what `mailport serve` sets: the watchers run beside the API
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on")
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await wait_for(_started(server), timeout=20)
        bed = SyncBed(services, graph, idp, url, app.state.orchestrator)
        yield bed
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)
        sock.close()
        await services.aclose()


@pytest.fixture
async def sync_bed_fast_poll(
    graph_settings: Settings, graph: GraphFake, idp: MockIdP
) -> AsyncIterator[SyncBed]:
    """The bed with a 1 s fallback poll while subscribed (``MAILPORT_API_POLL_SECONDS``)."""

    def fast(settings: Settings) -> None:
        settings.api_poll_seconds = 1.0

    async with running_bed(graph_settings, graph, idp, [fast]) as bed:
        yield bed


def _started(server: uvicorn.Server) -> Callable[[], Awaitable[Any]]:
    async def check() -> bool:
        return bool(server.started)

    return check
