"""Harvesting end to end over the two API connectors, against the local fakes (every exchange
checked against Google's discovery document and Graph's description at the session's end): a
``gmail_api`` and a ``graph`` mailbox get a small crafted corpus (mail from people, a no-reply
sender, a list post, mail in a folder of the user's own, sent mail with Cc and Bcc, and mail in
Junk, Trash and Drafts), harvesting is switched on through the mailbox service and one run gives
exactly the expected contacts and exclusions; new mail is then counted by a second run, and
nothing twice. Graph keeps no internet headers on Sent Items copies, so there the Bcc comes from
``bccRecipients``. On SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from mailport.bootstrap import Services, build
from mailport.config import Settings
from mailport.contacts import schedule
from mailport.contacts.models import StoredContact
from mailport.contacts.store import load
from mailport.mailboxes.models import Mailbox
from mailport.mailboxes.schemas import ContactsPatch, MailboxUpdate, SettingsPatch
from mailport.store.tables import contact_exclusions, contacts
from tests.fakes.gmail import GmailFake
from tests.fakes.graph import GraphFake
from tests.fixtures.gmail import configure_gmail, connect_gmail_mailbox
from tests.fixtures.graph import connect_graph_mailbox, use_graph
from tests.mailstack.idp import MockIdP

NOW = datetime.now(UTC).replace(microsecond=0)

# What each side calls its folders: the harvested ones and the ones never read.
INBOX, SENT, OWN = "inbox", "sent", "own"
JUNK, TRASH, DRAFTS = "junk", "trash", "drafts"


@dataclass
class Box:
    """A connected API mailbox and a way to file mail into it as the provider would."""

    kind: str
    services: Services
    mailbox: Mailbox
    file: Callable[[str, bytes, datetime], None]  # (where, raw, received at)
    harvested: dict[str, int]  # the folders a run reads (their paths) and the blocks read in each
    skipped: frozenset[str]  # the folders a run must never read
    paths: dict[str, str]  # the corpus's places as folder paths (settings.contacts.folders)

    @property
    def me(self) -> str:
        return self.mailbox.email


def mail(
    sender: str,
    to: str,
    *,
    cc: str = "",
    bcc: str = "",
    extra: str = "",
    when: datetime = NOW,
    message_id: str | None = None,
) -> bytes:
    lines = [f"From: {sender}", f"To: {to}"]
    lines += [f"Cc: {cc}"] if cc else []
    lines += [f"Bcc: {bcc}"] if bcc else []
    lines += [
        f"Subject: s-{uuid.uuid4().hex[:6]}",
        f"Date: {format_datetime(when)}",
        f"Message-ID: <{message_id or uuid.uuid4().hex}@example.test>",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
    ]
    lines += [extra] if extra else []
    return ("\r\n".join(lines) + "\r\n\r\nhello\r\n").encode()


async def _gmail_box(request: pytest.FixtureRequest, settings: Settings) -> Box:
    idp: MockIdP = request.getfixturevalue("idp")
    fake: GmailFake = request.getfixturevalue("gmail_fake")
    providers: Path = request.getfixturevalue("gmail_providers_file")
    services = await build(configure_gmail(settings, providers), migrate=True)
    mailbox, account = await connect_gmail_mailbox(services, idp, fake)
    label = account.create_label("Clients")
    labels = {
        INBOX: ("INBOX", "CATEGORY_PERSONAL", "IMPORTANT"),
        SENT: ("SENT",),
        OWN: (label,),  # archived: only the user's label
        JUNK: ("SPAM",),
        TRASH: ("TRASH",),
        DRAFTS: ("DRAFT",),
    }

    def file(where: str, raw: bytes, at: datetime) -> None:
        account.add_message(raw, labels[where], internal_date=at)

    return Box(
        "gmail_api",
        services,
        mailbox,
        file,
        # All Mail in one listing (spam, trash and drafts left out), not label by label: the inbox's
        # mail is also in IMPORTANT and a category, and would be fetched once for each; and Sent
        {"[Gmail]/All Mail": 6, "SENT": 1},
        frozenset({"SPAM", "TRASH", "DRAFT", "STARRED"}),
        {INBOX: "INBOX", SENT: "SENT", OWN: "Clients", JUNK: "SPAM"},
    )


async def _graph_box(request: pytest.FixtureRequest, settings: Settings) -> Box:
    idp: MockIdP = request.getfixturevalue("idp")
    fake: GraphFake = request.getfixturevalue("graph")
    providers: Path = request.getfixturevalue("graph_providers_file")
    services = await build(use_graph(settings, providers), migrate=True)
    made = await connect_graph_mailbox(services, fake, idp)
    account = made.account
    account.create_folder("Clients", "inbox")  # a folder of the user's own, under the inbox
    places = {
        INBOX: "inbox",
        SENT: "sentitems",
        OWN: "Inbox/Clients",
        JUNK: "junkemail",
        TRASH: "deleteditems",
        DRAFTS: "drafts",
    }

    def file(where: str, raw: bytes, at: datetime) -> None:
        # the Sent Items copy of mail written in Outlook has no internet headers
        account.add(raw, places[where], received=at, sent_copy=where == SENT, is_draft=where == DRAFTS)

    return Box(
        "graph",
        services,
        made.mailbox,
        file,
        # every folder but Junk Email, Deleted Items and Drafts; Outbox has no role mailport knows
        # (Graph's wellKnownName ``outbox``), so it is read too: it is empty but for mail in transit
        {"INBOX": 4, "INBOX/Clients": 1, "Archive": 0, "Outbox": 0, "Sent Items": 1},
        frozenset({"Junk Email", "Deleted Items", "Drafts"}),
        {INBOX: "INBOX", SENT: "Sent Items", OWN: "INBOX/Clients", JUNK: "Junk Email"},
    )


@pytest.fixture(params=["gmail_api", "graph"])
async def box(request: pytest.FixtureRequest, settings: Settings) -> AsyncIterator[Box]:
    make = _gmail_box if request.param == "gmail_api" else _graph_box
    made = await make(request, settings)
    try:
        yield made
    finally:
        await made.services.aclose()


def fill(box: Box) -> None:
    """The corpus: a month of mail."""
    me = box.me
    day = timedelta(days=1)
    box.file(
        INBOX, mail("Alice Martin <alice@example.org>", me, cc="Bob Stone <bob@example.net>"), NOW - 30 * day
    )
    box.file(INBOX, mail('"Alice Martin" <Alice@Example.ORG>', f"Me <{me}>"), NOW - 20 * day)
    box.file(INBOX, mail("Shop <no-reply@shop.example>", me), NOW - 19 * day)
    list_post = "List-Id: Developers <dev.lists.example>\r\nPrecedence: list"
    box.file(
        INBOX, mail("Carol Lee <carol@lists.example>", "dev@lists.example", extra=list_post), NOW - 18 * day
    )
    box.file(OWN, mail("=?utf-8?q?Dora_D=C3=ADaz?= <dora@example.com>", me), NOW - 15 * day)
    sent = mail(
        f"Me <{me}>",
        "Alice Martin <alice@example.org>",
        cc="erin@example.com",
        bcc="Frank Ott <frank@example.com>",
    )
    box.file(SENT, sent, NOW - 10 * day)
    box.file(JUNK, mail("Spammer <spam@bad.example>", me), NOW - 5 * day)
    box.file(TRASH, mail("Old Friend <old@gone.example>", me), NOW - 5 * day)
    box.file(DRAFTS, mail(f"Me <{me}>", "Draft Person <draft@example.com>"), NOW - 5 * day)


EXPECTED = {  # key: (name, sent_to, received_from, copied)
    "alice@example.org": ("Alice Martin", 1, 2, 0),
    "bob@example.net": ("Bob Stone", 0, 0, 1),
    "dora@example.com": ("Dora Díaz", 0, 1, 0),
    "erin@example.com": (None, 1, 0, 0),
    "frank@example.com": ("Frank Ott", 1, 0, 0),
}


async def switch_on(box: Box, **fields: object) -> Mailbox:
    update = MailboxUpdate(settings=SettingsPatch(contacts=ContactsPatch.model_validate(fields)))
    return await box.services.mailboxes.update(box.mailbox.tenant_id, box.mailbox.id, update)


async def book(box: Box) -> dict[str, tuple[str | None, int, int, int]]:
    async with box.services.database.connect() as conn:
        ids = (
            await conn.execute(select(contacts.c.id).where(contacts.c.tenant_id == box.mailbox.tenant_id))
        ).scalars()
        found: list[StoredContact] = await load(conn, list(ids))
    assert all(len(c.keys) == 1 for c in found)
    return {c.keys[0]: (c.name, c.sent_to, c.received_from, c.copied) for c in found}


async def exclusions(box: Box) -> dict[str, dict[str, int]]:
    async with box.services.database.connect() as conn:
        rows = await conn.execute(
            select(
                contact_exclusions.c.key, contact_exclusions.c.reason, contact_exclusions.c.messages
            ).where(contact_exclusions.c.mailbox_id == box.mailbox.id)
        )
        out: dict[str, dict[str, int]] = {}
        for row in rows:
            out.setdefault(row.key, {})[row.reason] = row.messages
    return out


async def test_a_run_harvests_exactly_the_corpus_and_a_second_counts_only_new_mail(box: Box) -> None:
    fill(box)
    mailbox = await switch_on(box)
    assert mailbox.settings.contacts is not None and mailbox.settings.contacts.folders is None

    report = await box.services.contact_sync.run(box.mailbox.id)

    assert await book(box) == EXPECTED
    me = box.me.lower()
    assert await exclusions(box) == {
        me: {"own_address": 4},  # the To of the received mail from people
        "no-reply@shop.example": {"no_reply": 1},
        "carol@lists.example": {"mailing_list": 1},
        "dev@lists.example": {"mailing_list": 1},
    }
    # the folders read: the inbox, sent mail and the user's own, never junk, trash or drafts
    assert report.folders == box.harvested
    assert not box.skipped & set(report.folders)
    assert (report.messages, report.created) == (6, 5)
    async with box.services.database.connect() as conn:
        state = await schedule.get(conn, box.mailbox.id)
    assert state is not None and state.state == schedule.IDLE and state.last_error is None
    assert state.messages == 6

    # new mail: a reply from Alice and one more sent to her; a second run counts only these
    later = datetime.now(UTC)
    box.file(INBOX, mail("Alice Martin <alice@example.org>", box.me), later)
    box.file(SENT, mail(box.me, "alice@example.org, Zed New <zed@new.example>"), later)
    again = await box.services.contact_sync.run(box.mailbox.id)

    assert again.messages == 2 and again.created == 1
    expected = dict(EXPECTED)
    expected["alice@example.org"] = ("Alice Martin", 2, 3, 0)
    expected["zed@new.example"] = ("Zed New", 1, 0, 0)
    assert await book(box) == expected
    # a full re-sync reads everything again and counts nothing twice
    full = await box.services.contact_sync.run(box.mailbox.id, full=True)
    assert full.messages == 0 and full.read >= 8
    assert await book(box) == expected


async def test_the_folders_chosen_in_the_settings_are_read_and_no_others(box: Box) -> None:
    fill(box)
    folders = [box.paths[OWN], box.paths[SENT], box.paths[JUNK]]  # junk too, when the user says so
    await switch_on(box, folders=folders, policy="sent_only")

    report = await box.services.contact_sync.run(box.mailbox.id)

    assert set(report.folders) == set(folders)
    # sent_only: the people written to; Dora (own folder) and the spammer (junk) wrote, so no
    assert {key: figures[1] for key, figures in (await book(box)).items()} == {
        "alice@example.org": 1,
        "erin@example.com": 1,
        "frank@example.com": 1,
    }
    assert report.messages == 1
