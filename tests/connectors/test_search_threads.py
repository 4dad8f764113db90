"""Contract: search and threads on every bed (Dovecot standard and ``INBOX.``-dotted, the fake):
non-ASCII criteria (umlauts and CJK in subjects and senders), pages that stay stable while mail
arrives, and a conversation gathered across the inbox and Sent (our replies APPENDed there) with
a reply that references only a mid-thread message. On Dovecot also every IMAP criterion, exact
dates and attachments, ``native`` ANDed with the rest and refused when the server refuses it,
and the cost of a thread in a 10,000-message inbox."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import pytest

from mailport.connectors.imap import ImapConnector
from mailport.connectors.mail import SearchQuery
from mailport.errors import InputError
from tests.connectors.mailbed import MailBed, make_mailbox
from tests.mailstack.dovecot import Dovecot
from tests.mailstack.fill import fill_maildir

T0 = datetime(2025, 6, 2, 9, 0, tzinfo=UTC)
IMAP_BEDS = pytest.mark.parametrize("bed", ["imap", "imap-dotted"], indirect=True)


def mail(
    subject: str,
    message_id: str,
    *,
    sender: str = "Bob <bob@example.test>",
    to: str = "box@example.test",
    parent: str | None = None,
    references: tuple[str, ...] = (),
    at: datetime = T0,
    attachment: bool = False,
    headers: dict[str, str] | None = None,
) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg["Message-ID"] = message_id
    msg["Date"] = at.strftime("%a, %d %b %Y %H:%M:%S +0000")
    if parent:
        msg["In-Reply-To"] = parent
    if references:
        msg["References"] = " ".join(references)
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(f"Text of {subject}.\n")
    if attachment:
        msg.add_attachment(b"%PDF-1.4 x" * 200, maintype="application", subtype="pdf", filename="a.pdf")
    return msg.as_bytes().replace(b"\n", b"\r\n")


def ids(page: object) -> list[str | None]:
    return [s.envelope.message_id for s in page.items]  # type: ignore[attr-defined]


async def test_non_ascii_criteria_find_umlauts_and_cjk(bed: MailBed) -> None:
    await bed.put("INBOX", mail("Grüße aus Köln", "<de@x.test>", sender="Jörg Müller <joerg@x.test>"))
    await bed.put("INBOX", mail("東京の会議について", "<jp@x.test>", sender="山田太郎 <yamada@x.test>"))
    await bed.put("INBOX", mail("plain hello", "<en@x.test>"))
    search = bed.connector.search_messages
    assert ids(await search(SearchQuery(subject="grüße"))) == ["de@x.test"]
    assert ids(await search(SearchQuery(from_="Müller"))) == ["de@x.test"]
    assert ids(await search(SearchQuery(subject="東京"))) == ["jp@x.test"]
    assert ids(await search(SearchQuery(from_="山田", subject="会議"))) == ["jp@x.test"]
    assert ids(await search(SearchQuery(from_="山田", subject="Köln"))) == []
    assert ids(await search(SearchQuery(subject="hello"))) == ["en@x.test"]


async def test_result_pages_stay_stable_while_mail_arrives(bed: MailBed) -> None:
    folder = bed.path("Reports")
    await bed.make_folder(folder)
    for n in range(5):
        await bed.put(folder, mail(f"report {n}", f"<r{n}@x.test>"))
        await bed.put(folder, mail(f"other {n}", f"<o{n}@x.test>"))
    query = SearchQuery(folder=folder, subject="report", limit=2)
    first = await bed.connector.search_messages(query)
    assert ids(first) == ["r4@x.test", "r3@x.test"] and first.next_cursor
    await bed.put(folder, mail("report new", "<rnew@x.test>"))  # arrives between two pages
    second = await bed.connector.search_messages(
        SearchQuery(folder=folder, subject="report", limit=2, cursor=first.next_cursor)
    )
    assert ids(second) == ["r2@x.test", "r1@x.test"] and second.next_cursor
    third = await bed.connector.search_messages(
        SearchQuery(folder=folder, subject="report", limit=2, cursor=second.next_cursor)
    )
    assert ids(third) == ["r0@x.test"] and third.next_cursor is None
    fresh = await bed.connector.search_messages(SearchQuery(folder=folder, subject="report", limit=1))
    assert ids(fresh) == ["rnew@x.test"]


ROOT = "<root@shop.test>"


async def conversation(bed: MailBed) -> None:
    """A root and replies in the inbox, our replies in Sent, a reply that references only our
    mid-thread message, and an unrelated message with the same subject."""
    sent = bed.path("Sent")
    await bed.put("INBOX", mail("Angebot", ROOT, sender="Shop <shop@shop.test>", at=T0), at=T0)
    await bed.put(
        sent,
        mail(
            "Re: Angebot",
            "<a1@box.test>",
            sender="box@example.test",
            parent=ROOT,
            references=(ROOT,),
            at=T0 + timedelta(hours=1),
        ),
        at=T0 + timedelta(hours=1),
    )
    await bed.put(
        "INBOX",
        mail(
            "Re: Angebot",
            "<s2@shop.test>",
            sender="Shop <shop@shop.test>",
            parent="<a1@box.test>",
            references=(ROOT, "<a1@box.test>"),
            at=T0 + timedelta(hours=2),
        ),
        at=T0 + timedelta(hours=2),
    )
    await bed.put(
        sent,
        mail(
            "Re: Angebot",
            "<a3@box.test>",
            sender="box@example.test",
            parent="<s2@shop.test>",
            references=(ROOT, "<a1@box.test>", "<s2@shop.test>"),
            at=T0 + timedelta(hours=3),
        ),
        at=T0 + timedelta(hours=3),
    )
    # a client that kept only In-Reply-To, to our first reply
    await bed.put(
        "INBOX",
        mail(
            "Re: Angebot",
            "<s4@shop.test>",
            sender="Anna <anna@shop.test>",
            parent="<a1@box.test>",
            at=T0 + timedelta(hours=4),
        ),
        at=T0 + timedelta(hours=4),
    )
    await bed.put(
        "INBOX",
        mail("Re: Angebot", "<spam@else.test>", at=T0 + timedelta(hours=5)),
        at=T0 + timedelta(hours=5),
    )
    await bed.put("INBOX", mail("Other", "<other@else.test>", at=T0), at=T0)


async def test_a_thread_across_inbox_and_sent_oldest_first(bed: MailBed) -> None:
    await conversation(bed)
    thread = await bed.connector.thread_messages("root@shop.test")
    assert [(s.folder, s.envelope.message_id) for s in thread] == [
        ("INBOX", "root@shop.test"),
        (bed.path("Sent"), "a1@box.test"),
        ("INBOX", "s2@shop.test"),
        (bed.path("Sent"), "a3@box.test"),
        ("INBOX", "s4@shop.test"),
    ]
    assert thread[0].thread_root == "root@shop.test"
    assert thread[-1].thread_root == "a1@box.test"  # its own key differs; the conversation holds it
    assert await bed.connector.thread_messages("nobody@nowhere.test") == []


@IMAP_BEDS
async def test_every_imap_criterion(bed: MailBed) -> None:
    await bed.put("INBOX", mail("seen one", "<1@x.test>", headers={"X-Ticket": "T-42"}), flags=["\\Seen"])
    await bed.put(
        "INBOX", mail("flagged", "<2@x.test>", to="carol@x.test"), flags=["\\Flagged", "\\Answered"]
    )
    await bed.put("INBOX", mail("big", "<3@x.test>", attachment=True))
    search = bed.connector.search_messages

    async def found(**criteria: object) -> list[str | None]:
        return ids(await search(SearchQuery(**criteria)))  # type: ignore[arg-type]

    assert await found(seen=True) == ["1@x.test"]
    assert await found(seen=False) == ["3@x.test", "2@x.test"]
    assert await found(flagged=True) == ["2@x.test"]
    assert await found(answered=False, flagged=False) == ["3@x.test", "1@x.test"]
    assert await found(to="carol") == ["2@x.test"]
    assert await found(headers={"X-Ticket": "T-42"}) == ["1@x.test"]
    assert await found(message_id="<2@x.test>") == ["2@x.test"]
    assert await found(larger=1000) == ["3@x.test"]
    assert await found(smaller=1000) == ["2@x.test", "1@x.test"]
    assert await found(body="Text of big") == ["3@x.test"]
    assert await found(text="T-42") == ["1@x.test"]
    assert await found(has_attachment=True) == ["3@x.test"]
    assert await found(has_attachment=False, seen=False) == ["2@x.test"]
    assert await found(native="OR SUBJECT big SUBJECT flagged", seen=False) == ["3@x.test", "2@x.test"]
    assert await found(native='(SUBJECT "seen one")') == ["1@x.test"]
    with pytest.raises(InputError) as refused:
        await search(SearchQuery(native="NOSUCHKEY x"))
    assert refused.value.details["field"] == "native"


@IMAP_BEDS
async def test_dates_are_exact_instants(bed: MailBed) -> None:
    for hour in (0, 6, 12, 18, 30):
        at = T0 + timedelta(hours=hour)
        await bed.put("INBOX", mail(f"at {hour}", f"<h{hour}@x.test>", at=at), at=at)
    page = await bed.connector.search_messages(
        SearchQuery(since=T0 + timedelta(hours=6), before=T0 + timedelta(hours=18))
    )
    assert ids(page) == ["h12@x.test", "h6@x.test"]


@IMAP_BEDS
async def test_attachment_pages_fill_and_continue(bed: MailBed) -> None:
    for n in range(6):
        await bed.put("INBOX", mail(f"m{n}", f"<m{n}@x.test>", attachment=n % 2 == 0))
    first = await bed.connector.search_messages(SearchQuery(has_attachment=True, limit=2))
    assert ids(first) == ["m4@x.test", "m2@x.test"] and first.next_cursor
    second = await bed.connector.search_messages(
        SearchQuery(has_attachment=True, limit=2, cursor=first.next_cursor)
    )
    assert ids(second) == ["m0@x.test"] and second.next_cursor is None


async def test_a_thread_in_a_ten_thousand_message_inbox_costs_a_bounded_number_of_commands(
    dovecot: Dovecot,
) -> None:
    user, password = dovecot.dyn_user(f"t{uuid.uuid4().hex[:10]}")
    await asyncio.to_thread(fill_maildir, dovecot, user, 10_000)
    connector = ImapConnector(make_mailbox("imap", user, password, dovecot.imap_port))
    other = await dovecot.client(user, password)
    await connector.connect()
    try:
        await other.examine("INBOX")  # Dovecot indexes the maildir now, not in the timed call
        await conversation(MailBed("imap", connector, "", "/", other=other))
        client = connector._require()
        timings, commands = [], []
        for _ in range(2):  # Dovecot's header cache cold, then warm
            before = client._tag
            started = time.perf_counter()
            thread = await connector.thread_messages("root@shop.test")
            timings.append(time.perf_counter() - started)
            commands.append(client._tag - before)
            assert len(thread) == 5
    finally:
        await connector.disconnect()
        await other.logout()
    print(
        f"thread in a 10,000-message inbox: {timings[0] * 1000:.0f} ms cold, "
        f"{timings[1] * 1000:.0f} ms warm, {commands[0]} commands"
    )
    assert max(commands) <= 30
