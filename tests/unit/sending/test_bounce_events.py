"""The report events' payloads and keys, from classified corpus messages (pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from mailport.events import EventType, NewEvent
from mailport.messages.bounces import classify
from mailport.sending.bounce_events import report_event, report_key

CORPUS = Path(__file__).parents[2] / "data" / "bounces"
AT = datetime(2026, 12, 5, 9, 3, 12, tzinfo=UTC)


def _event(name: str, send_id: str | None = "snd_1") -> NewEvent | None:
    return report_event(
        classify((CORPUS / name).read_bytes()),
        tenant_id="ten_1",
        mailbox_id="mbx_1",
        scope="INBOX",
        epoch="1700000000",
        item="42",
        ref="ref_x",
        report_message_id="dsn-1@mx.example.com",
        send_id=send_id,
        received_at=AT,
    )


def test_a_bounce_payload_has_the_contract_fields() -> None:
    event = _event("rfc3464-failed-two.eml")
    assert event is not None
    assert event.type == EventType.MESSAGE_BOUNCED
    assert (event.tenant_id, event.mailbox_id) == ("ten_1", "mbx_1")
    assert event.idempotency_key == "bounce:mbx_1:INBOX:1700000000:42"
    assert event.payload == {
        "send_id": "snd_1",
        "message_id": "send-0001@mailport.example.org",
        "bounce_ref": "ref_x",
        "bounce_message_id": "dsn-1@mx.example.com",
        "format": "dsn",
        "reporting_mta": "mx.example.com",
        "recipients": [
            {
                "address": "alice@example.net",
                "action": "failed",
                "status": "5.1.1",
                "diagnostic": "550 5.1.1 <alice@example.net>... User unknown",
                "severity": "hard",
            },
            {
                "address": "bob@example.net",
                "action": "failed",
                "status": "5.2.2",
                "diagnostic": "552 5.2.2 Mailbox full, try again never",
                "severity": "hard",
            },
        ],
        "received_at": "2026-12-05T09:03:12+00:00",
    }


def test_a_delay_is_a_soft_bounce() -> None:
    event = _event("exim-delayed.eml", send_id=None)
    assert event is not None and event.type == EventType.MESSAGE_BOUNCED
    assert event.payload["send_id"] is None
    (jack,) = event.payload["recipients"]
    assert (jack["action"], jack["severity"]) == ("delayed", "soft")


def test_a_complaint_payload() -> None:
    event = _event("arf-abuse.eml")
    assert event is not None
    assert event.type == EventType.MESSAGE_COMPLAINT
    assert event.idempotency_key == "complaint:mbx_1:INBOX:1700000000:42"
    assert event.payload == {
        "send_id": "snd_1",
        "message_id": "send-0011@mailport.example.org",
        "bounce_ref": "ref_x",
        "bounce_message_id": "dsn-1@mx.example.com",
        "feedback_type": "abuse",
        "user_agent": "SomeGenerator/1.0",
        "original_mail_from": "somespammer@example.org",
        "recipients": ["user@example.com", "other@example.com"],
        "arrival_date": "Thu, 3 Dec 2026 10:50:00 +0000",
        "source_ip": "192.0.2.1",
        "reported_domain": "example.org",
        "received_at": "2026-12-05T09:03:12+00:00",
    }


def test_delivery_notices_and_ordinary_mail_make_no_event() -> None:
    assert _event("rfc3464-delivered.eml") is None
    assert _event("out-of-office.eml") is None


def test_keys_always_name_the_scope() -> None:
    assert report_key("bounce", "mbx_1", "INBOX", "7", "9") == "bounce:mbx_1:INBOX:7:9"
    assert report_key("complaint", "mbx_1", "Sent", "7", "9") == "complaint:mbx_1:Sent:7:9"
