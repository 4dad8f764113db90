"""The pure parts of IMAP mailbox access: neutral flags both ways, keyword validation, listing
cursors, SEARCH dates, and a listing item built from a FETCH response."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mailport.connectors.imap_mail import (
    SUMMARY_ITEMS,
    _summary,
    decode_cursor,
    encode_cursor,
    imap_flags,
    neutral_flags,
    search_date,
)
from mailport.errors import InputError, InvalidCursorError
from mailport.imap.parser import Response, pairs, parse_values
from mailport.messages.model import Address
from mailport.messages.threading import thread_key


def test_flags_are_neutral_both_ways_and_deleted_and_recent_are_hidden() -> None:
    assert neutral_flags(
        ["\\Seen", "\\FLAGGED", "\\Answered", "\\Draft", "\\Deleted", "\\Recent", "$Junk"]
    ) == (
        "seen",
        "flagged",
        "answered",
        "draft",
        "$Junk",
    )
    assert imap_flags(["seen", "Flagged", "answered", "draft", "$Forwarded", "seen"]) == [
        "\\Seen",
        "\\Flagged",
        "\\Answered",
        "\\Draft",
        "$Forwarded",
    ]


@pytest.mark.parametrize("bad", ["", "a b", "\\Deleted", "\\Seen", "x(y", "q]", "100%", "wild*", "ü", 'a"b'])
def test_a_keyword_must_be_an_imap_atom(bad: str) -> None:
    with pytest.raises(InputError) as refused:
        imap_flags([bad])
    assert refused.value.details["field"] == "flags" and "$Forwarded" in refused.value.hint


def test_cursors_round_trip_and_belong_to_their_folder() -> None:
    cursor = encode_cursor("Größe/Ärger", 1700000000, 4711)
    assert cursor.isascii() and "/" not in cursor and "=" not in cursor
    assert decode_cursor(cursor, "Größe/Ärger") == (1700000000, 4711)
    assert decode_cursor(encode_cursor("INBOX", 1, 2), "inbox") == (1, 2)
    with pytest.raises(InvalidCursorError, match="belongs to folder"):
        decode_cursor(cursor, "INBOX")
    for junk in ("", "!!", "W10", "WyJhIiwxXQ", encode_cursor("INBOX", 1, 2)[:-3]):
        with pytest.raises(InvalidCursorError):
            decode_cursor(junk, "INBOX")


def test_search_dates_start_a_day_early() -> None:
    assert search_date(datetime(2024, 3, 1, 0, 30, tzinfo=UTC)) == "29-Feb-2024"
    assert search_date(datetime(2024, 12, 25, 23, 0, tzinfo=UTC)) == "24-Dec-2024"


HEADERS = (
    b"From: =?iso-8859-1?q?J=F6rg?= <joerg@xn--mnchen-3ya.example>\r\n"
    b'To: a@example.test, "Doe, Jane" <jane@example.test>\r\n'
    b"Subject: =?utf-8?b?8J+OiSBQYXJ0eQ==?=\r\n"
    b"Date: Fri, 01 Mar 2024 10:00:00 -0500\r\n\r\n"
)


def fetched(headers: bytes, extra: bytes = b"") -> dict[bytes, object]:
    line = (
        b'* 3 FETCH (UID 42 FLAGS (\\Seen \\Recent Work) INTERNALDATE "01-Mar-2024 15:00:01 +0000" '
        b'RFC822.SIZE 2048 BODYSTRUCTURE ("text" "plain" NIL NIL NIL "7bit" 10 1 NIL NIL NIL NIL) '
        b"BODY[HEADER.FIELDS (FROM TO CC REPLY-TO SUBJECT DATE MESSAGE-ID IN-REPLY-TO REFERENCES)] {%d}"
        % len(headers)
    )
    response = Response([line, extra + b")"], [headers])
    return pairs(parse_values(response, 0, len(b"* 3 FETCH "))[0])  # type: ignore[arg-type]


def test_a_listing_item_from_a_fetch_response() -> None:
    assert "BODYSTRUCTURE" in SUMMARY_ITEMS
    item = _summary("INBOX", 7, fetched(HEADERS, b' PREVIEW "Hi there"'))
    assert (item.ref.scope, item.ref.epoch, item.ref.item) == ("INBOX", "7", "42")
    assert item.envelope.subject == "🎉 Party"
    assert item.envelope.from_ == (Address("Jörg", "joerg@münchen.example"),)
    assert item.envelope.to == (Address("", "a@example.test"), Address("Doe, Jane", "jane@example.test"))
    assert item.envelope.date == datetime(2024, 3, 1, 15, 0, tzinfo=UTC)
    assert item.envelope.message_id is None
    assert item.flags == ("seen", "Work") and item.size == 2048 and item.has_attachments is False
    assert item.received_at == datetime(2024, 3, 1, 15, 0, 1, tzinfo=UTC) and item.preview == "Hi there"
    # no id at all: the stand-in is the hash of the header fields fetched, stable per message
    assert item.thread_key == _summary("Sent", 9, fetched(HEADERS)).thread_key
    assert item.thread_key != thread_key(message_id=None, in_reply_to=[], references=[], content_sha256="")


def test_a_listing_item_keys_a_reply_on_its_root() -> None:
    reply = HEADERS[:-2] + b"Message-ID: <r@x>\r\nIn-Reply-To: <p@x>\r\nReferences: <root@x> <p@x>\r\n\r\n"
    item = _summary("INBOX", 7, fetched(reply))
    assert (item.envelope.message_id, item.envelope.in_reply_to) == ("r@x", "p@x")
    assert item.thread_key == thread_key(
        message_id="root@x", in_reply_to=[], references=[], content_sha256=""
    )
    assert item.preview is None
