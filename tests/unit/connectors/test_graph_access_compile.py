"""The pure parts of Graph mailbox access and sending: a neutral search as ``$filter`` or KQL
``$search`` (never both, as Graph refuses), listing cursors that cannot point elsewhere, Bcc put
back for sendMail, and Graph's refusals as the send worker reads them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mailport.connectors.graph.access import compile_search, decode_cursor, encode_cursor
from mailport.connectors.graph.models import GraphMessage
from mailport.connectors.graph.transport import hidden_recipients, send_error, with_bcc_recipients
from mailport.connectors.mail import SearchQuery
from mailport.errors import (
    ApiRateLimitedError,
    InputError,
    InvalidCursorError,
    OAuthTokenRejectedError,
    ProviderError,
    SendRefusedError,
    UnsupportedFeatureError,
)
from mailport.messages import parse_message
from mailport.sending.smtp_transport import is_temporary_send_error

BASE = "https://graph.example.test"


def test_filterable_criteria_become_one_filter_led_by_received_date() -> None:
    since = datetime(2024, 3, 1, tzinfo=UTC)
    program = compile_search(
        SearchQuery(
            seen=False,
            flagged=True,
            has_attachment=True,
            since=since,
            from_="ann@example.org",
            message_id="<m1@example.org>",
        )
    )
    assert program.search is None
    assert program.filter == (
        "receivedDateTime ge 2024-03-01T00:00:00Z and isRead eq false and flag/flagStatus eq 'flagged' "
        "and hasAttachments eq true and from/emailAddress/address eq 'ann@example.org' "
        "and internetMessageId eq '<m1@example.org>'"
    )


def test_words_make_a_search_alone_and_the_rest_is_checked_per_result() -> None:
    program = compile_search(
        SearchQuery(subject="invoice", text="2024", from_="ann", seen=True, native="importance:high")
    )
    assert program.filter is None
    assert program.search == 'subject:"invoice" AND "2024" AND from:"ann" AND (importance:high)'
    assert program.checks
    read = GraphMessage.from_json({"id": "a", "isRead": True})
    unread = GraphMessage.from_json({"id": "b", "isRead": False})
    assert program.admits(read) and not program.admits(unread)


def test_an_exact_sender_joins_the_search_when_words_are_asked_too() -> None:
    program = compile_search(SearchQuery(body="hello", from_="ann@example.org", larger=1000))
    assert program.search == 'body:"hello" AND size>1000 AND from:"ann@example.org"'


def test_an_odata_literal_doubles_its_quotes() -> None:
    program = compile_search(SearchQuery(from_="o'neil@example.org"))
    assert program.filter is not None and "eq 'o''neil@example.org'" in program.filter


@pytest.mark.parametrize(
    ("query", "error"),
    [
        (SearchQuery(answered=True), UnsupportedFeatureError),
        (SearchQuery(headers={"X-Ticket": "1"}), UnsupportedFeatureError),
        (SearchQuery(subject="  "), InputError),
        (SearchQuery(native="a\r\nb"), InputError),
        (SearchQuery(since=datetime(2024, 1, 1)), InputError),
    ],
)
def test_what_graph_cannot_search_is_a_clear_422(query: SearchQuery, error: type[Exception]) -> None:
    with pytest.raises(error) as refused:
        compile_search(query)
    assert getattr(refused.value, "http_status", None) == 422


def test_a_cursor_is_tied_to_its_folder_and_to_the_api() -> None:
    link = f"{BASE}/v1.0/me/mailFolders/f1/messages?$skip=50"
    cursor = encode_cursor("INBOX", link, skip=3)
    assert decode_cursor(cursor, "inbox", base_url=BASE) == (link, 3)
    with pytest.raises(InvalidCursorError):
        decode_cursor(cursor, "Archive", base_url=BASE)
    elsewhere = encode_cursor("INBOX", "https://attacker.example/v1.0/me/messages")
    with pytest.raises(InvalidCursorError):
        decode_cursor(elsewhere, "INBOX", base_url=BASE)
    with pytest.raises(InvalidCursorError):
        decode_cursor("not-a-cursor", "INBOX", base_url=BASE)


def test_bcc_recipients_are_put_back_as_a_header_for_sendmail() -> None:
    raw = (
        b"From: me@example.org\r\nTo: Ann <ann@example.org>\r\nCc: bob@example.org\r\n"
        b"Subject: x\r\n\r\nbody\r\n"
    )
    parsed = parse_message(raw, mailbox_id="m", folder="")
    hidden = hidden_recipients(parsed, ["ANN@example.org", "bob@example.org", "carl@example.org"])
    assert hidden == ["carl@example.org"]
    out = with_bcc_recipients(raw, hidden)
    assert out.startswith(raw.split(b"\r\n\r\n")[0] + b"\r\nBcc: carl@example.org\r\n\r\nbody")
    assert with_bcc_recipients(raw, []) == raw


def test_graph_refusals_keep_the_worker_rules() -> None:
    throttled = send_error(
        ApiRateLimitedError("still throttled", server_said="MailboxConcurrency", retry_after=1)
    )
    assert isinstance(throttled, SendRefusedError) and is_temporary_send_error(throttled)
    failing = send_error(ProviderError("HTTP 503", server_said="busy"))
    assert is_temporary_send_error(failing)
    refused = send_error(ProviderError("HTTP 400", server_said="ErrorInvalidRecipients", provider_status=400))
    assert isinstance(refused, SendRefusedError)
    assert not is_temporary_send_error(refused)
    assert refused.server_said == "ErrorInvalidRecipients"
    token = OAuthTokenRejectedError("refused")
    assert send_error(token) is token
