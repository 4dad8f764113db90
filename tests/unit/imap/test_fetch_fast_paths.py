"""The FETCH fast paths give exactly what the general parser gives, however the bytes arrive.

A bulk FETCH takes the framer's fast path (:meth:`ResponseSplitter._fetches`, parsed in the
read buffer), other shapes the per-response fast path or :func:`parse_values`. Generated
responses cover attribute orders, flags with backslashes, NIL, empty literals, literal8,
BINARY, MODSEQ, INTERNALDATE, RFC822.SIZE, BODYSTRUCTURE and unsolicited flag updates; every
result is compared with :func:`parse_fetch_general` on the same response framed without the
fast path.
"""

from __future__ import annotations

import dataclasses
import random
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailport.errors import ProtocolError
from mailport.imap.models import FetchedMessage
from mailport.imap.parser import (
    Response,
    ResponseSplitter,
    parse_fetch,
    parse_fetch_general,
    untagged_head,
)

FLAG_SETS = [b"", b"\\Seen", b"\\Seen \\Answered", b"$Forwarded \\Flagged", b"\\Deleted $Label1 Junk"]
DATES = [b"17-Jul-1996 02:44:25 -0700", b" 1-Jan-2024 00:00:00 +0000"]
BODIES = [
    b"",
    b"x",
    b"Subject: hi\r\n\r\nbody\r\n",
    b"* 2 FETCH (UID 9 BODY[] {3}\r\nabc)\r\n",  # a literal that looks like a response
    b")\r\n* 3 FETCH (UID 1 FLAGS () BODY[] {0}\r\n)\r\n",
    bytes(range(256)) * 3,
]
BODYSTRUCTURE = b'BODYSTRUCTURE ("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "7BIT" 12 1 NIL NIL NIL NIL)'


def literal(body: bytes, rng: random.Random) -> bytes:
    return (b"~{%d}\r\n" if rng.random() < 0.15 else b"{%d}\r\n") % len(body) + body


def fetch_response(seq: int, rng: random.Random) -> bytes:
    """One FETCH response in a random shape (attribute subset, order and spelling)."""
    body = rng.choice(BODIES)
    items: list[bytes] = [b"UID %d" % (1000 + seq)]
    if rng.random() < 0.9:
        items.append(b"FLAGS (" + rng.choice(FLAG_SETS) + b")")
    if rng.random() < 0.4:
        items.append(b'INTERNALDATE "' + rng.choice(DATES) + b'"')
    if rng.random() < 0.4:
        items.append(b"RFC822.SIZE %d" % len(body))
    if rng.random() < 0.3:
        items.append(b"MODSEQ (%d)" % rng.randint(1, 10**12))
    if rng.random() < 0.15:
        items.append(BODYSTRUCTURE)
    kind = rng.random()
    if kind < 0.6:
        items.append(b"BODY[] " + literal(body, rng))
    elif kind < 0.7:
        items.append(b"BINARY[] " + literal(body, rng))
    elif kind < 0.8:
        items.append(b"BODY[HEADER] " + literal(body, rng))
    elif kind < 0.85:
        items.append(b"BODY[] NIL")
    elif kind < 0.9:
        items.append(b"RFC822 " + literal(body, rng))
    # else: an unsolicited flag update (no body)
    if rng.random() < 0.7:  # the usual order (UID first, body last) is kept most of the time
        head, *rest = items
        if rest and rest[-1].startswith((b"BODY[", b"BINARY[", b"RFC822 ")):
            middle, last = rest[:-1], [rest[-1]]
        else:
            middle, last = rest, []
        rng.shuffle(middle)
        items = [head, *middle, *last]
    else:
        rng.shuffle(items)
    return b"* %d FETCH (" % seq + b" ".join(items) + b")\r\n"


def stream(count: int, seed: int) -> bytes:
    rng = random.Random(seed)
    parts = []
    for seq in range(1, count + 1):
        parts.append(fetch_response(seq, rng))
        if rng.random() < 0.05:
            parts.append(b"* %d EXISTS\r\n" % (count + seq))
    return b"".join(parts) + b"A7 OK done\r\n"


def reference(data: bytes) -> tuple[list[FetchedMessage], list[bytes]]:
    """Every FETCH through the general parser, the other responses' first lines."""
    splitter = ResponseSplitter(max_literal=1 << 20)
    messages: list[FetchedMessage] = []
    others: list[bytes] = []
    for response in splitter.feed(data):
        if response.first.startswith(b"* ") and b" FETCH " in response.first[:20]:
            number, _, offset = untagged_head(response.first)
            assert number is not None
            messages.append(parse_fetch_general(number, response, offset))
        else:
            others.append(response.first)
    assert not splitter.pending
    return messages, others


