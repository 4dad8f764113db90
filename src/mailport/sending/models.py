"""Sending's plain models: what a caller asks for, what the outbound queue holds, and the
per-mailbox sending settings. No I/O here.

A send goes through these states (``outbound_messages.state``)::

    scheduled ─(send_at reached)─► queued ─(claimed)─► sending ─(before the final ".")─► committing
        │                            ▲   │                 │                               │
        └──────── cancelled ◄────────┘   │                 └─ 4xx / connection error ─► queued (retry later)
                                         └─ 5xx, or too many attempts ─► failed            │
                                                                            250 ─► sent ◄──┘

``committing`` is written (and committed) just before the end of DATA is sent: a process killed
after that is never sent again (at most once after the server may have accepted it; the row
becomes ``sent`` with ``confirmed = False``, RFC 1047's unavoidable window). Before it, a claim
that expired is simply claimed again (at least once up to DATA).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mailport.sending.draft import OutgoingAttachment


class SendState(enum.StrEnum):
    SCHEDULED = "scheduled"  # send_at in the future
    QUEUED = "queued"  # due (now or after a retry delay: next_attempt_at)
    SENDING = "sending"  # claimed by a worker, not yet at the end of DATA
    COMMITTING = "committing"  # the end of DATA is (being) sent: never sent again
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"


CANCELLABLE = frozenset({SendState.SCHEDULED, SendState.QUEUED})
FINAL = frozenset({SendState.SENT, SendState.FAILED, SendState.CANCELLED})


class SentCopyState(enum.StrEnum):
    PENDING = "pending"  # to be stored once sent
    STORED = "stored"
    SKIPPED = "skipped"  # the provider files it itself, or the mailbox said never
    FAILED = "failed"  # gave up after retries (the send itself stays sent)


class SentCopyMode(enum.StrEnum):
    AUTO = "auto"  # store one unless the provider files it itself (Gmail over SMTP)
    ALWAYS = "always"
    NEVER = "never"


@dataclass(frozen=True, slots=True)
class SendingSettings:
    """Per mailbox (``mailboxes.sending``, JSON). ``rate_per_minute``/``rate_per_day``: None takes
    the provider's default (:mod:`mailport.sending.limits`); 0 means no limit."""

    sent_copy: SentCopyMode = SentCopyMode.AUTO
    aliases: tuple[str, ...] = ()  # other From addresses the server lets this account use
    rate_per_minute: int | None = None
    rate_per_day: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "sent_copy": self.sent_copy.value,
            "aliases": list(self.aliases),
            "rate_per_minute": self.rate_per_minute,
            "rate_per_day": self.rate_per_day,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> SendingSettings:
        if not data:
            return cls()
        return cls(
            sent_copy=SentCopyMode(data.get("sent_copy", "auto")),
            aliases=tuple(data.get("aliases") or ()),
            rate_per_minute=data.get("rate_per_minute"),
            rate_per_day=data.get("rate_per_day"),
        )


# --- what a caller asks for --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AttachmentRef:
    """An attachment of a message in the mailbox: ``ref`` (``ref_…`` or ``msg_…``) and the
    attachment's ``id`` as the message view lists it."""

    ref: str
    attachment_id: str
    filename: str | None = None  # overrides the original's name


@dataclass(frozen=True, slots=True)
class ReplyTo:
    """Answer the message ``ref``: recipients, ``Re:`` subject, In-Reply-To/References."""

    ref: str
    all: bool = False  # reply-all: the original's To and Cc too (never the mailbox itself)
    quote: bool = True  # the original, quoted, under the new text


@dataclass(frozen=True, slots=True)
class Forward:
    """Forward the message ``ref``: attached as ``message/rfc822`` or quoted inline."""

    ref: str
    inline: bool = False


@dataclass(frozen=True, slots=True)
class SendRequest:
    """One ``POST …/send`` (structured, or ``raw``), as the service receives it from the API,
    the CLI or the library. Addresses are strings as a person writes them (``Name <a@b>``)."""

    from_: str | None = None  # None: the mailbox address with its From name; else it or an alias
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()
    reply_to_addresses: tuple[str, ...] = ()  # the Reply-To header
    subject: str | None = None
    text: str | None = None
    html: str | None = None
    attachments: tuple[OutgoingAttachment | AttachmentRef, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    reply: ReplyTo | None = None
    forward: Forward | None = None
    raw: bytes | None = field(default=None, repr=False)  # the raw form: everything else unused
    send_at: datetime | None = None
    sent_copy: bool | None = None  # None: the mailbox's setting
    draft_ref: str | None = None  # sending a stored draft: deleted from Drafts once sent


# --- what the queue holds -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SendError:
    """Why the last attempt failed: mailport's error code, the SMTP reply (code and the
    server's own words) when there was one, and whether it will be retried."""

    code: str
    message: str
    smtp_code: int | None = None
    server_said: str | None = None
    temporary: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "smtp_code": self.smtp_code,
            "server_said": self.server_said,
            "temporary": self.temporary,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> SendError | None:
        return None if not data else cls(**data)


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """One row of the outbound queue, without its bytes (``GET …/outbox`` item)."""

    id: str  # snd_…
    tenant_id: str
    mailbox_id: str
    state: SendState
    message_id: str  # without angle brackets
    sender: str  # envelope MAIL FROM
    recipients: tuple[str, ...]  # envelope RCPT TO (Bcc included)
    subject: str | None
    size: int
    send_at: datetime | None
    next_attempt_at: datetime | None
    attempts: int
    last_error: SendError | None
    smtp_reply: str | None  # the server's answer to DATA ("250 2.0.0 Ok: queued as …")
    confirmed: bool  # False: a process stopped after the end of DATA (see the module docstring)
    refused: dict[str, str]  # recipients the server refused while accepting others
    sent_copy: SentCopyState
    sent_copy_ref: str | None
    in_reply_to: str | None  # the Message-ID answered (threading; bounce linking)
    idempotency_key: str | None
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None


@dataclass(frozen=True, slots=True)
class OutboundPage:
    """One page of ``GET …/outbox``, newest first (:mod:`mailport.api.paging` shape)."""

    items: list[OutboundMessage]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class Queued:
    """What ``POST …/send`` answers (202): the send, and whether an earlier request with the
    same Idempotency-Key produced it (then nothing new was queued)."""

    send: OutboundMessage
    replayed: bool = False
