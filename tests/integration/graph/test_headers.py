"""Header blocks for contact harvesting over Microsoft Graph, against the fake (requests and answers
checked against the msgraph-sdk description by the spec checks): a folder's mail since an instant,
oldest first (``$orderby=receivedDateTime asc``) across ``@odata.nextLink`` pages, the fields asked
for from ``internetMessageHeaders``, and for the Sent Items copies Graph keeps without them the
From/To/Cc/Bcc/Message-ID lines written from the structured fields; a missing folder a 404."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from email.message import EmailMessage

import pytest

from mailport.bootstrap import Services
from mailport.connectors.base import Connector
from mailport.connectors.graph.headers import block
from mailport.errors import FolderNotFoundError
from mailport.messages import headers as hdr
from tests.connectors.test_header_blocks import SINCE, collect, fields
from tests.fakes.graph import Account, GraphFake
from tests.fixtures.graph import MakeGraphMailbox

FIELDS = ("from", "to", "cc", "bcc", "reply-to", "message-id", "list-id")


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """This is about Graph, not storage: one database."""
    return sqlite_url


@pytest.fixture
async def graph_box(
    graph_services: Services, graph_mailbox: MakeGraphMailbox, graph: GraphFake
) -> AsyncIterator[tuple[Connector, Account]]:
    made = await graph_mailbox(graph_services)
    connector = graph_services.connector(made.mailbox)
    await connector.connect()
    try:
        yield connector, made.account
    finally:
        await connector.disconnect()


def mail(n: int, *, bcc: str | None = None, list_id: bool = False) -> bytes:
    msg = EmailMessage()
    msg["From"] = "=?utf-8?q?J=C3=B6rg_M=C3=BCller?= <joerg@example.test>"
    msg["To"] = f"Anna <anna{n}@example.test>"
    msg["Cc"] = "carla@example.test"
    if bcc:
        msg["Bcc"] = bcc
    if list_id:
        msg["List-Id"] = "<news.example.test>"
    msg["Subject"] = f"message {n}"
    msg["Message-ID"] = f"<m{n}@example.test>"
    msg.set_content("hello\n")
    return msg.as_bytes().replace(b"\n", b"\r\n")


async def test_a_folders_mail_since_the_instant_oldest_first_across_pages(
    graph_box: tuple[Connector, Account],
) -> None:
    connector, account = graph_box
    account.create_folder("Kunden Größe", "inbox")
    dates = [SINCE - timedelta(days=2), SINCE - timedelta(milliseconds=500), SINCE]
    dates += [SINCE + timedelta(hours=1)] + [SINCE + timedelta(days=n) for n in range(1, 4)]
    for n, at in reversed(list(enumerate(dates))):  # delivered newest first: the order is Graph's
        account.add(mail(n, list_id=n == 3), "Inbox/Kunden Größe", received=at)
    account.add(mail(99), "inbox", received=SINCE)  # another folder
    chunks = await collect(connector, "INBOX/Kunden Größe", fields=FIELDS, chunk=2)
    assert [len(c) for c in chunks] == [2, 2, 1]  # pages of $top=2, followed by nextLink
    blocks = [b for c in chunks for b in c]
    assert [fields(b)["message-id"] for b in blocks] == [f"<m{n}@example.test>" for n in range(2, 7)]
    assert [b.received_at for b in blocks] == dates[2:]
    first = fields(blocks[0])
    assert set(first) == {"from", "to", "cc", "message-id"}  # from the internet headers; no Subject
    assert hdr.addresses(first["from"])[0][0].name == "Jörg Müller"
    assert fields(blocks[1])["list-id"] == "<news.example.test>"  # a field only the header has
    assert not any(m.is_read for m in account.messages.values())  # nothing marked read


async def test_sent_items_without_internet_headers_get_their_fields_from_the_structured_ones(
    graph_box: tuple[Connector, Account],
) -> None:
    connector, account = graph_box
    raw = mail(1, bcc="=?utf-8?q?Gr=C3=A9goire?= <greg@example.test>, hidden@example.test")
    account.add(raw, "sentitems", received=SINCE + timedelta(minutes=1), sent_copy=True)
    (chunk,) = await collect(connector, "Sent Items", fields=FIELDS)
    found = fields(chunk[0])
    assert set(found) == {"from", "to", "cc", "bcc", "message-id"}
    assert found["message-id"] == "<m1@example.test>"
    bcc = hdr.addresses(found["bcc"])[0]
    assert [(a.name, a.email) for a in bcc] == [
        ("Grégoire", "greg@example.test"),
        ("", "hidden@example.test"),
    ]
    assert [(a.name, a.email) for a in hdr.addresses(found["to"])[0]] == [("Anna", "anna1@example.test")]
    assert hdr.addresses(found["cc"])[0][0].name == ""  # Graph names it by its address: no name


def test_structured_fields_fill_only_what_the_internet_headers_lack() -> None:
    data = {
        "internetMessageHeaders": [{"name": "From", "value": "Ann <ann@example.test>"}],
        "from": {"emailAddress": {"name": "Someone Else", "address": "else@example.test"}},
        "toRecipients": [{"emailAddress": {"name": 'Bob "the" Builder, Jr.', "address": "bob@example.test"}}],
        "bccRecipients": [],
        "internetMessageId": "<x@example.test>",
    }
    written = block(data, None).decode()
    assert written == (
        "From: Ann <ann@example.test>\r\n"
        'To: "Bob \\"the\\" Builder, Jr." <bob@example.test>\r\n'
        "Message-ID: <x@example.test>\r\n"
    )
    to = hdr.first(hdr.parse_block(written.encode()))["to"]
    assert hdr.addresses(to)[0][0].name == 'Bob "the" Builder, Jr.'


async def test_a_missing_folder_is_not_found(graph_box: tuple[Connector, Account]) -> None:
    with pytest.raises(FolderNotFoundError):
        await collect(graph_box[0], "Nowhere", fields=FIELDS)
