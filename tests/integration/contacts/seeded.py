"""A tenant's contact book filled the way harvesting fills it: real header blocks, harvested by
:func:`mailport.contacts.harvest` and written through the one write path
(:func:`mailport.contacts.store.record`), for the CLI and web page tests.

The mail of :func:`sample_blocks`, seen by ``desk@hotel.example``:

- Jörg Müller (RFC 2047 name, two case variants of his address) wrote twice and was answered
  once: two-way, the top of the list;
- Ann Smith at ``partner.example`` wrote once, copied on Jörg's mail;
- an attacker named ``<script>alert(1)</script>`` wrote once (the pages must escape it);
- a no-reply sender and a mailing list, left out with their reasons, and Jörg's one bulk
  message (left out: ``bulk``, shown in his history).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from mailport.bootstrap import Services
from mailport.contacts import Identity, harvest
from mailport.contacts.harvest import message_digest
from mailport.contacts.models import Book
from mailport.contacts.store import HarvestedMessage, load, record
from mailport.crypto import Secret
from mailport.mailboxes.models import AuthMethod, NewMailbox, Security, ServerSettings

DESK = "desk@hotel.example"
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=10)
XSS_NAME = "<script>alert(1)</script>"


def block(number: int, headers: str) -> bytes:
    return f"{headers}Message-ID: <seed{number}@mail.example>\r\nSubject: s{number}\r\n\r\n".encode()


def sample_blocks(me: str = DESK) -> list[tuple[bytes, datetime]]:
    """(header block, when) in the order they arrived."""
    return [
        (block(1, f"From: =?utf-8?q?J=C3=B6rg_M=C3=BCller?= <Joerg@Example.de>\r\nTo: {me}\r\n"
                  "Cc: Ann Smith <ann@partner.example>\r\n"), T0),
        (block(2, f"From: Desk <{me}>\r\nTo: \"Jörg M.\" <joerg@example.de>\r\n"), T0 + timedelta(days=1)),
        (block(3, f"From: =?utf-8?q?J=C3=B6rg_M=C3=BCller?= <JOERG@example.de>\r\nTo: {me}\r\n"),
         T0 + timedelta(days=2)),
        (block(4, f"From: Ann Smith <ann@partner.example>\r\nTo: {me}\r\n"), T0 + timedelta(days=3)),
        (block(5, f'From: "{XSS_NAME}" <mallory@evil.example>\r\nTo: {me}\r\n'), T0 + timedelta(days=4)),
        (block(6, f"From: Shop <noreply@shop.example>\r\nTo: {me}\r\n"), T0 + timedelta(days=5)),
        (block(7, f"From: Bob <bob@lists.example>\r\nTo: {me}\r\nList-Id: <news.lists.example>\r\n"),
         T0 + timedelta(days=6)),
        (block(8, f"From: Joerg <joerg@example.de>\r\nTo: {me}\r\nPrecedence: bulk\r\n"),
         T0 + timedelta(days=6)),
    ]  # fmt: skip


@dataclass(frozen=True)
class Seeded:
    tenant_id: str
    mailbox_id: str
    owner: str | None
    ids: dict[str, str]  # primary email -> contact id


async def add_mailbox(
    services: Services, tenant_id: str, *, email: str = DESK, owner: str | None = None
) -> str:
    mailbox = await services.mailboxes.create(
        tenant_id,
        NewMailbox(
            email=email,
            auth_method=AuthMethod.PASSWORD,
            password=Secret("pw"),
            imap=ServerSettings("imap.hotel.example", 993, Security.SSL),
            owner=owner,
        ),
    )
    return mailbox.id


async def seed(
    services: Services,
    tenant_id: str,
    *,
    owner: str | None = None,
    email: str = DESK,
    blocks: list[tuple[bytes, datetime]] | None = None,
) -> Seeded:
    """A mailbox of ``tenant_id`` (with ``owner``) whose mail was harvested into its book."""
    mailbox_id = await add_mailbox(services, tenant_id, email=email, owner=owner)
    identity = Identity.of([email])
    messages = [
        HarvestedMessage(message_digest(raw), harvest(raw, None, at, identity=identity, fold=True))
        for raw, at in (blocks if blocks is not None else sample_blocks(email))
    ]
    async with services.database.transaction() as conn:
        done = await record(conn, Book.of(tenant_id, owner), mailbox_id, messages, now=T0 + timedelta(days=7))
    async with services.database.connect() as conn:
        ids = {c.email: c.id for c in await load(conn, done.created)}
    return Seeded(tenant_id, mailbox_id, owner, ids)
