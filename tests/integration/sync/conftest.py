"""Helpers for ingestion tests: a tenant, a mailbox on the real Dovecot, an orchestrator, and
waiting for events (on SQLite and PostgreSQL through ``services``)."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import pytest
from sqlalchemy import select

from mailport.bootstrap import Services
from mailport.config import Settings
from mailport.crypto import Secret
from mailport.events import Event, row_to_event
from mailport.imap import ImapClient
from mailport.mailboxes.models import (
    AuthMethod,
    Mailbox,
    NewMailbox,
    ProcessingSettings,
    Security,
    ServerSettings,
)
from mailport.store.tables import events
from mailport.sync import Orchestrator, WatcherOptions
from tests.mailstack.dovecot import Dovecot


def make_message(subject: str, body: str = "hello", *, message_id: str | None = None) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "Sender <sender@example.test>", "x@example.test", subject
    msg["Message-ID"] = f"<{message_id or subject.replace(' ', '.')}@example.test>"
    msg.set_content(body)
    return msg.as_bytes().replace(b"\n", b"\r\n")


async def all_events(
    services: Services, *, mailbox_id: str | None = None, type: str | None = None
) -> list[Event]:
    query = select(events).order_by(events.c.seq)
    if mailbox_id is not None:
        query = query.where(events.c.mailbox_id == mailbox_id)
    if type is not None:
        query = query.where(events.c.type == type)
    async with services.database.connect() as conn:
        return [row_to_event(row) for row in await conn.execute(query)]


async def wait_for(
    check: Callable[[], Awaitable[Any]], *, timeout: float = 10.0, interval: float = 0.02
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(
                f"condition not met within {timeout} s (last value {value!r}) at "
                f"{time.strftime('%H:%M:%S')}; the tasks were waiting here:\n{where_tasks_wait()}"
            )
        await asyncio.sleep(interval)


def where_tasks_wait() -> str:
    """Each pending task of the running loop, with the whole chain of what it awaits (asyncio's
    own stacks stop at the task's outer coroutine): a timeout then shows what blocked."""
    lines = []
    current = asyncio.current_task()
    for task in asyncio.all_tasks():
        if task is current or task.done():
            continue
        lines.append(f"- {task.get_name()}:")
        awaited: Any = task.get_coro()
        for _ in range(40):
            if type(awaited).__name__ == "async_generator_asend":  # the generator it drives
                awaited = next((g for g in gc.get_referents(awaited) if hasattr(g, "ag_frame")), awaited)
            frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "ag_frame", None)
            frame = frame or getattr(awaited, "gi_frame", None)
            if frame is None:
                if awaited is not None:
                    lines.append(f"    awaiting {awaited!r:.200}")
                break
            code = frame.f_code
            lines.append(f"    {code.co_filename.rsplit('/src/', 1)[-1]}:{frame.f_lineno} {code.co_name}")
            awaited = (
                getattr(awaited, "cr_await", None)
                or getattr(awaited, "ag_await", None)
                or getattr(awaited, "gi_yieldfrom", None)
            )
    return "\n".join(lines)


@dataclass
class Bed:
    services: Services
    dovecot: Dovecot
    user: str
    password: str
    tenant_id: str

    async def add_mailbox(
        self, *, folder: str = "INBOX", after_processing: str = "none", **kw: Any
    ) -> Mailbox:
        return await self.services.mailboxes.create(
            self.tenant_id,
            NewMailbox(
                email=self.user,
                auth_method=AuthMethod.PASSWORD,
                imap=ServerSettings("127.0.0.1", kw.pop("port", self.dovecot.imap_port), Security.NONE),
                password=Secret(kw.pop("password", self.password)),
                settings=ProcessingSettings(
                    folder=folder, after_processing=after_processing, check_interval=60
                ),
            ),
        )

    def orchestrator(self, **kw: Any) -> Orchestrator:
        kw.setdefault("reconcile_interval", 0.2)
        kw.setdefault("options", WatcherOptions(backoff_base=0.2, backoff_cap=1.0, auth_retry_seconds=600))
        return Orchestrator(self.services, **kw)

    async def imap(self, port: int | None = None) -> ImapClient:
        return await self.dovecot.client(
            self.user, self.password, port=port or self.dovecot.imap_port, command_timeout=60
        )

    async def received(self, mailbox_id: str) -> list[Event]:
        return await all_events(self.services, mailbox_id=mailbox_id, type="message.received")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The bed's servers (Dovecot, the OAuth IdP) listen on 127.0.0.1: the operator allows exactly
    that address, as a deployment with an internal mail server would (the SSRF guard stays on)."""
    return settings.model_copy(update={"allowed_hosts": ["127.0.0.1"]})


@pytest.fixture
async def bed(services: Services, dovecot: Dovecot, password_user: tuple[str, str]) -> AsyncIterator[Bed]:
    tenant, _key = await services.tenants.create_tenant("ingest")
    yield Bed(services, dovecot, password_user[0], password_user[1], tenant.id)


@pytest.fixture
async def running(bed: Bed) -> AsyncIterator[Orchestrator]:
    orchestrator = bed.orchestrator()
    await orchestrator.start()
    try:
        yield orchestrator
    finally:
        await orchestrator.stop()
