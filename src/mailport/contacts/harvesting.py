"""What harvesting one mailbox's messages needs, the same for the backfill, the scheduled
re-sync (:mod:`mailport.contacts.sync`) and the event stream (:mod:`mailport.contacts.feed`):
the mailbox's own side, its book, and one message's header block turned into a
:class:`~mailport.contacts.store.HarvestedMessage`.

Why the block is rewritten first (:func:`normal_block`): a message is counted once per mailbox
by :func:`~mailport.contacts.harvest.message_digest`, which for mail without a Message-ID is a
digest of the block itself. The backfill reads only the fields the harvest needs (IMAP
``HEADER.FIELDS``, the Gmail API's metadata headers), the event stream has the whole stored
header, folded as the sender folded it. Both are cut down to the same fields, unfolded, in the
message's order, with lower-case names, so the same message gives the same digest whichever
way it came, and a backfill after the stream (or the other way round) counts nothing twice.
"""

from __future__ import annotations

import re
from datetime import datetime

from mailport.connectors.folders import Role
from mailport.contacts.addresses import canonical, domain_of
from mailport.contacts.harvest import harvest, message_digest
from mailport.contacts.models import Book, ContactSettings
from mailport.contacts.rules import FIELDS, BlockList, Identity
from mailport.contacts.store import HarvestedMessage
from mailport.mailboxes.models import Mailbox
from mailport.messages import headers as hdr

WANTED = tuple(sorted(FIELDS | {"message-id", "date"}))
"""The header fields a harvest asks the source for: what the rules read, the Message-ID (the
digest) and the Date (when the source does not say when a message arrived)."""
_WANTED = frozenset(WANTED)
_BLANKS = re.compile(r"[ \t]+")
SKIPPED_ROLES = frozenset({Role.JUNK, Role.TRASH, Role.DRAFTS, Role.FLAGGED})
"""Folders never harvested: junk, deleted mail, unsent drafts, and Flagged (a view of others)."""


def enabled(settings: ContactSettings | None) -> bool:
    """Does a mailbox with these settings harvest at all?"""
    return settings is not None and settings.policy != "off"


def book_of(mailbox: Mailbox) -> Book:
    """Where the mailbox's contacts go: its owner's book, or the tenant's."""
    return Book.of(mailbox.tenant_id, mailbox.owner)


def identity_of(mailbox: Mailbox, settings: ContactSettings) -> Identity:
    """The mailbox's own side: its address, its sending aliases and its harvest aliases; its
    domains are those of all of them (for ``exclude_own_domain``)."""
    own = [mailbox.email, *mailbox.settings.sending.aliases, *settings.aliases]
    domains = {domain_of(key) for key in (canonical(a) for a in own) if key is not None}
    return Identity.of(
        [mailbox.email],
        aliases=[*mailbox.settings.sending.aliases, *settings.aliases],
        domains=domains,
        exclude_own_domain=settings.exclude_own_domain,
    )


def normal_block(block: bytes) -> bytes:
    """The fields of :data:`WANTED` in ``block``, in its order, unfolded, runs of blanks made one
    space (a source may refold), names lower-cased."""
    lines = [
        f"{name.lower()}: {_BLANKS.sub(' ', value)}\r\n"
        for name, value in hdr.parse_block(block)
        if name.lower() in _WANTED
    ]
    return "".join(lines).encode("utf-8", "surrogateescape")


def header_of(raw: bytes) -> bytes:
    """The header block of a whole message source."""
    start = hdr.message_start(raw)
    end, _ = hdr.header_end(raw, start, len(raw))
    return raw[start:end]


def seen_at(block: bytes, received_at: datetime | None) -> datetime | None:
    """When the message was seen: when the source received it, else its Date field."""
    if received_at is not None:
        return received_at
    for name, value in hdr.parse_block(block):
        if name == "date":
            return hdr.date(value)
    return None


class Harvester:
    """One mailbox's harvest settings, identity and the tenant's block list, applied to blocks."""

    def __init__(self, mailbox: Mailbox, settings: ContactSettings, blocks: BlockList) -> None:
        self.mailbox = mailbox
        self.settings = settings
        self.identity = identity_of(mailbox, settings)
        self.blocks = blocks
        self.book = book_of(mailbox)

    def message(
        self, block: bytes, received_at: datetime | None, *, fallback: datetime
    ) -> HarvestedMessage | None:
        """The harvest of one message (``block`` as :func:`normal_block` leaves it); None when
        it holds nothing to count under the policy (then it is not remembered either: a policy
        widened later still finds it)."""
        at = seen_at(block, received_at) or fallback
        observations = harvest(
            block,
            None,
            at,
            identity=self.identity,
            blocks=self.blocks,
            policy=self.settings.policy,
            fold=self.settings.fold,
        )
        if not observations:
            return None
        return HarvestedMessage(message_digest(block), observations)
