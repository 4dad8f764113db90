"""What the Postfix end-to-end tests share: a mailbox whose SMTP server is the Postfix bed
(``postfix`` fixture, tests/fixtures/postfix.py), and reading what Postfix delivered back from
Dovecot over IMAP (the stdlib's imaplib: an independent reader, not mailport's client).

Import the fixtures into a test module by name."""

from __future__ import annotations

import asyncio
import imaplib
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from mailport.bootstrap import Services
from mailport.config import Settings
from mailport.sending.models import FINAL, OutboundMessage, SentCopyState
from mailport.sending.worker import SendWorker, retry_policy
from mailport.store.tables import events
from tests.fixtures.api import TenantHandle
from tests.integration.sending.outbox_bed import Box, make_box
from tests.mailstack.dovecot import Dovecot
from tests.mailstack.postfix import Postfix


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only: these tests are about the mail servers; the outbox tests cover PostgreSQL."""
    return f"sqlite+aiosqlite:///{tmp_path / 'mailport.db'}"


@pytest.fixture
def settings(settings: Settings, dovecot: Dovecot) -> Settings:
    """The bed's hosts allowed, its CA trusted (Postfix uses Dovecot's certificate)."""
    return settings.model_copy(update={"allowed_hosts": ["127.0.0.1"], "mail_ca_file": Path(dovecot.ca_file)})


@pytest.fixture
async def sender(services: Services, tenant: TenantHandle, dovecot: Dovecot, postfix: Postfix) -> Box:
    """A fresh Dovecot user as a mailbox that sends through Postfix (STARTTLS, Dovecot SASL)."""
    return await make_box(services, dovecot, postfix.submission_port, tenant_id=tenant.id)


@dataclass(frozen=True)
class Account:
    email: str
    password: str


@pytest.fixture
def recipient(dovecot: Dovecot) -> Account:
    return Account(*dovecot.dyn_user(f"r{uuid.uuid4().hex[:10]}"))


class Imap:
    """An imaplib session on the bed's Dovecot, logged in as one user."""

    def __init__(self, dovecot: Dovecot, email: str, password: str) -> None:
        self.client = imaplib.IMAP4("127.0.0.1", dovecot.imap_port)
        self.client.login(email, password)

    def __enter__(self) -> Imap:
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.logout()

    def command(self, *args: str) -> list[bytes]:
        kind, data = self.client.uid(*args)
        assert kind == "OK", (args, data)
        return [d if isinstance(d, bytes) else d[1] for d in data if d is not None]

    def select(self, folder: str = "INBOX") -> int:
        kind, data = self.client.select(f'"{folder}"')
        assert kind == "OK", data
        return int(data[0] or 0)

    def search(self, *criteria: str) -> list[int]:
        return [int(uid) for uid in self.command("SEARCH", *criteria)[0].split()]

    def raw(self, uid: int) -> bytes:
        data = self.client.uid("FETCH", str(uid), "(BODY.PEEK[])")[1]
        first = data[0]
        assert isinstance(first, tuple), data
        return first[1]

    def by_message_id(self, message_id: str, folder: str = "INBOX") -> list[bytes]:
        """Every message in ``folder`` whose Message-ID is ``message_id`` (no angle brackets)."""
        self.select(folder)
        return [self.raw(uid) for uid in self.search("HEADER", "Message-ID", f'"{message_id}"')]

    def thread_references(self) -> str:
        """``UID THREAD REFERENCES UTF-8 ALL`` on the selected folder: the server's threads,
        e.g. ``(1 2)(3)``."""
        kind, data = self.client.uid("THREAD", "REFERENCES", "UTF-8", "ALL")
        assert kind == "OK", data
        return b"".join(d for d in data if isinstance(d, bytes)).decode()


def wait_until(found: Callable[[], list[bytes]], *, what: str, timeout: float = 20) -> list[bytes]:
    """Poll ``found`` until it returns something (Postfix delivers within a second or so)."""
    deadline = time.monotonic() + timeout
    while True:
        result = found()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: nothing after {timeout} s")
        time.sleep(0.1)


def delivered(dovecot: Dovecot, account: Account, message_id: str, *, timeout: float = 20) -> bytes:
    """The one message ``message_id`` that Postfix delivered to ``account``'s INBOX."""
    with Imap(dovecot, account.email, account.password) as imap:
        found = wait_until(
            lambda: imap.by_message_id(message_id), what=f"{message_id} at {account.email}", timeout=timeout
        )
    assert len(found) == 1, f"{len(found)} copies of {message_id} at {account.email}"
    return found[0]


def threads(text: str) -> list[list[int]]:
    """``(1 2)(3 (4)(5))`` -> the UIDs of each top-level thread: ``[[1, 2], [3, 4, 5]]``."""
    result: list[list[int]] = []
    depth = 0
    for token in re.findall(r"\(|\)|\d+", text):
        if token == "(":
            if depth == 0:
                result.append([])
            depth += 1
        elif token == ")":
            depth -= 1
        else:
            result[-1].append(int(token))
    return result


# --------------------------------------------------------------------------- the queue and its worker


@pytest.fixture
async def worker(services: Services) -> AsyncIterator[SendWorker]:
    """The send worker, running, impatient (polls every 0.1 s, retries after 0.2 s)."""
    running = SendWorker(
        services,
        poll_seconds=0.1,
        claim_seconds=10,
        retry=retry_policy(first_seconds=0.2, max_attempts=3, give_up_hours=1),
    )
    running.start()
    try:
        yield running
    finally:
        await running.stop()


async def settled(box: Box, send_id: str, *, copied: bool = False, timeout: float = 30) -> OutboundMessage:
    """The send once it is sent, failed or cancelled (and, with ``copied``, once its Sent copy
    step is over too)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = await box.services.sending.get(box.tenant_id, box.mailbox_id, send_id)
        if found.state in FINAL and not (copied and found.sent_copy is SentCopyState.PENDING):
            return found
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"send {send_id} still {found.state}/{found.sent_copy} after {timeout} s")
        await asyncio.sleep(0.05)


async def events_of(services: Services, send_id: str, type_: str) -> list[dict[str, Any]]:
    """The payloads of the events of type ``type_`` about ``send_id``."""
    async with services.database.connect() as conn:
        rows = (await conn.execute(select(events).where(events.c.type == type_))).all()
    payloads = [json.loads(r.payload) for r in rows]
    return [p for p in payloads if p.get("send_id") == send_id]
