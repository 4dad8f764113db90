"""The one-line form of ``mailport events tail``: a summary a person can scan, for every type,
from the payloads the docs show (docs/webhooks.md), and one line whatever the payload holds."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mailport.cli.events import SUMMARY_WIDTH, line, summary
from mailport.delivery.models import EVENT_TYPES
from mailport.events import Event

SUMMARIES = [
    (
        "message.received",
        {"subject": "Zimmer?", "from": [{"name": "Jörg", "email": "j@example.de"}], "folder": "INBOX"},
        "'Zimmer?' from j@example.de",
    ),
    ("message.received", {"subject": "", "from": [], "folder": "Sent"}, "'(no subject)' from ? in Sent"),
    (
        "message.sent",
        {"subject": "Hello", "recipients": ["ann@example.org", "bob@example.org"]},
        "'Hello' to ann@example.org, bob@example.org",
    ),
    (
        "message.send_failed",
        {"subject": "Hello", "recipients": ["ann@example.org"], "error": {"code": "smtp_rejected"}},
        "'Hello' to ann@example.org: smtp_rejected",
    ),
    (
        "message.bounced",
        {"format": "dsn", "recipients": [{"address": "ann@example.org", "action": "failed"}]},
        "dsn ann@example.org",
    ),
    (
        "message.complaint",
        {"feedback_type": "abuse", "recipients": ["user@example.org"]},
        "abuse user@example.org",
    ),
    (
        "message.updated",
        {"folder": "INBOX", "ref": "ref_1", "flags": ["seen", "$Work"]},
        "INBOX ref_1 [seen, $Work]",
    ),
    ("message.deleted", {"folder": "INBOX", "ref": "ref_1"}, "INBOX ref_1"),
    ("folder.created", {"path": "INBOX.Größe"}, "INBOX.Größe"),
    ("contact.created", {"name": "Ann", "email": "ann@example.org"}, "Ann ann@example.org"),
    ("contact.deleted", {"email": "ann@example.org"}, "ann@example.org"),
    (
        "webhook.disabled",
        {"webhook_id": "whk_1", "url": "https://app.example.com/h", "reason": "dead letters"},
        "whk_1 https://app.example.com/h: dead letters",
    ),
    ("mailbox.error", {"error": "auth_failed", "detail": "wrong password"}, "auth_failed: wrong password"),
    ("mailbox.reauth_required", {"error": "oauth_token_rejected", "detail": None}, "oauth_token_rejected"),
    ("mailbox.connected", {"folder": "INBOX"}, "INBOX"),
    ("mailbox.reset", {}, ""),
]


@pytest.mark.parametrize(("event_type", "data", "expected"), SUMMARIES)
def test_summary(event_type: str, data: dict[str, object], expected: str) -> None:
    assert summary(event_type, data) == expected


def test_every_type_has_a_line_even_from_an_unexpected_payload() -> None:
    for event_type in EVENT_TYPES:
        for data in ({}, {"error": None, "from": "not a list", "recipients": 7, "flags": None}):
            text = line(_event(event_type, data))
            assert "\n" not in text and event_type in text and "None" not in text


def test_a_line_is_one_line_and_bounded() -> None:
    text = line(_event("message.received", {"subject": "a\r\nb" + "x" * 500, "from": []}))
    seq, when, type_, mailbox, *words = text.split()
    assert (seq, when, type_, mailbox) == ("42", "2026-12-05T09:30:00Z", "message.received", "mbx_1")
    assert words[0].startswith("'a")  # the subject's CR LF shown escaped, on this line
    assert "\n" not in text and len(" ".join(words)) <= SUMMARY_WIDTH


def _event(event_type: str, data: dict[str, object]) -> Event:
    return Event(
        seq=42,
        id="evt_1",
        tenant_id="ten_1",
        mailbox_id="mbx_1",
        type=event_type,
        idempotency_key="k",
        payload=data,
        created_at=datetime(2026, 12, 5, 9, 30, tzinfo=UTC),
        accepted_at=None,
    )