def as_client(chunks: list[bytes], max_literal: int = 1 << 20) -> tuple[list[FetchedMessage], list[bytes]]:
    """What the client gets during a UID FETCH: the framer's sink, plus parse_fetch for the rest."""
    splitter = ResponseSplitter(max_literal=max_literal)
    sink: list[FetchedMessage] = []
    others: list[bytes] = []

    def route(response: Response) -> None:  # as ImapProtocol.route does for a running UID FETCH
        first = response.first
        if first.startswith(b"* "):
            number, kind, offset = untagged_head(first)
            if kind == b"FETCH" and number is not None:
                sink.append(parse_fetch(number, response, offset))
                return
        others.append(first)

    splitter.fetch_sink = sink
    splitter.fetch_route = route
    for chunk in chunks:
        assert splitter.feed(chunk) == []  # everything is routed in order while the sink is set
    assert not splitter.pending
    return sink, others


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("seed", range(12))
def test_generated_fetch_responses_parse_as_the_general_parser_does(seed: int) -> None:
    data = stream(150, seed)
    expected = reference(data)
    assert len(expected[0]) == 150
    for size in (len(data), 1 << 16, 4096, 1000, 97, 13):
        assert as_client(chunked(data, size)) == expected, size


def test_the_framers_fast_path_takes_the_usual_shape() -> None:
    """The bulk shape is parsed in the read buffer (no Response objects come out for it)."""
    data = b"".join(
        b'* %d FETCH (UID %d FLAGS (\\Seen) INTERNALDATE "01-Jan-2024 00:00:00 +0000" RFC822.SIZE 3 '
        b"MODSEQ (7) BODY[] {3}\r\nabc)\r\n" % (i, i)
        for i in range(1, 6)
    )
    splitter = ResponseSplitter(max_literal=100)
    sink: list[FetchedMessage] = []
    splitter.fetch_sink = sink
    assert splitter.feed(data) == []
    assert [(m.seq, m.uid, m.flags, m.size, m.modseq, m.raw) for m in sink] == [
        (i, i, ("\\Seen",), 3, 7, b"abc") for i in range(1, 6)
    ]
    assert sink == reference(data)[0]


@pytest.mark.parametrize("seed", range(3))
def test_split_at_every_byte_boundary(seed: int) -> None:
    rng = random.Random(100 + seed)
    data = b"".join(fetch_response(i, rng) for i in range(1, 5)) + b"* 9 EXISTS\r\nA1 OK done\r\n"
    expected = reference(data)
    for cut in range(len(data) + 1):
        assert as_client([data[:cut], data[cut:]]) == expected, cut
    for cut in range(0, len(data), 7):
        assert as_client([data[:cut], data[cut : cut + 11], data[cut + 11 :]]) == expected, cut
    assert as_client(chunked(data, 1)) == expected


def bulk_stream(count: int, seed: int) -> bytes:
    """Mostly the usual shape back to back (the framer's chained matches), now and then another
    response in between: an EXISTS, an unsolicited flag update, a FETCH of another shape."""
    rng = random.Random(seed)
    parts = []
    for seq in range(1, count + 1):
        kind = rng.random()
        if kind < 0.8:
            body = rng.choice(BODIES)
            extra = rng.choice([b"", b'INTERNALDATE "' + DATES[0] + b'" RFC822.SIZE %d ' % len(body)])
            parts.append(
                b"* %d FETCH (UID %d FLAGS (%s) %sBODY[] {%d}\r\n%s)\r\n"
                % (seq, 1000 + seq, rng.choice(FLAG_SETS), extra, len(body), body)
            )
        elif kind < 0.88:
            parts.append(b"* %d EXISTS\r\n" % (count + seq))
        elif kind < 0.94:
            parts.append(b"* %d FETCH (FLAGS (\\Deleted))\r\n" % seq)
        else:
            parts.append(fetch_response(seq, rng))
    return b"".join(parts) + b"A7 OK done\r\n"


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 12),
    st.integers(0, 2**32),
    st.lists(st.floats(0, 1, exclude_max=True), max_size=8),
)
def test_bulk_shape_split_anywhere(count: int, seed: int, cuts: list[float]) -> None:
    """However the reads cut the stream (in a head, a literal, a closing paren, between
    responses), the client gets what the general parser gets from the whole stream."""
    data = bulk_stream(count, seed)
    edges = sorted({0, len(data), *(int(c * len(data)) for c in cuts)})
    chunks = [data[a:b] for a, b in zip(edges, edges[1:], strict=False)]
    assert as_client(chunks) == reference(data)


@pytest.mark.parametrize("seed", range(4))
def test_bulk_shape_split_at_every_byte_boundary(seed: int) -> None:
    data = bulk_stream(6, seed)
    expected = reference(data)
    for cut in range(len(data) + 1):
        assert as_client([data[:cut], data[cut:]]) == expected, cut


