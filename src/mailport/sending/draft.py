"""The structured draft a sender fills in, and what composing it yields.

Addresses reuse :class:`mailport.messages.model.Address` so a reply can copy a parsed
message's addresses as they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mailport.messages.model import Address


@dataclass(frozen=True, slots=True)
class OutgoingAttachment:
    """A file to attach; ``content_id`` makes it inline (referenced as ``cid:`` from the HTML)."""

    filename: str
    content_type: str
    data: bytes = field(repr=False)
    content_id: str | None = None


@dataclass(frozen=True, slots=True)
class Draft:
    """A message to send, before it becomes bytes.

    ``in_reply_to``/``references`` are ids without angle brackets (as the parser gives them).
    ``forward_raw`` carries an original to attach as ``message/rfc822``.
    """

    from_: Address
    to: tuple[Address, ...] = ()
    cc: tuple[Address, ...] = ()
    bcc: tuple[Address, ...] = ()
    reply_to: tuple[Address, ...] = ()
    subject: str = ""
    text: str | None = None
    html: str | None = None
    attachments: tuple[OutgoingAttachment, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    forward_raw: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class Composed:
    """Bytes ready for SMTP DATA (no Bcc) and the envelope that goes with them."""

    raw: bytes = field(repr=False)
    recipients: tuple[str, ...]
    message_id: str  # without angle brackets
    sender: str  # the envelope MAIL FROM address
    eight_bit: bool = False  # the bytes are not 7-bit: send with BODY=8BITMIME
    smtputf8: bool = False  # non-ASCII in headers or addresses: needs the server's SMTPUTF8
