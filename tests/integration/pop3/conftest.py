"""POP3 mailboxes on the real Dovecot (its POP3 and POP3S listeners): a tenant, a mailbox of the
``pop3`` connector, an orchestrator, what the server still holds, and a TCP relay that can cut
a session at a chosen command (an interrupted session)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mailport.bootstrap import Services
from mailport.config import Settings
from mailport.crypto import Secret
from mailport.events import Event
from mailport.mailboxes.models import (
    AuthMethod,
    Mailbox,
    NewMailbox,
    ProcessingSettings,
    Security,
    ServerSettings,
)
from mailport.sync import Orchestrator, WatcherOptions
from tests.integration.sync.conftest import all_events
from tests.mailstack.dovecot import Dovecot


@pytest.fixture
def settings(settings: Settings, dovecot: Dovecot) -> Settings:
    """The bed listens on 127.0.0.1: the operator allows exactly that address (the SSRF guard
    stays on), and Dovecot's self-signed certificate is a trusted CA."""
    return settings.model_copy(update={"allowed_hosts": ["127.0.0.1"], "mail_ca_file": Path(dovecot.ca_file)})


@dataclass
class Pop3Bed:
    services: Services
    dovecot: Dovecot
    user: str
    password: str
    tenant_id: str

    async def add_mailbox(
        self,
        *,
        port: int | None = None,
        security: Security = Security.SSL,
        after_processing: str = "none",
        password: str | None = None,
    ) -> Mailbox:
        return await self.services.mailboxes.create(
            self.tenant_id,
            NewMailbox(
                email=self.user,
                auth_method=AuthMethod.PASSWORD,
                imap=None,
                connector="pop3",
                pop3=ServerSettings("127.0.0.1", port or self.dovecot.pop3s_port, security),
                password=Secret(password or self.password),
                settings=ProcessingSettings(after_processing=after_processing, check_interval=60),
            ),
        )

    def orchestrator(self, **kw: Any) -> Orchestrator:
        kw.setdefault("reconcile_interval", 0.2)
        kw.setdefault(
            "options",
            WatcherOptions(backoff_base=0.2, backoff_cap=0.5, auth_retry_seconds=600, jitter=lambda: 1.0),
        )
        return Orchestrator(self.services, **kw)

    @contextlib.asynccontextmanager
    async def watching(self, **kw: Any) -> AsyncIterator[Orchestrator]:
        """An orchestrator running while the block runs."""
        orchestrator = self.orchestrator(**kw)
        await orchestrator.start()
        try:
            yield orchestrator
        finally:
            await orchestrator.stop()

    async def received(self, mailbox_id: str) -> list[Event]:
        return await all_events(self.services, mailbox_id=mailbox_id, type="message.received")

    async def deliver(self, raw: bytes) -> None:
        await asyncio.to_thread(self.dovecot.deliver, self.user, raw)

    async def on_server(self) -> list[str]:
        """The subjects Dovecot still holds in the user's INBOX."""
        result = await asyncio.to_thread(
            self.dovecot.doveadm, "fetch", "-u", self.user, "hdr.subject", "mailbox", "INBOX", "all"
        )
        return [
            line.split(":", 1)[1].strip()
            for line in result.stdout.decode().splitlines()
            if line.lower().startswith("hdr.subject:")
        ]


@pytest.fixture
async def pop3_bed(
    services: Services, dovecot: Dovecot, password_user: tuple[str, str]
) -> AsyncIterator[Pop3Bed]:
    tenant, _key = await services.tenants.create_tenant("pop3")
    yield Pop3Bed(services, dovecot, password_user[0], password_user[1], tenant.id)


@dataclass
class Relay:
    """A TCP relay to a server that can cut a session: when the client sends a line starting
    with one of ``cut_before`` (e.g. ``b"QUIT"``), both sides are closed and the line is never
    forwarded; ``cut_after_bytes``: the server's answer is cut after so many bytes of the
    session (mid-RETR). Each rule fires once."""

    target_port: int
    cut_before: list[bytes] = field(default_factory=list)
    cut_after_bytes: int | None = None
    cuts: int = 0
    port: int = 0
    _server: asyncio.Server | None = None

    async def start(self) -> Relay:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        cut = asyncio.Event()

        async def client_to_server() -> None:
            while not cut.is_set():
                line = await reader.readline()
                if not line:
                    break
                rule = next((c for c in self.cut_before if line.upper().startswith(c)), None)
                if rule is not None:
                    self.cut_before.remove(rule)
                    self.cuts += 1
                    cut.set()
                    break
                up_writer.write(line)
                await up_writer.drain()

        async def server_to_client() -> None:
            sent = 0
            while not cut.is_set():
                data = await up_reader.read(4096)
                if not data:
                    break
                if self.cut_after_bytes is not None and sent + len(data) > self.cut_after_bytes:
                    writer.write(data[: self.cut_after_bytes - sent])
                    await writer.drain()
                    self.cut_after_bytes = None
                    self.cuts += 1
                    cut.set()
                    break
                sent += len(data)
                writer.write(data)
                await writer.drain()

        tasks = [asyncio.create_task(client_to_server()), asyncio.create_task(server_to_client())]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()
        for w in (writer, up_writer):
            w.transport.abort()  # a cut, not a goodbye: no QUIT reaches the server


@pytest.fixture
async def relay(dovecot: Dovecot) -> AsyncIterator[Relay]:
    """A relay to Dovecot's plain POP3 port (the commands are visible to it)."""
    started = await Relay(dovecot.pop3_port).start()
    try:
        yield started
    finally:
        await started.stop()
