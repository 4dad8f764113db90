"""POP3 framing on bytes: status lines and response codes, dot-stuffing, the terminator split
anywhere, oversized data skipped, listings and CAPA."""

from __future__ import annotations

import pytest

from mailport.errors import ProtocolError
from mailport.pop3.parser import (
    MultiLineReader,
    is_continuation,
    parse_capabilities,
    parse_listing,
    parse_status,
    unstuff,
)


def read_all(chunks: list[bytes], limit: int = 10_000) -> tuple[bytes | None, int, bytes]:
    reader = MultiLineReader(limit)
    for chunk in chunks:
        rest = reader.feed(chunk)
        if rest is not None:
            return reader.data(), reader.size, rest
    raise AssertionError("no terminator seen")


@pytest.mark.parametrize(
    ("line", "ok", "code", "text"),
    [
        (b"+OK Dovecot ready.\r\n", True, None, "Dovecot ready."),
        (b"+OK\r\n", True, None, ""),
        (b"-ERR [IN-USE] Mailbox is locked\r\n", False, "IN-USE", "Mailbox is locked"),
        (b"-ERR [SYS/TEMP] try later\r\n", False, "SYS/TEMP", "try later"),
        (b"-ERR [auth] Authentication failed.\r\n", False, "AUTH", "Authentication failed."),
        (b"-ERR no such message", False, None, "no such message"),
    ],
)
def test_status_lines(line: bytes, ok: bool, code: str | None, text: str) -> None:
    status = parse_status(line)
    assert (status.ok, status.code, status.text) == (ok, code, text)
    assert status.said() == line.decode().rstrip("\r\n")


@pytest.mark.parametrize("line", [b"* OK IMAP here\r\n", b"220 smtp ready\r\n", b"+OKAY\r\n", b""])
def test_anything_else_is_not_pop3(line: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse_status(line)


def test_sasl_challenges() -> None:
    assert is_continuation(b"+ eyJzdGF0dXMiOiI0MDEifQ==\r\n")
    assert is_continuation(b"+\r\n")
    assert not is_continuation(b"+OK\r\n")


def test_an_empty_answer_ends_at_once() -> None:
    assert read_all([b".\r\n"]) == (b"", 0, b"")


def test_dot_stuffing_and_a_line_of_one_dot() -> None:
    wire = b"Subject: x\r\n\r\n..\r\n...hidden\r\n.. \r\nend\r\n.\r\n"
    data, size, rest = read_all([wire])
    assert data == b"Subject: x\r\n\r\n.\r\n..hidden\r\n. \r\nend\r\n"
    assert size == len(wire) - 3
    assert rest == b""


def test_a_first_line_starting_with_a_dot() -> None:
    assert read_all([b"..first\r\nsecond\r\n.\r\n"])[0] == b".first\r\nsecond\r\n"


@pytest.mark.parametrize("split", range(1, 12))
def test_the_terminator_split_anywhere(split: int) -> None:
    wire = b"abc\r\n..\r\n.\r\n+OK next"
    data, _, rest = read_all([wire[:split], wire[split:]])
    assert data == b"abc\r\n.\r\n"
    assert rest == b"+OK next"


def test_one_byte_at_a_time() -> None:
    wire = b"x\r\n.y\r\n.\r\n"
    reader = MultiLineReader(100)
    results = [reader.feed(wire[i : i + 1]) for i in range(len(wire))]
    assert results[-1] == b"" and all(r is None for r in results[:-1])
    assert reader.data() == b"x\r\ny\r\n"


def test_over_the_limit_it_is_skipped_to_its_end() -> None:
    body = b"".join(b"line %05d\r\n" % n for n in range(5000))  # 55,000 bytes
    wire = body + b".\r\n+OK after"
    chunks = [wire[i : i + 4096] for i in range(0, len(wire), 4096)]
    reader = MultiLineReader(10_000)
    rest = None
    for chunk in chunks:
        rest = reader.feed(chunk)
        if rest is not None:
            break
        assert len(reader._buffer) <= 10_000 + 4096 + 2  # memory stays bounded
    assert rest == b"+OK after"
    assert reader.overflowed and reader.data() is None
    assert reader.size == len(body)


def test_unstuff() -> None:
    assert unstuff(b"..a\r\n..\r\nb\r\n") == b".a\r\n.\r\nb\r\n"


def test_listings() -> None:
    assert parse_listing(b"1 000000016b13ffc6\r\n2 abc\r\n", what="UIDL") == [
        (1, "000000016b13ffc6"),
        (2, "abc"),
    ]
    assert parse_listing(b"1 120\r\n2 4000\r\n", what="LIST") == [(1, "120"), (2, "4000")]
    with pytest.raises(ProtocolError):
        parse_listing(b"one 120\r\n", what="LIST")
    with pytest.raises(ProtocolError):
        parse_listing(b"1 " + b"x" * 71 + b"\r\n", what="UIDL")


def test_capabilities() -> None:
    caps = parse_capabilities(b"TOP\r\nUIDL\r\nSASL PLAIN XOAUTH2\r\nstls\r\nLOGIN-DELAY 900\r\n")
    assert caps == {
        "TOP": (),
        "UIDL": (),
        "SASL": ("PLAIN", "XOAUTH2"),
        "STLS": (),
        "LOGIN-DELAY": ("900",),
    }
