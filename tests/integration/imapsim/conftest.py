"""The simulator checked against Dovecot: the same tests, parametrized over both servers.

``mail_server`` is a plain-IMAP server on loopback with a fresh user, either the test bed's
Dovecot or the simulator (one per session, on its own thread); ``harness`` is the connector
contract's :class:`Harness` over either, so the contract's own test functions run unchanged.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from mailport.bootstrap import Services
from mailport.config import Settings
from mailport.connectors import registry
from mailport.crypto import Secret
from mailport.imap import ImapClient, PasswordAuth
from mailport.mailboxes.models import Security
from tests.connectors.conftest import SCOPE, Harness, _mailbox
from tests.imapsim import SimThread, sim_thread
from tests.mailstack.dovecot import Dovecot

SERVERS = ["dovecot", "imapsim"]


@dataclass
class MailServer:
    """A plain-IMAP server on 127.0.0.1, a fresh user on it, and how to put mail there."""

    name: str
    port: int
    user: str
    password: str
    deliver: Callable[[bytes], None]  # into the user's INBOX (blocking; call via to_thread)
    deliver_to: Callable[[bytes, str], None]
    create: Callable[[str], None]
    recreate: Callable[[str], None]

    async def client(self, **options: Any) -> ImapClient:
        options.setdefault("command_timeout", 20)
        return await ImapClient.open(
            "127.0.0.1",
            self.port,
            security=Security.NONE,
            allow_plaintext=True,
            allow_plaintext_auth=True,
            auth=options.pop("auth", None) or PasswordAuth(self.user, Secret(self.password)),
            **options,
        )


@pytest.fixture(scope="session")
def imapsim() -> Iterator[SimThread]:
    with sim_thread() as sim:
        yield sim


@pytest.fixture(params=SERVERS)
def mail_server(request: pytest.FixtureRequest) -> MailServer:
    if request.param == "dovecot":
        dovecot: Dovecot = request.getfixturevalue("dovecot")
        user, password = dovecot.dyn_user(f"s{uuid.uuid4().hex[:10]}")

        def recreate(folder: str) -> None:
            dovecot.doveadm("mailbox", "delete", "-u", user, folder)
            dovecot.doveadm("mailbox", "create", "-u", user, folder)

        return MailServer(
            "dovecot",
            dovecot.imap_port,
            user,
            password,
            deliver=lambda raw: dovecot.deliver(user, raw),
            deliver_to=lambda raw, folder: dovecot.deliver(user, raw, folder),
            create=lambda folder: None if dovecot.doveadm("mailbox", "create", "-u", user, folder) else None,
            recreate=recreate,
        )
    sim: SimThread = request.getfixturevalue("imapsim")
    user = f"s{uuid.uuid4().hex[:10]}@sim.example.test"
    return MailServer(
        "imapsim",
        sim.port,
        user,
        "any password",
        deliver=lambda raw: sim.deliver(user, raw),
        deliver_to=lambda raw, folder: sim.deliver(user, raw, folder),
        create=lambda folder: sim.create(user, folder),
        recreate=lambda folder: sim.recreate(user, folder),
    )


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"allowed_hosts": ["127.0.0.1"]})


@pytest.fixture
async def harness(mail_server: MailServer, services: Services) -> AsyncIterator[Harness]:
    """The connector contract's harness (tests/connectors/conftest.py) over either server."""
    await asyncio.to_thread(mail_server.create, SCOPE)
    mailbox = await _mailbox(services, "imap", mail_server.user, mail_server.password, mail_server.port)

    async def deliver(raw: bytes) -> None:
        await asyncio.to_thread(mail_server.deliver_to, raw, SCOPE)

    async def new_epoch() -> None:
        await asyncio.to_thread(mail_server.recreate, SCOPE)

    made = Harness(
        f"imap-{mail_server.name}",
        registry.create(mailbox, registry.ConnectorContext()),
        mailbox,
        deliver,
        new_epoch,
    )
    await made.connector.connect()
    try:
        yield made
    finally:
        await made.connector.disconnect()
