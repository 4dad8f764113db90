"""The pure parts of drafts and the Sent copy: which folder has a role when several claim it,
Message-IDs compared without brackets, Bcc kept in a stored draft, and a stored draft's bytes as
they are sent (its Date and mail clients' draft headers left out, continuation lines included)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mailport.connectors.folders import Folder, Role, role_of
from mailport.sending.drafts import _bcc_fields, sendable, with_bcc
from mailport.sending.models import SendRequest
from mailport.sending.sent_copy import appended_since, bare, pick_folder


def folder(path: str, role: Role | None, *, selectable: bool = True) -> Folder:
    return Folder(path, "/", path.rsplit("/", 1)[-1], role, None, None, True, selectable)


def test_a_folder_the_server_marks_wins_over_one_that_only_has_the_name() -> None:
    named = folder("Sent", role_of("Sent", delimiter="/"))
    marked = folder("Gesendete Objekte", role_of("Gesendete Objekte", delimiter="/", flags=("\\Sent",)))
    assert named.role is marked.role is Role.SENT
    assert pick_folder([named, marked], Role.SENT) == "Gesendete Objekte"
    assert pick_folder([named], Role.SENT) == "Sent"
    assert pick_folder([folder("Sent", Role.SENT, selectable=False)], Role.SENT) is None
    assert pick_folder([named], Role.DRAFTS) is None


def test_message_ids_compare_without_brackets_and_blanks() -> None:
    assert bare(" <abc@example.com> ") == bare("abc@example.com") == "abc@example.com"


def test_the_structured_bcc_is_written_into_the_draft() -> None:
    request = SendRequest(to=("ann@example.org",), bcc=("Boss <boss@example.com>", "Jörg <j@example.com>"))
    fields = _bcc_fields(request)
    assert fields == [b"Bcc: Boss <boss@example.com>,\r\n =?utf-8?b?SsO2cmc=?= <j@example.com>\r\n"]
    raw = b"From: a@example.com\r\nTo: ann@example.org\r\n\r\nBody\r\n"
    assert with_bcc(raw, fields) == (
        b"From: a@example.com\r\nTo: ann@example.org\r\n" + fields[0] + b"\r\nBody\r\n"
    )
    assert with_bcc(raw, []) == raw
    assert _bcc_fields(SendRequest(to=("ann@example.org",))) == []


def test_a_raw_drafts_bcc_fields_are_kept_as_written() -> None:
    raw = (
        b"From: a@example.com\r\nBcc: x@example.com,\r\n y@example.com\r\nTo: b@example.com\r\n\r\n"
        b"Bcc: not a header\r\n"
    )
    assert _bcc_fields(SendRequest(raw=raw)) == [b"Bcc: x@example.com,\r\n y@example.com\r\n"]


def test_a_stored_draft_is_sent_without_its_date_and_draft_headers() -> None:
    draft = (
        b"From: a@example.com\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
        b"X-Mozilla-Draft-Info: internal/draft;\r\n vcard=0; receipt=0\r\n"
        b"X-Uniform-Type-Identifier: com.apple.mail-draft\r\nSubject: Hi\r\n"
        b"Bcc: boss@example.com\r\n\r\nDate: stays in the body\r\n"
    )
    assert sendable(draft) == (
        b"From: a@example.com\r\nSubject: Hi\r\nBcc: boss@example.com\r\n\r\nDate: stays in the body\r\n"
    )
    headers_only = b"From: a@example.com\r\nDate: x\r\n"
    assert sendable(headers_only) == b"From: a@example.com\r\n"


def test_an_earlier_copy_is_looked_for_from_two_days_before_the_message_was_written() -> None:
    now = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
    written = b"From: a@example.com\r\nDate: Fri, 04 Dec 2026 10:00:00 +0100\r\n\r\nDate: not this one\r\n"
    assert appended_since(written, now=now) == datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
    folded = b"From: a@example.com\r\nDate:\r\n Fri, 04 Dec 2026 10:00:00 +0100\r\n\r\nbody"
    assert appended_since(folded, now=now) == datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
    future = b"Date: Mon, 01 Jan 2035 00:00:00 +0000\r\n\r\n"  # a Date ahead of the clock counts as now
    assert appended_since(future, now=now) == now - timedelta(days=2)
    for unusable in (
        b"From: a@example.com\r\n\r\nDate: Fri, 04 Dec 2026 10:00:00 +0100\r\n",
        b"Date: soon\r\n\r\n",
    ):
        assert appended_since(unusable, now=now) is None  # the whole folder is searched
