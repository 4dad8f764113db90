"""The neutral search query compiled into IMAP SEARCH keys: every criterion, quoting, non-ASCII
text as literals with CHARSET UTF-8, the exact checks on instants and attachments, the native
pass-through's validation."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone

import pytest

from mailport.connectors.base import MessageRef
from mailport.connectors.imap_search import (
    SearchProgram,
    check_limit,
    compile_search,
    native_keys,
)
from mailport.connectors.mail import Envelope, MessageSummary, SearchQuery
from mailport.errors import InputError
from mailport.imap.arguments import Arg, Literal


def wire(args: Sequence[Arg]) -> bytes:
    """The arguments as the client sends them (a literal as ``{n+}`` and its bytes): one space
    between arguments, none after "(" or before ")"."""
    out = b""
    opened = True
    for arg in args:
        if not opened and not (isinstance(arg, bytes) and arg[:1] == b")"):
            out += b" "
        if isinstance(arg, Literal):
            out += b"{%d+}\r\n" % len(arg.data) + arg.data
            opened = False
        else:
            out += arg
            opened = arg[-1:] == b"("
    return out


def keys(**criteria: object) -> bytes:
    return wire(compile_search(SearchQuery(**criteria)).keys)  # type: ignore[arg-type]


def test_an_empty_query_is_all() -> None:
    program = compile_search(SearchQuery())
    assert program.keys == (b"ALL",) and program.charset is None and not program.checks


@pytest.mark.parametrize(
    ("criteria", "expected"),
    [
        ({"from_": "alice@example.com"}, b'FROM "alice@example.com"'),
        ({"to": "bob"}, b"TO bob"),
        ({"cc": "carol"}, b"CC carol"),
        ({"subject": "quarterly report"}, b'SUBJECT "quarterly report"'),
        ({"text": "invoice"}, b"TEXT invoice"),
        ({"body": "see attached"}, b'BODY "see attached"'),
        ({"subject": 'say "hi" \\o/'}, b'SUBJECT "say \\"hi\\" \\\\o/"'),
        ({"subject": "NIL"}, b'SUBJECT "NIL"'),
        ({"seen": True}, b"SEEN"),
        ({"seen": False}, b"UNSEEN"),
        ({"flagged": True}, b"FLAGGED"),
        ({"flagged": False}, b"UNFLAGGED"),
        ({"answered": True}, b"ANSWERED"),
        ({"answered": False}, b"UNANSWERED"),
        ({"larger": 1000}, b"LARGER 1000"),
        ({"smaller": 0}, b"SMALLER 0"),
        ({"headers": {"X-Ticket": "T-42"}}, b"HEADER X-Ticket T-42"),
        ({"message_id": " <abc@example.com> "}, b'HEADER Message-ID "<abc@example.com>"'),
    ],
)
def test_each_criterion_has_its_key(criteria: dict[str, object], expected: bytes) -> None:
    program = compile_search(SearchQuery(**criteria))  # type: ignore[arg-type]
    assert wire(program.keys) == expected
    assert program.charset is None


def test_criteria_are_anded_in_a_fixed_order() -> None:
    assert (
        keys(from_="alice", subject="hi", seen=False, larger=10) == b"FROM alice SUBJECT hi UNSEEN LARGER 10"
    )


def test_non_ascii_text_is_a_utf8_literal_with_charset() -> None:
    program = compile_search(SearchQuery(subject="Grüße aus Köln", from_="müller@example.de", to="bob"))
    assert program.charset == "UTF-8"
    subject = "Grüße aus Köln".encode()
    sender = "müller@example.de".encode()
    assert wire(program.keys) == (
        b"FROM {%d+}\r\n" % len(sender) + sender + b" TO bob SUBJECT {%d+}\r\n" % len(subject) + subject
    )


def test_cjk_and_header_values_are_literals_too() -> None:
    program = compile_search(SearchQuery(headers={"X-Name": "山田"}))
    assert program.charset == "UTF-8"
    assert wire(program.keys) == b"HEADER X-Name {6+}\r\n" + "山田".encode()


def test_line_breaks_in_text_cannot_end_the_command() -> None:
    program = compile_search(SearchQuery(subject="a\r\nA2 DELETE INBOX"))
    assert isinstance(program.keys[1], Literal) and program.charset is None


def test_dates_are_asked_a_day_wider_and_checked_exactly() -> None:
    since = datetime(2024, 3, 1, 9, 30, tzinfo=UTC)
    before = datetime(2024, 3, 5, 0, 0, tzinfo=timezone(timedelta(hours=2)))
    program = compile_search(SearchQuery(since=since, before=before))
    assert wire(program.keys) == b"SINCE 29-Feb-2024 BEFORE 6-Mar-2024"
    assert program.checks

    def at(when: datetime) -> MessageSummary:
        return MessageSummary(MessageRef("INBOX", "1", "1"), "INBOX", Envelope(), received_at=when)

    assert not program.admits(at(since - timedelta(seconds=1)))
    assert program.admits(at(since))
    assert program.admits(at(before - timedelta(seconds=1)))
    assert not program.admits(at(before))


def test_dates_need_a_time_zone_and_an_order() -> None:
    with pytest.raises(InputError) as naive:
        compile_search(SearchQuery(since=datetime(2024, 3, 1)))
    assert naive.value.details["field"] == "since"
    with pytest.raises(InputError):
        compile_search(
            SearchQuery(since=datetime(2024, 3, 2, tzinfo=UTC), before=datetime(2024, 3, 1, tzinfo=UTC))
        )


def test_attachments_are_checked_on_candidates_except_on_gmail() -> None:
    program = compile_search(SearchQuery(has_attachment=True))
    assert program.keys == (b"ALL",) and program.checks and program.has_attachment is True

    def summary(has: bool | None) -> MessageSummary:
        return MessageSummary(MessageRef("INBOX", "1", "1"), "INBOX", Envelope(), has_attachments=has)

    assert program.admits(summary(True)) and not program.admits(summary(False))
    without = compile_search(SearchQuery(has_attachment=False))
    assert without.admits(summary(False)) and not without.admits(summary(True))

    gmail = compile_search(SearchQuery(has_attachment=True), gmail=True)
    assert wire(gmail.keys) == b'X-GM-RAW "has:attachment"' and not gmail.checks
    assert wire(compile_search(SearchQuery(has_attachment=False), gmail=True).keys) == (
        b'NOT X-GM-RAW "has:attachment"'
    )


@pytest.mark.parametrize(
    ("criteria", "field"),
    [
        ({"from_": ""}, "from"),
        ({"subject": "   "}, "subject"),
        ({"larger": -1}, "larger"),
        ({"smaller": True}, "smaller"),
        ({"headers": {"X Bad": "v"}}, "headers"),
        ({"headers": {"Subject:": "v"}}, "headers"),
        ({"headers": {"Grüße": "v"}}, "headers"),
    ],
)
def test_bad_criteria_are_input_errors(criteria: dict[str, object], field: str) -> None:
    with pytest.raises(InputError) as info:
        compile_search(SearchQuery(**criteria))  # type: ignore[arg-type]
    assert info.value.details["field"] == field


def test_native_is_appended_last_and_anded() -> None:
    program = compile_search(SearchQuery(from_="alice", native="OR  SUBJECT a\tSUBJECT b"))
    assert wire(program.keys) == b"FROM alice OR SUBJECT a SUBJECT b"
    assert program.native


@pytest.mark.parametrize(
    ("native", "expected"),
    [
        ('X-GM-RAW "has:attachment in:sent"', b'X-GM-RAW "has:attachment in:sent"'),
        ("(OR SEEN FLAGGED) NOT DELETED", b"(OR SEEN FLAGGED) NOT DELETED"),
        ('( SUBJECT "a \\"b\\"" )', b'(SUBJECT "a \\"b\\"")'),
        ("HEADER X-Tag x", b"HEADER X-Tag x"),
    ],
)
def test_native_keys_pass_through_normalised(native: str, expected: bytes) -> None:
    assert wire(native_keys(native)) == expected


def test_native_text_that_is_not_ascii_becomes_literals() -> None:
    program = compile_search(SearchQuery(native='(SUBJECT "Grüße") X-GM-RAW "from:山田"'))
    assert program.charset == "UTF-8"
    greeting, name = "Grüße".encode(), "from:山田".encode()
    assert wire(program.keys) == (
        b"(SUBJECT {%d+}\r\n" % len(greeting) + greeting + b") X-GM-RAW {%d+}\r\n" % len(name) + name
    )


@pytest.mark.parametrize(
    "native",
    [
        "SUBJECT a\r\nA1 LOGOUT",
        "SUBJECT a\nx",
        "SUBJECT a\0",
        'SUBJECT "open',
        'SUBJECT "bad \\x escape"',
        "(SEEN",
        "SEEN)",
        ")(",
        "SUBJECT {5}",
        "SUBJECT {5+}",
        "   ",
        "x" * 2001,
    ],
)
def test_native_that_could_break_the_command_is_refused(native: str) -> None:
    with pytest.raises(InputError) as info:
        compile_search(SearchQuery(native=native))
    assert info.value.details["field"] == "native" and info.value.code == "invalid_input"


def test_limits() -> None:
    assert check_limit(1) == 1 and check_limit(500) == 500
    for bad in (0, 501, True):
        with pytest.raises(InputError):
            check_limit(bad)


def test_a_program_without_checks_admits_everything() -> None:
    program = SearchProgram(keys=(b"ALL",))
    assert program.admits(MessageSummary(MessageRef("INBOX", "1", "1"), "INBOX", Envelope()))
