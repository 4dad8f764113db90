"""A tenant's mailbox on the real Dovecot, filled with a few messages, for the library's handle,
the CLI and the web pages (``mail_box``); the second Dovecot (``INBOX.`` prefix, ``.``
separator) through ``layout``."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from email.message import EmailMessage

import pytest

from mailport.bootstrap import Services
from mailport.config import Settings
from mailport.crypto import Secret
from mailport.mailboxes.models import AuthMethod, NewMailbox, Security, ServerSettings
from tests.fixtures.api import TenantHandle
from tests.mailstack.dovecot import Dovecot


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"allowed_hosts": ["127.0.0.1"]})


def letter(
    subject: str,
    *,
    sender: str = "Sender <sender@example.test>",
    body: str = "hello",
    html: str | None = None,
    attachment: tuple[str, bytes] | None = None,
    reply_to: str | None = None,
) -> bytes:
    """A message as a mail client sends it (CRLF line ends)."""
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, "box@example.test", subject
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@example.test>"
    if reply_to:
        msg["In-Reply-To"] = msg["References"] = reply_to
    msg.set_content(body)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    if attachment is not None:
        name, data = attachment
        msg.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    return msg.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


@dataclass
class MailBox:
    """A tenant's mailbox on a Dovecot: ``deliver`` puts mail straight into a folder."""

    services: Services
    tenant: TenantHandle
    mailbox_id: str
    user: str
    password: str
    server: Dovecot

    @property
    def prefix(self) -> str:
        return self.server.namespace_prefix

    def deliver(self, raw: bytes, folder: str = "INBOX") -> None:
        self.server.deliver(self.user, raw, folder)


async def add_mailbox(services: Services, tenant_id: str, server: Dovecot, user: str, password: str) -> str:
    mailbox = await services.mailboxes.create(
        tenant_id,
        NewMailbox(
            email=user,
            auth_method=AuthMethod.PASSWORD,
            imap=ServerSettings("127.0.0.1", server.imap_port, Security.NONE),
            password=Secret(password),
        ),
    )
    return mailbox.id


async def new_box(services: Services, tenant: TenantHandle, server: Dovecot) -> MailBox:
    user, password = server.dyn_user(f"mail{uuid.uuid4().hex[:10]}")
    mailbox_id = await add_mailbox(services, tenant.id, server, user, password)
    return MailBox(services, tenant, mailbox_id, user, password, server)


@pytest.fixture
async def mail_box(services: Services, tenant: TenantHandle, dovecot: Dovecot) -> MailBox:
    """A fresh user on the standard bed, connected as a mailbox of ``tenant``."""
    return await new_box(services, tenant, dovecot)


@pytest.fixture(params=["standard", "dotted"])
async def any_box(services: Services, tenant: TenantHandle, request: pytest.FixtureRequest) -> MailBox:
    """The same on either bed: ``/`` and no prefix, or ``INBOX.`` and ``.``."""
    server: Dovecot = request.getfixturevalue("dovecot" if request.param == "standard" else "dovecot_dotted")
    return await new_box(services, tenant, server)