def test_unsolicited_flag_updates_interleaved_with_the_bulk_shape() -> None:
    data = (
        b"* 1 FETCH (UID 10 FLAGS (\\Seen) BODY[] {2}\r\nab)\r\n"
        b"* 7 FETCH (FLAGS (\\Deleted))\r\n"
        b"* 2 FETCH (UID 11 FLAGS () BODY[] {0}\r\n)\r\n"
        b"* 8 FETCH (UID 3 FLAGS (\\Flagged))\r\n"
        b"* 3 FETCH (UID 12 BODY[] {1}\r\nc)\r\n"
        b"A1 OK done\r\n"
    )
    expected = reference(data)
    for cut in range(len(data) + 1):
        got = as_client([data[:cut], data[cut:]])
        assert got == expected
        assert [(m.seq, m.uid, m.flags, m.raw) for m in got[0]] == [
            (1, 10, ("\\Seen",), b"ab"),
            (7, None, ("\\Deleted",), None),
            (2, 11, (), b""),
            (8, 3, ("\\Flagged",), None),
            (3, 12, None, b"c"),
        ]


def test_a_literal_over_the_maximum_is_skipped_in_the_bulk_shape() -> None:
    big = b"y" * 5000
    data = (
        b"* 1 FETCH (UID 1 FLAGS (\\Seen) BODY[] {5000}\r\n" + big + b")\r\n"
        b"* 2 FETCH (UID 2 FLAGS (\\Seen) BODY[] {2}\r\nok)\r\nA1 OK done\r\n"
    )
    for size in (len(data), 4096, 512, 7):
        messages, others = as_client(chunked(data, size), max_literal=1000)
        assert [(m.uid, m.raw, m.oversize) for m in messages] == [(1, None, 5000), (2, b"ok", None)]
        assert others == [b"A1 OK done"]


def test_a_message_larger_than_the_hold_is_collected_in_parts() -> None:
    body = bytes(range(256)) * 2048  # 512 KiB: more than the fast path holds whole
    data = b"* 1 FETCH (UID 5 FLAGS () BODY[] {%d}\r\n" % len(body) + body + b")\r\nA1 OK done\r\n"
    for size in (len(data), 65536, 16384):
        messages, _ = as_client(chunked(data, size), max_literal=1 << 20)
        assert [(m.uid, m.raw) for m in messages] == [(5, body)]


@pytest.mark.parametrize(
    "line",
    [
        b'* 1 FETCH (UID 1 INTERNALDATE "yesterday" BODY[] {1}\r\nx)\r\n',
        b"* 1 FETCH (UID 1 BODY[] {1}\r\nxx)\r\n",  # the literal is not followed by ")"
        # three bytes that are not ")\r\n" between a message and the next one of the bulk shape
        b"* 1 FETCH (UID 1 BODY[] {1}\r\nxABC* 2 FETCH (UID 2 BODY[] {1}\r\ny)\r\n",
        b"* 1 FETCH (UID 1 FLAGS (\\Seen BODY[] {1}\r\nx)\r\n",
    ],
)
def test_malformed_fetch_responses_are_protocol_errors(line: bytes) -> None:
    with pytest.raises(ProtocolError):
        as_client([line + b"A1 OK done\r\n"])


def test_the_general_parser_reads_literal8_and_nil() -> None:
    response = Response(
        [b"* 4 FETCH (UID 9 FLAGS (\\Seen) BINARY[] ~{3}", b" BODY[HEADER] NIL)"], [b"a\x00b"]
    )
    msg = parse_fetch(4, response, untagged_head(response.first)[2])
    assert msg == parse_fetch_general(4, response, untagged_head(response.first)[2])
    assert (msg.uid, msg.raw, msg.headers) == (9, b"a\x00b", b"")


def test_the_fast_path_sets_every_field_of_the_message() -> None:
    """The loop assigns the slots itself (no __init__): none may be left unset."""
    data = b'* 3 FETCH (UID 9 FLAGS () INTERNALDATE "01-Jan-2024 00:00:00 +0000" BODY[] {1}\r\nx)\r\n'
    splitter = ResponseSplitter(max_literal=100)
    sink: list[FetchedMessage] = []
    splitter.fetch_sink = sink
    splitter.feed(data)
    assert len(sink) == 1
    message = sink[0]
    assert {f.name: getattr(message, f.name) for f in dataclasses.fields(FetchedMessage)} == {
        "seq": 3,
        "uid": 9,
        "flags": (),
        "internaldate": datetime(2024, 1, 1, tzinfo=UTC),
        "size": None,
        "modseq": None,
        "raw": b"x",
        "headers": None,
        "oversize": None,
    }
    assert message == reference(data)[0][0]
