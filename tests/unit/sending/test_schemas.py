"""The send API's request and response bodies (:mod:`mailport.sending.schemas`): what a
request may say, what it becomes for the service, and the outbox item's JSON."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from mailport.connectors.base import MessageRef
from mailport.sending.draft import OutgoingAttachment
from mailport.sending.models import (
    AttachmentRef,
    Forward,
    OutboundMessage,
    ReplyTo,
    SendError,
    SendState,
    SentCopyState,
)
from mailport.sending.schemas import (
    ForwardIn,
    InlineAttachmentIn,
    MessageIn,
    OutboundOut,
    RefAttachmentIn,
    ReplyIn,
    SendIn,
    check_idempotency_key,
)
from mailport.validation import RequestModel

REF = MessageRef("INBOX", "1700000000", "42").encode()
MSG_ID = "msg_01hzy7q0000000000000000000"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def attached(**attachment: Any) -> dict[str, Any]:
    return {"to": ["a@example.org"], "attachments": [attachment]}


def refused(body: dict[str, Any]) -> tuple[str, str]:
    """The first error of ``body``: its dotted location and message."""
    with pytest.raises(ValidationError) as caught:
        SendIn.model_validate(body)
    first = caught.value.errors()[0]
    return ".".join(str(p) for p in first["loc"]), first["msg"]


def test_every_request_model_refuses_unknown_fields() -> None:
    for model in (SendIn, MessageIn, InlineAttachmentIn, RefAttachmentIn, ReplyIn, ForwardIn):
        assert issubclass(model, RequestModel), model
    assert refused({"to": ["a@example.org"], "priority": "high"}) == (
        "priority",
        "Extra inputs are not permitted",
    )


def test_a_structured_request_becomes_the_services_request() -> None:
    body = SendIn.model_validate(
        {
            "from": "Support <support@example.com>",
            "to": ["Ann <ann@example.org>", '"Doe, John" <john@example.org>'],
            "cc": ["cc@example.org"],
            "bcc": ["hidden@example.org"],
            "reply_to": ["help@example.com"],
            "subject": "Hello",
            "text": "Hi Ann",
            "html": "<p>Hi Ann</p>",
            "attachments": [
                {"filename": "a.pdf", "content_type": "Application/PDF", "content_base64": b64(b"%PDF")},
                {"filename": "logo.png", "content_type": "image/png", "content_base64": b64(b"PNG"),
                 "content_id": "<logo@x>"},
                {"ref": REF, "attachment_id": "2", "filename": "copy.txt"},
            ],
            "headers": {"X-Ticket": "42"},
            "reply": {"ref": MSG_ID, "all": True},
            "send_at": "2026-12-06T09:00:00+01:00",
            "sent_copy": False,
        }
    )  # fmt: skip
    request = body.to_request()
    assert request.from_ == "Support <support@example.com>"
    assert request.to == ("Ann <ann@example.org>", '"Doe, John" <john@example.org>')
    assert request.cc == ("cc@example.org",) and request.bcc == ("hidden@example.org",)
    assert request.reply_to_addresses == ("help@example.com",)
    assert request.attachments == (
        OutgoingAttachment("a.pdf", "application/pdf", b"%PDF"),
        OutgoingAttachment("logo.png", "image/png", b"PNG", content_id="logo@x"),
        AttachmentRef(REF, "2", "copy.txt"),
    )
    assert request.headers == (("X-Ticket", "42"),)
    assert request.reply == ReplyTo(MSG_ID, all=True, quote=True) and request.forward is None
    assert request.send_at == datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
    assert request.sent_copy is False and request.raw is None


def test_the_raw_form_excludes_the_structured_fields() -> None:
    source = b"From: a@example.com\r\nTo: b@example.org\r\nSubject: x\r\n\r\nhi\r\n"
    request = SendIn.model_validate({"raw": b64(source), "sent_copy": True}).to_request()
    assert request.raw == source and request.sent_copy is True and request.to == ()
    where, says = refused({"raw": b64(source), "to": ["b@example.org"], "subject": "x"})
    assert where == "" and "raw excludes the structured fields: leave out subject, to" in says
    assert "not valid base64" in refused({"raw": "@@not base64@@"})[1]
    assert "raw is empty" in refused({"raw": ""})[1]


def test_a_forward_needs_recipients_a_reply_does_not() -> None:
    assert SendIn.model_validate({"reply": {"ref": REF}}).to_request().reply == ReplyTo(REF)
    assert "at least one recipient" in refused({"forward": {"ref": REF}})[1]
    assert "at least one recipient" in refused({"subject": "x"})[1]
    forward = SendIn.model_validate({"to": ["a@example.org"], "forward": {"ref": REF, "inline": True}})
    assert forward.to_request().forward == Forward(REF, inline=True)
    assert (
        "reply or forward, not both"
        in refused({"to": ["a@example.org"], "reply": {"ref": REF}, "forward": {"ref": REF}})[1]
    )


@pytest.mark.parametrize(
    ("body", "where", "says"),
    [
        ({"to": ["not an address"]}, "to.0", "is not one address"),
        ({"to": ["a@example.org, b@example.org"]}, "to.0", "is not one address"),
        ({"to": ["Ann <ann@localhost>"]}, "to.0", "not a valid email address"),
        ({"to": ["a@example.org\r\nBcc: x@evil.example"]}, "to.0", "line breaks"),
        ({"to": "a@example.org"}, "to", "valid list"),
        ({"to": ["a@example.org"], "from": "nobody"}, "from", "is not one address"),
        ({"to": ["a@example.org"], "subject": "a\nBcc: x@evil.example"}, "subject", "line breaks"),
        ({"to": ["a@example.org"], "headers": {"Bcc": "x@evil.example"}}, "headers", "cannot be set"),
        ({"to": ["a@example.org"], "headers": {"Content-Type": "text/x"}}, "headers", "cannot be set"),
        ({"to": ["a@example.org"], "headers": {"X Bad": "1"}}, "headers.X Bad.[key]", "not a header name"),
        ({"to": ["a@example.org"], "headers": {"X-A": "1\r\nBcc: x@evil.example"}}, "headers", "line break"),
        ({"to": ["a@example.org"], "send_at": "2026-12-06T09:00:00"}, "send_at", "needs a timezone"),
        ({"to": ["a@example.org"], "sent_copy": "maybe"}, "sent_copy", "valid boolean"),
        ({"to": ["a@example.org"], "reply": {"ref": "ref_nonsense!"}}, "reply.ref", "not a message ref"),
        (attached(filename="x", content_base64="@@"), "attachments.0.inline.content_base64", "base64"),
        (attached(filename="x", content_type="pdf", content_base64=""),
         "attachments.0.inline.content_type", "type/subtype"),
        (attached(filename="a\nb", content_base64=""), "attachments.0.inline.filename", "line breaks"),
        (attached(filename="x", content_base64="", content_id="a b"),
         "attachments.0.inline.content_id", "Content-ID"),
        (attached(ref=REF), "attachments.0.ref.attachment_id", "Field required"),
        (attached(ref=REF, attachment_id="1", data="x"), "attachments.0.ref.data", "Extra inputs"),
    ],
)  # fmt: skip
def test_bad_input_is_refused_with_its_field(body: dict[str, Any], where: str, says: str) -> None:
    got_where, got_says = refused(body)
    assert (got_where, says in got_says) == (where, True), got_says


@pytest.mark.parametrize("key", ["k", "order-42/attempt:1", "x" * 255, "~!@#$%^&*()"])
def test_idempotency_keys_are_visible_ascii(key: str) -> None:
    assert check_idempotency_key(key) == key


@pytest.mark.parametrize("key", ["", "x" * 256, "has space", "tab\t", "ünicode", "line\nbreak"])
def test_other_idempotency_keys_are_refused(key: str) -> None:
    with pytest.raises(ValueError, match="1 to 255 visible ASCII"):
        check_idempotency_key(key)


def test_the_outbox_item_is_the_documented_json() -> None:
    when = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)
    send = OutboundMessage(
        id="snd_1", tenant_id="ten_1", mailbox_id="mbx_1", state=SendState.QUEUED,
        message_id="abc@example.com", sender="support@example.com",
        recipients=("ann@example.org", "hidden@example.org"), subject="Hello", size=1234,
        send_at=None, next_attempt_at=when, attempts=1,
        last_error=SendError("smtp_rejected", "the server refused", 451, "4.3.0 try later", True),
        smtp_reply=None, confirmed=True, refused={}, sent_copy=SentCopyState.PENDING, sent_copy_ref=None,
        in_reply_to=None, idempotency_key="k", created_at=when, updated_at=when, sent_at=None,
    )  # fmt: skip
    out = OutboundOut.from_model(send).to_json()
    assert out == {
        "id": "snd_1", "mailbox_id": "mbx_1", "state": "queued", "message_id": "abc@example.com",
        "from": "support@example.com", "recipients": ["ann@example.org", "hidden@example.org"],
        "subject": "Hello", "size": 1234, "send_at": None, "next_attempt_at": "2026-12-05T10:00:00Z",
        "attempts": 1,
        "last_error": {"code": "smtp_rejected", "message": "the server refused", "smtp_code": 451,
                       "server_said": "4.3.0 try later", "temporary": True},
        "smtp_reply": None, "confirmed": True, "refused": {}, "sent_copy": "pending", "sent_copy_ref": None,
        "in_reply_to": None, "created_at": "2026-12-05T10:00:00Z", "updated_at": "2026-12-05T10:00:00Z",
        "sent_at": None,
    }  # fmt: skip
    assert "idempotency_key" not in out and "tenant_id" not in out


def test_message_in_is_the_send_body_without_the_send_options() -> None:
    fields: set[str] = set(MessageIn.model_fields)
    assert set(SendIn.model_fields) - fields == {"raw", "send_at", "sent_copy"}
    assert issubclass(SendIn, MessageIn) and issubclass(MessageIn, BaseModel)
    with pytest.raises(ValidationError):
        MessageIn.model_validate({"to": ["a@example.org"], "send_at": "2026-12-06T09:00:00Z"})
