"""Contract: the header fields of a folder's mail since an instant (contact harvesting), on every
bed (Dovecot standard and ``INBOX.``-dotted, the fake): oldest first in chunks, exactly the fields
asked for, the instant honoured to the second (IMAP SEARCH is by day), a non-ASCII folder name,
nothing marked read, mail that arrived since the last command included, a missing folder a 404."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import pytest

from mailport.connectors.base import HeaderBlock
from mailport.connectors.mail import ListQuery
from mailport.errors import FolderNotFoundError
from mailport.messages import headers as hdr
from tests.connectors.mailbed import MailBed

SINCE = datetime(2024, 3, 10, 12, 0, tzinfo=UTC)
FIELDS = ("from", "to", "cc", "message-id")


def mail(n: int, *, sender: str = "Jörg Müller <joerg@example.test>") -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = f"anna{n}@example.test, Bob <bob@example.test>"
    msg["Cc"] = f"carla{n}@example.test"
    msg["Subject"] = f"message {n}"
    msg["Message-ID"] = f"<m{n}@example.test>"
    msg.set_content("hello\n")
    return msg.as_bytes().replace(b"\n", b"\r\n")


async def collect(bed: MailBed, folder: str, **options: object) -> list[list[HeaderBlock]]:
    options.setdefault("since", SINCE)
    options.setdefault("fields", FIELDS)
    return [chunk async for chunk in bed.connector.header_blocks(folder, **options)]  # type: ignore[arg-type]


def fields(block: HeaderBlock) -> dict[str, str]:
    return hdr.first(hdr.parse_block(block.block))


async def test_header_blocks_are_oldest_first_in_chunks_since_the_instant_with_the_fields_asked(
    bed: MailBed,
) -> None:
    folder = bed.path("Kontakte Größe")
    await bed.make_folder(folder)
    dates = [
        SINCE - timedelta(days=9),  # an earlier day
        SINCE - timedelta(hours=4),  # the same day, before the instant: IMAP SEARCH finds it
        SINCE,
        SINCE + timedelta(days=20, hours=3),
        SINCE + timedelta(days=60),
    ]
    for n, at in enumerate(dates):
        await bed.put(folder, mail(n), at=at)
    chunks = await collect(bed, folder, chunk=2)
    assert len(chunks) >= 2 and all(1 <= len(c) <= 2 for c in chunks)  # a chunk may lose the too-early
    blocks = [b for c in chunks for b in c]
    assert [fields(b)["message-id"] for b in blocks] == [f"<m{n}@example.test>" for n in (2, 3, 4)]
    assert [b.received_at for b in blocks] == dates[2:]
    assert len({b.item for b in blocks}) == 3
    first = fields(blocks[0])
    assert set(first) == {"from", "to", "cc", "message-id"}  # no Subject, no Date, no body
    assert first["to"] == "anna2@example.test, Bob <bob@example.test>"
    assert hdr.addresses(first["from"])[0][0].name == "Jörg Müller"
    assert b"hello" not in blocks[0].block
    page = await bed.connector.list_messages(ListQuery(folder=folder))
    assert all("seen" not in item.flags for item in page.items)  # nothing was marked read


async def test_without_fields_the_whole_header_comes(bed: MailBed) -> None:
    folder = bed.path("Whole")
    await bed.make_folder(folder)
    await bed.put(folder, mail(1), at=SINCE + timedelta(minutes=1))
    (chunk,) = await collect(bed, folder, fields=())
    found = fields(chunk[0])
    assert found["subject"] == "message 1" and "content-type" in found
    assert b"hello" not in chunk[0].block


async def test_nothing_since_gives_no_chunk_and_new_mail_is_seen_on_the_next_call(bed: MailBed) -> None:
    folder = bed.path("Later")
    await bed.make_folder(folder)
    await bed.put(folder, mail(1), at=SINCE - timedelta(days=30))
    assert await collect(bed, folder) == []
    await bed.put(folder, mail(2), at=SINCE + timedelta(days=1))  # while the folder stays selected
    (chunk,) = await collect(bed, folder)
    assert [fields(b)["message-id"] for b in chunk] == ["<m2@example.test>"]


async def test_a_missing_folder_is_not_found(bed: MailBed) -> None:
    with pytest.raises(FolderNotFoundError):
        await collect(bed, bed.path("Nowhere"))
