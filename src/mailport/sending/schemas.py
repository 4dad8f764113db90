"""Request and response bodies of sending: ``POST /v1/mailboxes/{id}/send`` and the outbox
(``GET …/outbox``, ``GET|DELETE …/outbox/{send_id}``). Shapes: docs/sending.md.

Requests are :class:`~mailport.validation.RequestModel` (unknown fields refused with
``unknown_field``) and turn into the service's :class:`~mailport.sending.models.SendRequest`
(:meth:`SendIn.to_request`), so the API, the CLI and the library (which validate through these
same models) refuse the same input with the same 422. Checked here is what needs no mailbox:
each address on its own (the project's one address rule), header names against the deny-list,
base64 that decodes, a time with its zone. What needs the mailbox (the From alias, the refs of
a reply) is the service's.

:class:`MessageIn` is the structured message alone: the drafts routes take it as it is;
:class:`SendIn` adds the raw form, ``send_at`` and ``sent_copy``.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    field_validator,
    model_validator,
)

from mailport.connectors.base import MessageRef
from mailport.errors import InputError
from mailport.messages.headers import addresses
from mailport.sending.draft import OutgoingAttachment
from mailport.sending.headers import MAX_HEADER_VALUE, check_extra_headers
from mailport.sending.models import (
    AttachmentRef,
    Forward,
    OutboundMessage,
    ReplyTo,
    SendError,
    SendRequest,
    SendState,
    SentCopyState,
)
from mailport.validation import RequestModel, check_text, clean_line, normalize_email

MAX_RECIPIENTS = 500  # per field (to, cc, bcc): an SMTP server accepts 100 to 1000 RCPT per message
MAX_ATTACHMENTS = 100
MAX_HEADERS = 50
MAX_ADDRESS_TEXT = 1000  # "Display Name" <address>

_CONTENT_TYPE = re.compile(r"[\w.+-]+/[\w.+-]+")
_CONTENT_ID = re.compile(r"[!-;=?-~]{1,250}")  # printable ASCII without < and > (compose's rule)
_INGESTED_ID = re.compile(r"msg_[0-9a-z]{26}")
_IDEMPOTENCY_KEY = re.compile(r"[!-~]{1,255}")
_FIELD_NAME = re.compile(r"[!-9;-~]+")  # RFC 5322 ftext


# --------------------------------------------------------------------------- field rules


def check_address(value: str) -> str:
    """One address as a person writes it (``support@example.com``, ``Ann <ann@example.org>``,
    ``"Doe, Ann" <ann@example.org>``): exactly one mailbox whose address passes the project's
    one rule (:func:`mailport.validation.normalize_email`). The text is kept as written (the
    service parses it again), trimmed."""
    value = clean_line(value)
    found, defect = addresses(value)
    if defect or len(found) != 1 or "@" not in found[0].email:
        raise ValueError(f"{value[:80]!r} is not one address such as Ann <ann@example.org>")
    try:
        normalize_email(found[0].email)
    except ValueError as exc:
        raise ValueError(f"{value[:80]!r}: {exc}") from None
    return value


def check_message_ref(value: str) -> str:
    """A message to answer, forward or take an attachment from: a live ``ref_…`` (as the
    messages routes and message.received give it) or an ingested ``msg_…`` id."""
    value = value.strip()
    if _INGESTED_ID.fullmatch(value):
        return value
    try:
        MessageRef.decode(value)
    except InputError:
        raise ValueError(
            "not a message reference: give a `ref` (ref_…) or an ingested message `id` (msg_…)"
        ) from None
    return value


def check_content_type(value: str) -> str:
    value = value.strip().lower()
    if not _CONTENT_TYPE.fullmatch(value):
        raise ValueError("a content type is type/subtype, such as application/pdf")
    return value


def check_content_id(value: str) -> str:
    value = value.strip().removeprefix("<").removesuffix(">")
    if not _CONTENT_ID.fullmatch(value):
        raise ValueError("a Content-ID is printable ASCII without spaces, < or > (referenced as cid:…)")
    return value


def decode_base64(value: str) -> bytes:
    """Standard base64 (line breaks and blanks allowed, as ``base64`` tools wrap it); refuses
    anything else rather than decoding garbage into an attachment."""
    compact = re.sub(r"\s+", "", value)
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not valid base64") from None


def check_idempotency_key(value: str) -> str:
    """1-255 visible ASCII characters (the ``Idempotency-Key`` header)."""
    if not _IDEMPOTENCY_KEY.fullmatch(value):
        raise ValueError("an Idempotency-Key is 1 to 255 visible ASCII characters (no spaces)")
    return value


def aware(value: datetime | None) -> datetime | None:
    """``send_at`` must say its zone: "09:00" alone could be any of 24 hours."""
    if value is not None and value.tzinfo is None:
        raise ValueError("send_at needs a timezone, such as 2026-12-06T09:00:00Z or +01:00")
    return value


def _base64_text(value: str) -> str:
    decode_base64(value)
    return value


def _header_name(value: str) -> str:
    if not _FIELD_NAME.fullmatch(value):
        raise ValueError(f"{value[:100]!r} is not a header name (printable ASCII without spaces or ':')")
    return value


def _header_value(value: str) -> str:
    check_text(value)
    return value


AddressText = Annotated[
    str, StringConstraints(min_length=3, max_length=MAX_ADDRESS_TEXT), AfterValidator(check_address)
]
Addresses = Annotated[list[AddressText], Field(max_length=MAX_RECIPIENTS)]
Ref = Annotated[str, StringConstraints(min_length=5, max_length=4000), AfterValidator(check_message_ref)]
Filename = Annotated[str, StringConstraints(min_length=1, max_length=255), AfterValidator(clean_line)]
ContentType = Annotated[
    str, StringConstraints(min_length=3, max_length=255), AfterValidator(check_content_type)
]
ContentId = Annotated[str, StringConstraints(min_length=1, max_length=252), AfterValidator(check_content_id)]
Base64 = Annotated[str, StringConstraints(min_length=0), AfterValidator(_base64_text)]
Subject = Annotated[str, StringConstraints(max_length=MAX_HEADER_VALUE), AfterValidator(clean_line)]
HeaderName = Annotated[str, StringConstraints(min_length=1, max_length=100), AfterValidator(_header_name)]
HeaderValue = Annotated[str, StringConstraints(max_length=MAX_HEADER_VALUE), AfterValidator(_header_value)]
AttachmentId = Annotated[str, StringConstraints(min_length=1, max_length=100), AfterValidator(clean_line)]
SendAt = Annotated[datetime, AfterValidator(aware)]
IdempotencyKey = Annotated[str, AfterValidator(check_idempotency_key)]

# --------------------------------------------------------------------------- requests


class InlineAttachmentIn(RequestModel):
    """A file sent in the request, base64-encoded. ``content_id`` makes it inline: the HTML
    refers to it as ``cid:<content_id>``."""

    filename: Filename
    content_type: ContentType = "application/octet-stream"
    content_base64: Base64 = Field(description="The file's bytes, standard base64.")
    content_id: ContentId | None = None

    def to_model(self) -> OutgoingAttachment:
        return OutgoingAttachment(
            filename=self.filename,
            content_type=self.content_type,
            data=decode_base64(self.content_base64),
            content_id=self.content_id,
        )


class RefAttachmentIn(RequestModel):
    """An attachment of a message in the mailbox, copied without passing through the client."""

    ref: Ref = Field(description="The message: a `ref` (ref_…) or an ingested message `id` (msg_…).")
    attachment_id: AttachmentId = Field(
        description="The attachment's `index` as GET /v1/mailboxes/{id}/messages/{ref} lists it."
    )
    filename: Filename | None = Field(None, description="A new name; null keeps the original's.")

    def to_model(self) -> AttachmentRef:
        return AttachmentRef(ref=self.ref, attachment_id=self.attachment_id, filename=self.filename)


def _attachment_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "ref" if "ref" in value else "inline"
    return "ref" if isinstance(value, RefAttachmentIn) else "inline"


AttachmentIn = Annotated[
    Annotated[InlineAttachmentIn, Tag("inline")] | Annotated[RefAttachmentIn, Tag("ref")],
    Discriminator(_attachment_kind),
]


class ReplyIn(RequestModel):
    ref: Ref = Field(description="The message answered: a `ref` (ref_…) or a `msg_…` id.")
    all: bool = Field(False, description="Reply-all: the original's To and Cc too (never the mailbox).")
    quote: bool = Field(True, description="The original, quoted, under the new text.")

    def to_model(self) -> ReplyTo:
        return ReplyTo(ref=self.ref, all=self.all, quote=self.quote)


class ForwardIn(RequestModel):
    ref: Ref = Field(description="The message forwarded: a `ref` (ref_…) or a `msg_…` id.")
    inline: bool = Field(False, description="Quoted in the body instead of attached as message/rfc822.")

    def to_model(self) -> Forward:
        return Forward(ref=self.ref, inline=self.inline)


_STRUCTURED = (
    "from_",
    "to",
    "cc",
    "bcc",
    "reply_to",
    "subject",
    "text",
    "html",
    "attachments",
    "headers",
    "reply",
    "forward",
)


class MessageIn(RequestModel):
    """A message to compose (the structured form). Recipients may be left out only with
    ``reply``, which fills them from the original."""

    from_: AddressText | None = Field(
        None,
        alias="from",
        description="The mailbox's address or one of its aliases (settings.sending.aliases); "
        "null: the mailbox address with its From name.",
    )
    to: Addresses = Field(default_factory=list)
    cc: Addresses = Field(default_factory=list)
    bcc: Addresses = Field(default_factory=list, description="Sent to, never written in the message.")
    reply_to: Addresses = Field(default_factory=list, description="The Reply-To header.")
    subject: Subject | None = Field(None, description="null with reply/forward: Re:/Fwd: and the original's.")
    text: str | None = Field(None, description="The plain-text body.")
    html: str | None = Field(
        None, description="The HTML body; a text part is made from it when text is null."
    )
    attachments: list[AttachmentIn] = Field(default_factory=list, max_length=MAX_ATTACHMENTS)
    headers: dict[HeaderName, HeaderValue] = Field(
        default_factory=dict,
        max_length=MAX_HEADERS,
        description="Extra headers (X-Ticket: 42). Those mailport writes or only servers add "
        "(From, To, Subject, Message-ID, Received, Content-* …) are refused.",
    )
    reply: ReplyIn | None = None
    forward: ForwardIn | None = None

    model_config = ConfigDict(populate_by_name=True)

    @field_validator("headers")
    @classmethod
    def _allowed_headers(cls, value: dict[str, str]) -> dict[str, str]:
        try:
            check_extra_headers(tuple(value.items()))
        except InputError as exc:
            raise ValueError(exc.message) from None
        return value

    @model_validator(mode="after")
    def _whole_message(self) -> MessageIn:
        self.check_structured()
        return self

    def check_structured(self) -> None:
        if self.reply is not None and self.forward is not None:
            raise ValueError("give reply or forward, not both")
        if self.reply is None and not (self.to or self.cc or self.bcc):
            raise ValueError("give at least one recipient (to, cc or bcc)")

    def request_fields(self) -> dict[str, Any]:
        """The :class:`SendRequest` fields of the structured message."""
        return {
            "from_": self.from_,
            "to": tuple(self.to),
            "cc": tuple(self.cc),
            "bcc": tuple(self.bcc),
            "reply_to_addresses": tuple(self.reply_to),
            "subject": self.subject,
            "text": self.text,
            "html": self.html,
            "attachments": tuple(a.to_model() for a in self.attachments),
            "headers": tuple(self.headers.items()),
            "reply": self.reply.to_model() if self.reply else None,
            "forward": self.forward.to_model() if self.forward else None,
        }

    def to_request(self) -> SendRequest:
        return SendRequest(**self.request_fields())


class SendIn(MessageIn):
    """``POST …/send``: the structured form, or ``raw`` (the message's RFC 5322 bytes,
    base64) alone; either with ``send_at`` and ``sent_copy``."""

    raw: Base64 | None = Field(
        None,
        description="The whole message (RFC 5322), standard base64; excludes every structured field. "
        "Bcc is stripped, Message-ID and Date added when missing.",
    )
    send_at: SendAt | None = Field(None, description="Send at this time (with its zone); null: now.")
    sent_copy: bool | None = Field(
        None, description="Store a copy in Sent (true/false); null: the mailbox's setting."
    )

    def check_structured(self) -> None:
        if self.raw is None:
            super().check_structured()
            return
        given = sorted(
            ("from" if name == "from_" else name) for name in self.model_fields_set & set(_STRUCTURED)
        )
        if given:
            raise ValueError(f"raw excludes the structured fields: leave out {', '.join(given)}")
        if not self.raw.strip():
            raise ValueError("raw is empty: give the message's bytes, base64-encoded")

    def raw_bytes(self) -> bytes | None:
        return None if self.raw is None else decode_base64(self.raw)

    def to_request(self) -> SendRequest:
        if self.raw is not None:
            return SendRequest(raw=self.raw_bytes(), send_at=self.send_at, sent_copy=self.sent_copy)
        return SendRequest(**self.request_fields(), send_at=self.send_at, sent_copy=self.sent_copy)


# --------------------------------------------------------------------------- responses


class SendErrorOut(BaseModel):
    code: str = Field(description="mailport's error code (smtp_rejected, connect_failed …)")
    message: str
    smtp_code: int | None = Field(description="The SMTP reply code, when the server answered.")
    server_said: str | None = Field(description="The server's own words.")
    temporary: bool = Field(description="true: it will be tried again (next_attempt_at).")

    @classmethod
    def from_model(cls, error: SendError) -> SendErrorOut:
        return cls.model_validate(error.to_json())


class OutboundOut(BaseModel):
    """One send of the outbound queue."""

    id: str = Field(description="snd_…")
    mailbox_id: str
    state: SendState
    message_id: str = Field(description="The Message-ID, without angle brackets.")
    from_: str = Field(alias="from", description="The envelope sender (MAIL FROM).")
    recipients: list[str] = Field(description="The envelope recipients (Bcc included).")
    subject: str | None
    size: int = Field(description="Bytes sent (Bcc stripped).")
    send_at: datetime | None
    next_attempt_at: datetime | None = Field(description="When a queued send is (re)tried.")
    attempts: int
    last_error: SendErrorOut | None
    smtp_reply: str | None = Field(description="The server's answer to the message (250 …).")
    confirmed: bool = Field(
        description="false: the process stopped after the end of the message, before the "
        "server's answer was recorded (sent at most once, maybe not at all)."
    )
    refused: dict[str, str] = Field(description="Recipients the server refused while accepting others.")
    sent_copy: SentCopyState
    sent_copy_ref: str | None = Field(description="The copy in Sent, when stored and the server told.")
    in_reply_to: str | None = Field(description="The Message-ID answered.")
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None

    model_config = ConfigDict(populate_by_name=True)

    @classmethod
    def from_model(cls, send: OutboundMessage) -> OutboundOut:
        return cls(
            id=send.id,
            mailbox_id=send.mailbox_id,
            state=send.state,
            message_id=send.message_id,
            from_=send.sender,
            recipients=list(send.recipients),
            subject=send.subject,
            size=send.size,
            send_at=send.send_at,
            next_attempt_at=send.next_attempt_at,
            attempts=send.attempts,
            last_error=SendErrorOut.from_model(send.last_error) if send.last_error else None,
            smtp_reply=send.smtp_reply,
            confirmed=send.confirmed,
            refused=dict(send.refused),
            sent_copy=send.sent_copy,
            sent_copy_ref=send.sent_copy_ref,
            in_reply_to=send.in_reply_to,
            created_at=send.created_at,
            updated_at=send.updated_at,
            sent_at=send.sent_at,
        )

    def to_json(self) -> dict[str, Any]:
        """The API's JSON (``from``, not ``from_``), for the CLI's ``--json``."""
        data: dict[str, Any] = self.model_dump(mode="json", by_alias=True)
        return data


class OutboxPage(BaseModel):
    items: list[OutboundOut] = Field(description="Newest first.")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null at the end")
