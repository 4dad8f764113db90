"""The bed of the mailbox-access contract tests: one connected connector over a fresh remote
mailbox, and a second way into that mailbox ("another client") that puts mail in folders and
reads flags back without going through the connector under test.

Beds: ``imap`` (the standard Dovecot: prefix "" and separator "/"), ``imap-dotted`` (the second
Dovecot: ``INBOX.`` and "."), and ``fake`` (the in-memory connector). Folder paths in tests are
written with :meth:`MailBed.path` so that the same test runs on every layout.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from mailport.connectors import registry
from mailport.connectors.base import Connector, MessageRef
from mailport.connectors.imap_mail import neutral_flags
from mailport.crypto import Secret
from mailport.imap import ImapClient
from mailport.mailboxes.models import (
    AuthMethod,
    Health,
    Mailbox,
    ProcessingSettings,
    Security,
    ServerSettings,
)
from tests.connectors.fake import FakeMail, FakeServer
from tests.mailstack.dovecot import Dovecot

BEDS = ["imap", "imap-dotted", "fake"]


@dataclass
class MailBed:
    name: str
    connector: Connector
    prefix: str  # of the personal namespace
    delimiter: str
    other: ImapClient | None = None  # IMAP beds: a second session of the same user
    remote: FakeMail | None = None  # the fake bed's remote mailbox
    dovecot: Dovecot | None = None
    user: str = ""
    _made: set[str] = field(default_factory=set)

    def path(self, *levels: str) -> str:
        """A folder path in this bed's layout: ``path("Work", "2024")`` -> ``INBOX.Work.2024``."""
        return self.prefix + self.delimiter.join(levels) if levels != ("INBOX",) else "INBOX"

    async def make_folder(self, path: str) -> None:
        if self.other is not None:
            await self.other.create(path)
        else:
            assert self.remote is not None
            self.remote.folders.add(path)

    async def put(
        self, folder: str, raw: bytes, *, flags: Sequence[str] = (), at: datetime | None = None
    ) -> None:
        """Deliver ``raw`` to ``folder`` from outside (IMAP flags: ``\\Seen`` …)."""
        if self.other is not None:
            await self.other.append(folder, raw, flags=flags, internaldate=at)
        else:
            assert self.remote is not None
            self.remote.put(folder, raw, flags=neutral_flags(flags), at=at)

    async def flags_elsewhere(self, ref: MessageRef) -> set[str] | None:
        """The message's neutral flags as another client sees them; None when it is gone."""
        if self.other is not None:
            await self.other.examine(ref.scope)
            found = await self.other.fetch([int(ref.item)], ("UID", "FLAGS"))
            return set(neutral_flags(found[0].flags or ())) if found else None
        assert self.remote is not None
        message = self.remote.find(ref)
        return None if message is None else set(message.flags)

    async def uids_elsewhere(self, folder: str) -> int:
        """How many messages ``folder`` holds, as another client counts them."""
        if self.other is not None:
            return (await self.other.status(folder, ["MESSAGES"]))["MESSAGES"]
        assert self.remote is not None
        return len(self.remote.messages(folder))


def make_mailbox(connector: str, user: str, password: str, port: int) -> Mailbox:
    """A mailbox as the store would give it (the connector tests need no database)."""
    now = datetime.now(UTC)
    return Mailbox(
        id=f"mbx_{uuid.uuid4().hex[:12]}",
        tenant_id="tnt_contract",
        email=user,
        auth_method=AuthMethod.PASSWORD,
        imap=ServerSettings("127.0.0.1", port, Security.NONE),
        smtp=None,
        label=None,
        purpose=None,
        provider_id=None,
        password=Secret(password),
        oauth=None,
        token_version=0,
        settings=ProcessingSettings(),
        health=Health(),
        created_at=now,
        updated_at=now,
        connector=connector,
    )


async def make_bed(name: str, request: pytest.FixtureRequest) -> AsyncIterator[MailBed]:
    if name == "fake":
        server: FakeServer = request.getfixturevalue("fake_connector")
        mailbox = make_mailbox("fake", f"f{uuid.uuid4().hex[:8]}@example.test", "pw", 993)
        remote = server[mailbox.email]
        bed = MailBed(name, registry.create(mailbox, registry.ConnectorContext()), "", "/", remote=remote)
    else:
        dovecot: Dovecot = request.getfixturevalue("dovecot_dotted" if name == "imap-dotted" else "dovecot")
        user, password = dovecot.dyn_user(f"m{uuid.uuid4().hex[:10]}")
        mailbox = make_mailbox("imap", user, password, dovecot.imap_port)
        other = await dovecot.client(user, password)
        prefix, delimiter = ("INBOX.", ".") if name == "imap-dotted" else ("", "/")
        bed = MailBed(
            name,
            registry.create(mailbox, registry.ConnectorContext()),
            prefix,
            delimiter,
            other=other,
            dovecot=dovecot,
            user=user,
        )
    await bed.connector.connect()
    try:
        yield bed
    finally:
        await asyncio.wait_for(bed.connector.disconnect(), 5)
        if bed.other is not None:
            await bed.other.logout()
