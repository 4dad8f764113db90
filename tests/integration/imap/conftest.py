"""Helpers for the IMAP client's integration tests (the bed's fixtures come from tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from email.message import EmailMessage
from typing import Any

import pytest

from mailport.crypto import Secret
from mailport.imap import ImapClient, PasswordAuth
from tests.mailstack.dovecot import Dovecot


def make_message(subject: str, body: str = "hello", to: str = "x@example.test") -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "sender@example.test", to, subject
    msg["Message-ID"] = f"<{subject.replace(' ', '.')}@example.test>"
    msg.set_content(body)
    return msg.as_bytes().replace(b"\n", b"\r\n")


@pytest.fixture
def connect(dovecot: Dovecot, password_user: tuple[str, str]) -> Callable[..., Any]:
    """``await connect(**options)`` -> a logged-in client over implicit TLS as ``password_user``."""
    clients: list[ImapClient] = []

    async def _connect(**options: Any) -> ImapClient:
        user, password = password_user
        options.setdefault("ca_file", dovecot.ca_file)
        options.setdefault("command_timeout", 20)
        client = await ImapClient.open(
            "127.0.0.1", dovecot.imaps_port, auth=PasswordAuth(user, Secret(password)), **options
        )
        clients.append(client)
        return client

    yield _connect
    for client in clients:
        client.close()


@pytest.fixture
async def imap(connect: Callable[..., Any]) -> AsyncIterator[ImapClient]:
    client: ImapClient = await connect()
    yield client
    await client.logout()
