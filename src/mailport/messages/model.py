"""The normalized message: what the host application receives as a ``message.received`` payload.

Plain frozen dataclasses with no I/O, so connectors (IMAP now, Gmail API and Graph later), the
store and delivery all speak the same shape. ``to_dict()`` gives the JSON-ready payload
(documented field by field in ``docs/messages.md``); the raw source is kept on the object
(``raw``) but never put in the payload: it is served by ``GET …/messages/{id}/raw``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Disposition = Literal["inline", "attachment"]


@dataclass(frozen=True, slots=True)
class Address:
    """One mailbox of an address header: display name (decoded) and address."""

    name: str
    email: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "email": self.email}


@dataclass(frozen=True, slots=True)
class Attachment:
    """An attachment's description; its content is fetched with ``attachment_content(raw, index)``."""

    index: int
    section: str
    filename: str | None
    content_type: str
    size: int
    content_id: str | None
    disposition: Disposition

    def to_dict(self) -> dict[str, Any]:
        """Every field, in payload order (what ``asdict`` gives, without its deep copy)."""
        return {
            "index": self.index,
            "section": self.section,
            "filename": self.filename,
            "content_type": self.content_type,
            "size": self.size,
            "content_id": self.content_id,
            "disposition": self.disposition,
        }


@dataclass(frozen=True, slots=True)
class Message:
    """A parsed, normalized message. Build it with ``parse_message`` or ``parse_headers_only``."""

    mailbox_id: str
    folder: str  # the connector's scope: an IMAP folder, a Gmail label, a Graph folder
    message_id: str | None
    in_reply_to: str | None
    references: tuple[str, ...]
    thread_key: str
    from_: tuple[Address, ...]
    sender: tuple[Address, ...]
    reply_to: tuple[Address, ...]
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    bcc: tuple[Address, ...]
    subject: str
    date: datetime | None
    date_raw: str | None
    text: str | None
    html: str | None
    attachments: tuple[Attachment, ...]
    size: int
    flags: tuple[str, ...]
    headers: tuple[tuple[str, str], ...]
    sha256: str
    parse_error: str | None = None
    truncated: bool = False
    raw: bytes = field(default=b"", repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-serializable ``message.received`` payload (without the raw source); the
        pipeline adds where the message is (``id``, ``ref``, ``connector``, ``source``)."""
        return {
            "mailbox_id": self.mailbox_id,
            "folder": self.folder,
            "message_id": self.message_id,
            "in_reply_to": self.in_reply_to,
            "references": list(self.references),
            "thread_key": self.thread_key,
            "from": [a.to_dict() for a in self.from_],
            "sender": [a.to_dict() for a in self.sender],
            "reply_to": [a.to_dict() for a in self.reply_to],
            "to": [a.to_dict() for a in self.to],
            "cc": [a.to_dict() for a in self.cc],
            "bcc": [a.to_dict() for a in self.bcc],
            "subject": self.subject,
            "date": self.date.isoformat() if self.date else None,
            "date_raw": self.date_raw,
            "text": self.text,
            "html": self.html,
            "attachments": [a.to_dict() for a in self.attachments],
            "size": self.size,
            "flags": list(self.flags),
            "headers": [[name, value] for name, value in self.headers],
            "sha256": self.sha256,
            "parse_error": self.parse_error,
            "truncated": self.truncated,
        }
