"""Header blocks, RFC 2047 words, address lists, dates and message ids."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import Message as _Compat32Message

import pytest

from mailport.messages.headers import (
    ParamHeaders,
    addresses,
    date,
    decode_words,
    header_end,
    msg_ids,
    parse_block,
)
from mailport.messages.model import Address


def test_parse_block_unfolds_and_keeps_order_and_duplicates() -> None:
    block = b"Received: a\r\n\tb\r\nSubject:  hi\r\n there \r\nReceived: c\r\nbogus line\r\nX-Empty:\r\n"
    assert parse_block(block) == [
        ("Received", "a\tb"),
        ("Subject", "hi there"),
        ("Received", "c"),
        ("X-Empty", ""),
    ]


def test_header_end_handles_crlf_lf_no_blank_line_and_no_headers() -> None:
    assert header_end(b"A: 1\r\n\r\nbody", 0, 13) == (6, 8)
    assert header_end(b"A: 1\n\nbody", 0, 10) == (5, 6)
    assert header_end(b"A: 1\r\nB: 2", 0, 10) == (10, 10)
    assert header_end(b"just a body line\r\n", 0, 18) == (0, 0)
    assert header_end(b"\r\nbody", 0, 6) == (0, 2)


def test_header_end_stops_at_a_line_that_is_no_field_as_the_stdlib_does() -> None:
    # no blank line: the first line that neither starts nor continues a field begins the body
    raw = b"A: 1\r\n b\r\nbody text\r\n\r\nmore"
    assert header_end(raw, 0, len(raw)) == (10, 10) and raw[10:].startswith(b"body text")
    assert header_end(b"A: 1\nbody", 0, 9) == (5, 5)
    # a field-like line after the fields stays a field (the stdlib reads it so too)
    raw = b"A: 1\r\nNote: x\r\n\r\nbody"
    assert header_end(raw, 0, len(raw)) == (15, 17)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("plain", "plain"),
        ("=?utf-8?q?a?= =?utf-8?q?b?=", "ab"),  # blanks between words vanish
        ("=?utf-8?q?a?=\t \r\n =?iso-8859-1?q?=E9?=", "aé"),
        ("x =?utf-8?q?a_b?= y", "x a b y"),
        ("=?UTF-8?B?4pyT?=", "✓"),
        ("=?utf-8?b?4pw=?= =?utf-8?b?kw==?=", "✓"),  # a character split across two words
        ("=?utf-8*en?q?hello?=", "hello"),  # RFC 2231 language tag
        ("=?utf-8?q?unterminated", "=?utf-8?q?unterminated"),
        ("pre=?utf-8?q?fix?=", "prefix"),
    ],
)
def test_decode_words(raw: str, expected: str) -> None:
    assert decode_words(raw) == (expected, False)


def test_decode_words_reports_bad_base64_and_unknown_charsets() -> None:
    assert decode_words("=?utf-8?B?4pyT4?=") == ("✓", True)  # bad padding
    assert decode_words("=?x-nope?q?caf=E9?=") == ("café", True)


def test_addresses_common_forms_groups_comments_and_idn() -> None:
    value = (
        '"Smith, John" <john@example.com>, team: a@example.com, "B" <b@example.com>;,'
        " =?utf-8?q?M=C3=BCller=2C_Hans?= <h@example.de>, old@example.com (Old Style), "
        "<bare@example.com>, idn@xn--bcher-kva.example"
    )
    assert addresses(value) == (
        (
            Address("Smith, John", "john@example.com"),
            Address("", "a@example.com"),
            Address("B", "b@example.com"),
            Address("Müller, Hans", "h@example.de"),
            Address("Old Style", "old@example.com"),
            Address("", "bare@example.com"),
            Address("", "idn@bücher.example"),
        ),
        False,
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("undisclosed-recipients:;", ((), False)),
        ("", ((), False)),
        ("<>", ((), False)),
        (";;;", ((), False)),
        ("root", ((Address("", "root"),), False)),
        ('"Foo Bar" <foo@bar', ((Address("Foo Bar", "foo@bar"),), False)),
        ('"unterminated <a@b>', ((Address("unterminated", "a@b"),), False)),
        ("bad@xn--zz--.example", ((Address("", "bad@xn--zz--.example"),), False)),
        ("foo bar baz", ((Address("foo bar baz", ""),), True)),
        ("=?utf-8?q?J=C3=B6rg?= via", ((Address("Jörg via", ""),), True)),
        ("@@@", ((Address("@@@", ""),), True)),
    ],
)
def test_broken_address_values_never_raise_and_keep_their_text(value: str, expected: object) -> None:
    assert addresses(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Tue, 3 Mar 2026 08:00:00 -0500", datetime(2026, 3, 3, 13, 0, tzinfo=UTC)),
        ("3 Mar 2026 08:00 EST", datetime(2026, 3, 3, 13, 0, tzinfo=UTC)),
        ("Tue, 3 Mar 2026 08:00:00 -0000", datetime(2026, 3, 3, 8, 0, tzinfo=UTC)),
        ("Tue, 3 Mar 26 08:00:00 +0000", datetime(2026, 3, 3, 8, 0, tzinfo=UTC)),
        ("yesterday", None),
        ("Tue, 99 Foo 2026 99:99:99 +9999", None),
        ("", None),
        (None, None),
    ],
)
def test_date(value: str | None, expected: datetime | None) -> None:
    parsed = date(value)
    assert parsed == expected
    if parsed is not None:
        assert parsed.tzinfo is UTC


def test_msg_ids() -> None:
    assert msg_ids("<a@b> <c@d>\r\n <e@f>") == ["a@b", "c@d", "e@f"]
    assert msg_ids("a@b, c@d") == ["a@b", "c@d"]
    assert msg_ids("garbage") == []
    assert msg_ids(None) == []


@pytest.mark.parametrize(
    "content_type",
    [
        'text/plain; charset="utf-8"',
        "text/plain;charset=UTF-8",
        'text/html; CharSet = "ISO-8859-1"\t',
        " text/plain ; charset=koi8-r",
        "charset; charset=utf-8",  # the first segment is a parameter named charset
        "x=y/z; charset=a",
        "text/plain; charset=",
        'text/plain; charset=""',
        'text/plain; charset="utf-8',
        'text/plain; charset="a;b"',
        "text/plain; charset*=utf-8''utf-8",
        "text/plain; charſet=utf-8",  # ſ lower-cases to itself, not to s
        "text/plain; charset=utf-8\xa0",
        "text/plain; charset=utf-8; format=flowed",
        "text/plain; charset=<utf-8>",
        "text/plain; charset=ü",
    ],
)
def test_charset_is_what_the_stdlib_reads(content_type: str) -> None:
    """The plain ``charset=`` shape is read without compat32's parameter parser: same answers."""
    stdlib = _Compat32Message()
    stdlib.set_raw("Content-Type", content_type)
    try:
        expected = stdlib.get_content_charset()
    except (LookupError, UnicodeError, ValueError):
        expected = None
    assert ParamHeaders(content_type, None).charset() == expected
