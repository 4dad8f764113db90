"""A listing's envelope and thread key from a header block, the same for every connector.

IMAP fetches the listing's header fields (``BODY.PEEK[HEADER.FIELDS (…)]``), the Gmail API
returns them as ``format=metadata``; both become the same :class:`~mailport.connectors.mail.Envelope`
through mailport's own header code (encoded words, charsets, IDNA), so a listing reads alike
whatever the source.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from mailport.connectors.mail import Envelope
from mailport.messages import headers as hdr
from mailport.messages.threading import thread_key, thread_root

# The header fields a listing shows (and the thread key needs).
LISTING_HEADERS = (
    "From",
    "To",
    "Cc",
    "Reply-To",
    "Subject",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
)


@dataclass(frozen=True, slots=True)
class ParsedHeaders:
    """What a header block tells a listing: the envelope and the thread's key and root."""

    envelope: Envelope
    thread_key: str
    thread_root: str | None  # None: the message has no id at all (its key hashes the block)


def parse_envelope(block: bytes) -> ParsedHeaders:
    """The envelope of ``block`` (header fields, CRLF-separated). A message without any
    Message-ID, In-Reply-To or References gets the SHA-256 of ``block`` as its stand-in
    content hash: stable for that message wherever it is listed."""
    fields = hdr.first(hdr.parse_block(block))
    message_ids = hdr.msg_ids(fields.get("message-id"))
    in_reply_to = hdr.msg_ids(fields.get("in-reply-to"))
    references = hdr.msg_ids(fields.get("references"))
    subject = fields.get("subject")
    envelope = Envelope(
        subject=hdr.decode_words(subject)[0] if subject is not None else None,
        from_=hdr.addresses(fields.get("from"))[0],
        to=hdr.addresses(fields.get("to"))[0],
        cc=hdr.addresses(fields.get("cc"))[0],
        reply_to=hdr.addresses(fields.get("reply-to"))[0],
        date=hdr.date(fields.get("date")),
        message_id=message_ids[0] if message_ids else None,
        in_reply_to=in_reply_to[0] if in_reply_to else None,
    )
    has_ids = bool(envelope.message_id or in_reply_to or references)
    return ParsedHeaders(
        envelope=envelope,
        thread_key=thread_key(
            message_id=envelope.message_id,
            in_reply_to=in_reply_to,
            references=references,
            content_sha256=hashlib.sha256(block).hexdigest(),
        ),
        thread_root=thread_root(
            message_id=envelope.message_id, in_reply_to=in_reply_to, references=references, content_sha256=""
        )
        if has_ids
        else None,
    )
