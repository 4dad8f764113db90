"""What reading and acting on a mailbox exchanges with a connector, the same for every source.

A listing item (:class:`MessageSummary`) carries what an inbox view needs without the body: the
envelope, flags, size, whether there are attachments, a preview where the source makes it cheap,
and the thread key. Pages are newest first and continue from an opaque ``next_cursor`` that the
connector encodes from where the page ended (never from an offset), so mail arriving between two
requests neither repeats nor hides an item.

Flags are named neutrally: ``seen``, ``flagged``, ``answered``, ``draft`` (IMAP's system flags,
Gmail's UNREAD/STARRED, Graph's isRead/flag); anything else is a keyword kept as the source
spells it (``$Forwarded``). Gmail labels are separate (:attr:`FlagChange.add_labels`).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from mailport.connectors.base import MessageRef
from mailport.messages.model import Address

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


class Flag(enum.StrEnum):
    SEEN = "seen"
    FLAGGED = "flagged"
    ANSWERED = "answered"
    DRAFT = "draft"


IMAP_SPELLING: dict[str, str] = {
    Flag.SEEN: "\\Seen",
    Flag.FLAGGED: "\\Flagged",
    Flag.ANSWERED: "\\Answered",
    Flag.DRAFT: "\\Draft",
}


def imap_spelling(flags: Iterable[str]) -> tuple[str, ...]:
    """Neutral names as IMAP spells them (``seen`` -> ``\\Seen``), keywords as they are: how
    ``message.received`` carries flags for every connector (docs/messages.md)."""
    return tuple(IMAP_SPELLING.get(flag, flag) for flag in flags)


@dataclass(frozen=True, slots=True)
class Envelope:
    """The headers a listing shows (IMAP ENVELOPE, Gmail metadata, Graph's message fields)."""

    subject: str | None = None
    from_: tuple[Address, ...] = ()
    to: tuple[Address, ...] = ()
    cc: tuple[Address, ...] = ()
    reply_to: tuple[Address, ...] = ()
    date: datetime | None = None
    message_id: str | None = None
    in_reply_to: str | None = None


@dataclass(frozen=True, slots=True)
class MessageSummary:
    """One message of a listing, search or thread."""

    ref: MessageRef
    folder: str
    envelope: Envelope
    flags: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    size: int = 0
    received_at: datetime | None = None
    has_attachments: bool | None = None  # None: the source could not tell cheaply
    preview: str | None = None
    thread_key: str | None = None
    thread_root: str | None = None  # the Message-ID thread_key hashes (so the key can be looked up)


@dataclass(frozen=True, slots=True)
class MessagePage:
    items: list[MessageSummary]
    next_cursor: str | None  # None: this was the last page


@dataclass(frozen=True, slots=True)
class ListQuery:
    """``GET …/messages``: newest first in ``folder`` (a path from the folder list)."""

    folder: str = "INBOX"
    limit: int = DEFAULT_LIMIT
    cursor: str | None = None
    unseen: bool | None = None  # True: only unseen; False: only seen; None: both
    since: datetime | None = None  # received at or after


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """``POST …/messages/search``: every given criterion must hold (AND). ``native`` is passed
    to the source as it is (IMAP SEARCH keys, Gmail ``q``, Graph ``$search``) and combined
    with the others."""

    folder: str = "INBOX"
    limit: int = DEFAULT_LIMIT
    cursor: str | None = None
    from_: str | None = None
    to: str | None = None
    cc: str | None = None
    subject: str | None = None
    text: str | None = None  # anywhere in headers or body
    body: str | None = None
    since: datetime | None = None
    before: datetime | None = None
    seen: bool | None = None
    flagged: bool | None = None
    answered: bool | None = None
    has_attachment: bool | None = None
    larger: int | None = None  # bytes
    smaller: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    message_id: str | None = None
    native: str | None = None


@dataclass(frozen=True, slots=True)
class FlagChange:
    """Flags (neutral names or keywords) and labels to add and to remove, in one request."""

    add: frozenset[str] = frozenset()
    remove: frozenset[str] = frozenset()
    add_labels: frozenset[str] = frozenset()
    remove_labels: frozenset[str] = frozenset()

    @property
    def empty(self) -> bool:
        return not (self.add or self.remove or self.add_labels or self.remove_labels)


@dataclass(frozen=True, slots=True)
class Moved:
    """Where a moved message went (``new`` is None when the server does not say: no UIDPLUS)."""

    old: MessageRef
    new: MessageRef | None
