"""The outbox tests' bed: a tenant's mailbox on the real Dovecot whose SMTP server is the
aiosmtpd submission bed (``tests/mailstack/smtp.py``), and direct reads of the queue's rows.

Import the fixtures into a test module by name (``from … import outbox_settings, box``)."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from mailport.bootstrap import Services
from mailport.config import Settings
from mailport.crypto import Secret
from mailport.mailboxes.models import AuthMethod, NewMailbox, ProcessingSettings, Security, ServerSettings
from mailport.sending.models import SendingSettings
from mailport.store.tables import outbound_messages
from tests.fixtures.api import TenantHandle, create_tenant
from tests.mailstack.dovecot import Dovecot
from tests.mailstack.smtp import SubmissionServer


@pytest.fixture
def settings(settings: Settings, dovecot: Dovecot) -> Settings:
    """Loopback servers allowed; the bed's CA trusted (its SMTP listener's certificate)."""
    return settings.model_copy(update={"allowed_hosts": ["127.0.0.1"], "mail_ca_file": Path(dovecot.ca_file)})


@dataclass
class Box:
    services: Services
    tenant_id: str
    mailbox_id: str
    email: str
    password: str
    dovecot: Dovecot

    def deliver(self, raw: bytes, folder: str = "INBOX") -> None:
        self.dovecot.deliver(self.email, raw, folder)


async def make_box(
    services: Services,
    dovecot: Dovecot,
    smtp_port: int | None,
    *,
    tenant_id: str | None = None,
    from_name: str | None = "Support Desk",
    sending: SendingSettings = SendingSettings(),
    imap_port: int | None = None,
    provider_id: str | None = None,
) -> Box:
    """A fresh Dovecot user as a mailbox (IMAP, and SMTP on ``smtp_port`` unless None)."""
    if tenant_id is None:
        tenant_id = (await create_tenant(services)).id
    user, password = dovecot.dyn_user(f"s{uuid.uuid4().hex[:10]}")
    mailbox = await services.mailboxes.create(
        tenant_id,
        NewMailbox(
            email=user,
            auth_method=AuthMethod.PASSWORD,
            imap=ServerSettings("127.0.0.1", imap_port or dovecot.imap_port, Security.NONE),
            smtp=None if smtp_port is None else ServerSettings("127.0.0.1", smtp_port, Security.STARTTLS),
            password=Secret(password),
            settings=ProcessingSettings(from_name=from_name, sending=sending),
            provider_id=provider_id,
        ),
    )
    return Box(services, tenant_id, mailbox.id, user, password, dovecot)


@pytest.fixture
async def box(services: Services, tenant: TenantHandle, dovecot: Dovecot, smtp: SubmissionServer) -> Box:
    return await make_box(services, dovecot, smtp.port, tenant_id=tenant.id)


async def row(services: Services, send_id: str) -> Any:
    """The whole row, bytes included."""
    async with services.database.connect() as conn:
        return (await conn.execute(select(outbound_messages).where(outbound_messages.c.id == send_id))).one()


async def count_rows(services: Services, mailbox_id: str) -> int:
    async with services.database.connect() as conn:
        result = await conn.execute(
            select(outbound_messages.c.id).where(outbound_messages.c.mailbox_id == mailbox_id)
        )
        return len(result.all())


def letter(subject: str, *, sender: str = "Ann <ann@example.test>", to: str = "box@example.test") -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@example.test>"
    msg.set_content("the original text\n")
    msg.add_attachment(b"PDFDATA", maintype="application", subtype="pdf", filename="invoice.pdf")
    return msg.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


class Gate:
    """A TCP relay in front of a server. While ``hold`` is set, a connection is accepted and
    left silent (no greeting: a client waits before MAIL FROM, as against a hung server);
    otherwise bytes are relayed both ways."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.hold = True
        self.held: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None
        self._relays: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def __aenter__(self) -> Gate:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self.held:
            writer.close()
        for task in self._relays:
            task.cancel()
        await asyncio.gather(*self._relays, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.hold:
            self.held.append(writer)
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(_pipe(source, sink))
            self._relays.add(task)
            task.add_done_callback(self._relays.discard)


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        sink.close()


def worker_environment(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of a ``mailport worker`` subprocess on the test's database and bed."""
    from tests.fixtures.process import clean_environment

    env = clean_environment()
    env.update(
        {
            "MAILPORT_DATABASE_URL": settings.effective_database_url,
            "MAILPORT_DATA_DIR": str(settings.data_dir),
            "MAILPORT_ALLOWED_HOSTS": "127.0.0.1",
            "MAILPORT_MAIL_CA_FILE": str(settings.mail_ca_file),
            "MAILPORT_LOG_LEVEL": "INFO",
            **extra,
        }
    )
    if settings.secret_keys is not None:
        env["MAILPORT_SECRET_KEYS"] = settings.secret_keys.get_secret_value()
    return env
