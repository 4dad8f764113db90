"""The raw form: caller-written bytes -> bytes to send and the envelope."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mailport.errors import InputError
from mailport.messages import parse_message
from mailport.sending import prepare_raw

RAW = (
    b"From: =?utf-8?q?Zo=C3=AB?= <zoe@example.org>\r\n"
    b"To: Bob <bob@example.net>, carol@example.com\r\n"
    b"Cc: dave@example.net\r\n"
    b"Bcc: Secret One <s1@hidden.example>,\r\n"
    b"  s2@hidden.example\r\n"
    b"Subject: Hello\r\n"
    b"Message-ID: <given@example.org>\r\n"
    b"Date: Mon, 02 Mar 2026 10:00:00 +0000\r\n"
    b"\r\n"
    b"Body line\r\nBcc: not a header in the body\r\n"
)


def test_bcc_is_stripped_and_in_the_envelope() -> None:
    out = prepare_raw(RAW)
    assert b"s1@hidden" not in out.raw
    assert b"s2@hidden" not in out.raw
    assert out.recipients == (
        "bob@example.net",
        "carol@example.com",
        "dave@example.net",
        "s1@hidden.example",
        "s2@hidden.example",
    )
    assert out.message_id == "given@example.org"
    assert out.sender == "zoe@example.org"
    assert out.raw.endswith(b"\r\n\r\nBody line\r\nBcc: not a header in the body\r\n")  # body untouched
    assert out.raw == RAW.replace(b"Bcc: Secret One <s1@hidden.example>,\r\n  s2@hidden.example\r\n", b"")


def test_missing_message_id_and_date_are_added() -> None:
    raw = b"From: zoe@example.org\nTo: bob@example.net\nSubject: x\n\nhi\n"
    out = prepare_raw(raw, now=datetime(2026, 3, 2, 10, 0, tzinfo=UTC))
    assert out.message_id.endswith("@example.org")
    assert f"Message-ID: <{out.message_id}>\r\n".encode() in out.raw
    assert b"Date: Mon, 02 Mar 2026 10:00:00 +0000\r\n" in out.raw
    assert b"\n" not in out.raw.replace(b"\r\n", b"")  # bare LF normalized to CRLF
    msg = parse_message(out.raw, mailbox_id="m", folder="Sent")
    assert msg.message_id == out.message_id
    assert msg.text == "hi\r\n" or msg.text == "hi\n"


def test_bcc_only_raw_message() -> None:
    out = prepare_raw(b"From: a@example.org\r\nBcc: b@example.net\r\nSubject: x\r\n\r\nhi\r\n")
    assert out.recipients == ("b@example.net",)
    assert b"Bcc" not in out.raw


def test_duplicates_collapse_in_the_envelope() -> None:
    out = prepare_raw(
        b"From: a@example.org\r\nTo: b@example.net\r\nCc: b@EXAMPLE.net\r\nBcc: b@example.NET\r\n\r\nx"
    )
    assert out.recipients == ("b@example.net",)


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b"To: b@example.net\r\n\r\nx", "no From"),
        (b"From: a@example.org\r\nSubject: x\r\n\r\nx", "no recipient"),
        (b"From: undisclosed\r\nTo: b@example.net\r\n\r\nx", "no From"),
        (b"", "header block"),
        (b"just some text\r\n\r\n", "header block"),
        (b"From: a@example.org\r\nnot a header\r\nTo: b@example.net\r\n\r\nx", "not a header"),
    ],
)
def test_unusable_raw_messages_are_refused(raw: bytes, words: str) -> None:
    with pytest.raises(InputError, match=words):
        prepare_raw(raw)


def test_encoded_recipient_names_are_read() -> None:
    raw = b"From: a@example.org\r\nTo: =?utf-8?q?J=C3=BCrgen=2C_M?= <j@example.net>\r\n\r\nx"
    assert prepare_raw(raw).recipients == ("j@example.net",)


def test_extension_flags_of_raw_messages() -> None:
    assert (prepare_raw(RAW).eight_bit, prepare_raw(RAW).smtputf8) == (False, False)
    utf8 = prepare_raw("From: zoë@example.org\r\nTo: b@example.net\r\nSubject: Grüße\r\n\r\nÄ\r\n".encode())
    assert (utf8.eight_bit, utf8.smtputf8) == (True, True)
    body8 = prepare_raw("From: z@example.org\r\nTo: b@example.net\r\n\r\nÄ\r\n".encode())
    assert (body8.eight_bit, body8.smtputf8) == (True, False)


def test_headers_only_message_without_final_line_break() -> None:
    out = prepare_raw(
        b"From: a@example.org\r\nTo: b@example.net\r\nSubject: no body", now=datetime(2026, 3, 2, tzinfo=UTC)
    )
    assert out.raw.startswith(
        b"From: a@example.org\r\nTo: b@example.net\r\nSubject: no body\r\nMessage-ID: <"
    )
    assert out.raw.endswith(b"Date: Mon, 02 Mar 2026 00:00:00 +0000\r\n\r\n")
    msg = parse_message(out.raw, mailbox_id="m", folder="Sent")
    assert msg.subject == "no body"
    assert msg.message_id == out.message_id
