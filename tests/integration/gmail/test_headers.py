"""Header blocks for contact harvesting over the Gmail API, against the fake (every request and
answer checked against Google's discovery document by the session fixture): a label's mail since
an instant, oldest first across list pages, only the fields asked for, received_at from
internalDate (exact, though ``after:`` is by the second), nothing marked read, a message deleted
between the listing and its ``get`` left out, a missing label a 404."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mailport.connectors.base import HeaderBlock
from mailport.connectors.gmail.headers import ALL_MAIL
from mailport.errors import FolderNotFoundError
from mailport.messages import headers as hdr
from tests.connectors.test_header_blocks import FIELDS, SINCE, collect
from tests.fakes.gmail import make_message
from tests.integration.gmail.access_bed import GmailAccessBed, gbed, gmail_services

__all__ = ["gbed", "gmail_services"]


def message_id(block: HeaderBlock) -> str:
    return hdr.first(hdr.parse_block(block.block))["message-id"]


async def test_a_labels_mail_since_the_instant_oldest_first_with_the_fields_asked(
    gbed: GmailAccessBed,
) -> None:
    label = gbed.account.create_label("Kunden/Größe")
    dates = [SINCE - timedelta(days=3), SINCE - timedelta(seconds=1), SINCE, SINCE + timedelta(hours=5)]
    for n, at in enumerate(dates):
        sender = "=?utf-8?q?J=C3=B6rg?= <joerg@example.org>"
        gbed.put(make_message(sender=sender, message_id=f"<g{n}@example.org>"), (label, "UNREAD"), at=at)
    gbed.put(make_message(message_id="<inbox@example.org>"), at=SINCE + timedelta(days=1))  # another label
    gbed.put(make_message(message_id="<spam@example.org>"), (label, "SPAM"), at=SINCE)  # hidden by SPAM
    chunks = await collect(gbed.connector, "Kunden/Größe", chunk=1)
    blocks = [b for c in chunks for b in c]
    assert [message_id(b) for b in blocks] == ["<g2@example.org>", "<g3@example.org>"]
    assert [b.received_at for b in blocks] == dates[2:] and len(chunks) == 2
    found = hdr.first(hdr.parse_block(blocks[0].block))
    assert set(found) == {"from", "to", "message-id"}  # no Cc in the message; no Subject asked
    assert hdr.addresses(found["from"])[0][0].name == "Jörg"
    assert all("UNREAD" in gbed.account.message(b.item).labels for b in blocks)  # nothing marked read
    whole = await collect(gbed.connector, "INBOX", fields=())
    assert b"Subject: " in whole[0][0].block and b"Hello." not in whole[0][0].block


async def test_every_page_of_the_listing_is_read_and_yielded_oldest_first(gbed: GmailAccessBed) -> None:
    for n in range(510):  # two pages of messages.list (at most 500 each)
        gbed.put(make_message(message_id=f"<p{n}@example.org>"), at=SINCE + timedelta(minutes=n))
    chunks = await collect(gbed.connector, "INBOX", chunk=200)
    assert [len(c) for c in chunks] == [200, 200, 110]
    assert [message_id(b) for c in chunks for b in c] == [f"<p{n}@example.org>" for n in range(510)]


async def test_a_message_deleted_after_the_listing_is_left_out(gbed: GmailAccessBed) -> None:
    ids = [gbed.put(make_message(), at=SINCE + timedelta(hours=n)) for n in range(3)]
    blocks = gbed.connector.header_blocks("INBOX", since=SINCE, fields=FIELDS, chunk=1)
    first = await anext(blocks)
    gbed.account.delete(ids[1])
    rest = [b.item for c in [c async for c in blocks] for b in c]
    assert [b.item for b in first] + rest == [ids[0], ids[2]]


async def test_all_mail_is_every_label_and_archived_mail_but_spam_trash_drafts_and_chats(
    gbed: GmailAccessBed,
) -> None:
    label = gbed.account.create_label("Clients")
    kept = [
        gbed.put(make_message(), ("INBOX", "IMPORTANT", "CATEGORY_PERSONAL"), at=SINCE),
        gbed.put(make_message(), ("SENT",), at=SINCE + timedelta(hours=1)),
        gbed.put(make_message(), (label,), at=SINCE + timedelta(hours=2)),
        gbed.put(make_message(), ("CATEGORY_UPDATES",), at=SINCE + timedelta(hours=3)),  # archived
    ]
    for labels in (("SPAM",), ("TRASH",), ("DRAFT",), ("CHAT",)):
        gbed.put(make_message(), labels, at=SINCE + timedelta(hours=4))
    gbed.put(make_message(), at=SINCE - timedelta(seconds=1))  # before the instant
    assert gbed.connector.all_mail() == ALL_MAIL
    chunks = await collect(gbed.connector, ALL_MAIL, chunk=2)
    assert [b.item for c in chunks for b in c] == kept  # each once, oldest first


async def test_a_missing_label_is_not_found(gbed: GmailAccessBed) -> None:
    with pytest.raises(FolderNotFoundError):
        await collect(gbed.connector, "Nowhere")
