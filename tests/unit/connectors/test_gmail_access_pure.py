"""The Gmail API's pure translations: SearchQuery -> Gmail ``q`` (every criterion, refusals),
the Bcc written back from the envelope, the ids a reply answers, labels as folders."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mailport.connectors.folders import Role
from mailport.connectors.gmail import labels as gl
from mailport.connectors.gmail.access import _has_attachments, decode_cursor, encode_cursor
from mailport.connectors.gmail.models import Label
from mailport.connectors.gmail.search import compile_q
from mailport.connectors.gmail.transport import reply_targets, with_envelope
from mailport.connectors.mail import SearchQuery
from mailport.errors import CursorExpiredError, InputError, InvalidCursorError, UnsupportedFeatureError


def test_every_criterion_becomes_its_gmail_operator() -> None:
    since = datetime(2024, 3, 1, tzinfo=UTC)
    before = datetime(2024, 3, 2, 12, tzinfo=UTC)
    q = compile_q(
        SearchQuery(
            from_="Jörg Müller",
            to="anna@example.test",
            cc="carla",
            subject='say "hi" now',
            text="invoice",
            body="total",
            since=since,
            before=before,
            seen=False,
            flagged=True,
            has_attachment=True,
            larger=1000,
            smaller=5_000_000,
            message_id="<abc@example.test>",
            native="in:anywhere OR label:work",
        )
    )
    assert q == (
        'from:"Jörg Müller" to:"anna@example.test" cc:"carla" subject:"say hi now" "invoice" "total" '
        f"rfc822msgid:abc@example.test after:{int(since.timestamp()) - 1} before:{int(before.timestamp())} "
        "is:unread is:starred has:attachment larger:1000 smaller:5000000 (in:anywhere OR label:work)"
    )
    assert compile_q(SearchQuery(seen=True, flagged=False, has_attachment=False)) == (
        "is:read -is:starred -has:attachment"
    )
    assert compile_q(SearchQuery(native="from:x OR from:y")) == "from:x OR from:y"  # as it is
    assert compile_q(SearchQuery()) == ""


@pytest.mark.parametrize(
    ("query", "error", "field"),
    [
        (SearchQuery(answered=True), UnsupportedFeatureError, None),
        (SearchQuery(headers={"X-Ticket": "42"}), UnsupportedFeatureError, None),
        (SearchQuery(subject=" "), InputError, "subject"),
        (SearchQuery(from_="a\nb"), InputError, "from"),
        (SearchQuery(larger=-1), InputError, "larger"),
        (SearchQuery(since=datetime(2024, 3, 1)), InputError, "since"),
        (
            SearchQuery(since=datetime(2024, 3, 2, tzinfo=UTC), before=datetime(2024, 3, 1, tzinfo=UTC)),
            InputError,
            "since",
        ),
        (SearchQuery(native="  "), InputError, "native"),
        (SearchQuery(native="a\r\nb"), InputError, "native"),
        (SearchQuery(message_id="<a b>"), InputError, "message_id"),
    ],
)
def test_what_gmail_cannot_search_is_refused(
    query: SearchQuery, error: type[Exception], field: str | None
) -> None:
    with pytest.raises(error) as refused:
        compile_q(query)
    if field is not None:
        assert refused.value.details["field"] == field  # type: ignore[attr-defined]
    else:
        assert "Gmail" in str(refused.value)


RAW = (
    b"From: me@gmail.test\r\nTo: Ann <ann@example.test>\r\nCc: bob@example.test\r\nSubject: x\r\n\r\nbody\r\n"
)


def test_envelope_recipients_no_header_names_go_back_as_bcc() -> None:
    same = with_envelope(RAW, ("ann@example.test", "BOB@example.test"))
    assert same == RAW
    with_boss = with_envelope(RAW, ("ann@example.test", "bob@example.test", "boss@example.test", "c@x.test"))
    head, body = with_boss.split(b"\r\n\r\n", 1)
    assert head.endswith(b"\r\nBcc: boss@example.test,\r\n c@x.test") and body == b"body\r\n"
    with pytest.raises(UnsupportedFeatureError) as refused:
        with_envelope(RAW, ("ann@example.test",))  # Gmail would still send to bob
    assert "bob@example.test" in refused.value.message


def test_a_reply_names_its_original_by_in_reply_to_then_references() -> None:
    raw = b"In-Reply-To: <b@x>\r\nReferences: <a@x>\r\n <b@x>\r\nSubject: Re\r\n\r\n"
    assert reply_targets(raw) == ["b@x"]
    assert reply_targets(b"References: <a@x> <c@x>\r\n\r\n") == ["c@x"]
    assert reply_targets(b"Subject: new\r\n\r\n") == []


def test_labels_are_folders_with_roles_and_nesting() -> None:
    known = gl.Labels.of(
        [
            Label("Label_2", "Work/Clients", "user"),
            Label("UNREAD", "UNREAD", "system"),
            Label("SENT", "SENT", "system"),
            Label("INBOX", "INBOX", "system"),
            Label("Label_1", "Work", "user"),
        ]
    )
    folders = [gl.folder(label) for label in known.folders()]
    assert [(f.path, f.name, f.role) for f in folders] == [
        ("INBOX", "INBOX", Role.INBOX),
        ("SENT", "SENT", Role.SENT),
        ("Work", "Work", None),
        ("Work/Clients", "Clients", None),
    ]
    assert known.find("inbox") is known.by_id["INBOX"] and known.find("work") is None
    assert gl.contains(["INBOX", "UNREAD"], "INBOX")
    assert not gl.contains(["INBOX", "TRASH"], "INBOX") and gl.contains(["INBOX", "TRASH"], "TRASH")
    assert gl.home(["Label_2", "SENT"], known) is known.by_id["SENT"]
    assert gl.home(["UNREAD"], known) is None  # archived


def test_attachments_from_the_top_content_type() -> None:
    assert _has_attachments("multipart/mixed; boundary=x") is True
    assert _has_attachments("application/pdf") is True
    assert _has_attachments("text/plain; charset=utf-8") is False
    assert _has_attachments("multipart/alternative; boundary=y") is False
    assert _has_attachments(None) is False


def test_cursors_belong_to_their_label() -> None:
    work = Label("Label_1", "Work", "user")
    cursor = encode_cursor("Work", "Label_1", "50")
    assert decode_cursor(cursor, "Work", work) == "50"
    with pytest.raises(InvalidCursorError):
        decode_cursor(cursor, "INBOX", Label("INBOX", "INBOX", "system"))
    with pytest.raises(CursorExpiredError):
        decode_cursor(cursor, "Work", Label("Label_9", "Work", "user"))
    with pytest.raises(InvalidCursorError):
        decode_cursor("garbage!", "Work", work)
