"""One message's header block → the contact observations it holds.

An observation is one address in one role of one message, with the reason it is excluded (or
None): the aggregate (:mod:`mailport.contacts.rank`) counts the kept ones, and the contact
history shows the others with their reason. Invalid addresses (``undisclosed-recipients:;``, a
bare ``root``, a domain literal) give no observation at all.

Headers only, because the backfill fetches headers only (``BODY.PEEK[HEADER]``, the Gmail API's
``format=metadata``). The block is split by mailport's own header splitter
(:func:`mailport.messages.headers.parse_block`, one regular expression) and only the fields the
rules read are looked at; address lists go through :func:`mailport.messages.headers.addresses`,
which decodes RFC 2047 names. No ``email.message`` is built: reading the same fields through the
stdlib's compat32 header parser takes ~43 µs for a 1.8 KB block, more than the whole harvest
(~39 µs, of which ~9 µs splitting the fields; ``bench/contacts.py``).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime

from mailport.contacts.addresses import canonical, display_name
from mailport.contacts.addresses import fold as fold_address
from mailport.contacts.rules import (
    FIELDS,
    ROLE_FIELDS,
    BlockList,
    Direction,
    Identity,
    Policy,
    Reason,
    Role,
    counted_roles,
    exclude,
    message_reason,
)
from mailport.messages import headers as hdr

_NO_BLOCKS = BlockList()


@dataclass(frozen=True, slots=True)
class Observation:
    """One address seen in one role of one message."""

    key: str  # the canonical address (provider-folded when the harvest folds)
    address: str  # as written in the message (an A-label domain is shown in Unicode)
    name: str  # the decoded display name, '' when none
    role: Role
    direction: Direction
    seen_at: datetime
    excluded: Reason | None = None


def fields_of(block: bytes) -> dict[str, str]:
    """The first value of each field the rules read, by lower-case name."""
    found: dict[str, str] = {}
    for name, value in hdr.parse_block(block):
        lower = name.lower()
        if lower in FIELDS and lower not in found:
            found[lower] = value
    return found


def direction_of(fields: dict[str, str], identity: Identity) -> Direction:
    """``sent`` when the message is from one of the mailbox's own addresses or aliases (the
    folder does not matter: a Bcc to oneself lands in the inbox, a forward in Sent), else
    ``received``."""
    for address in hdr.addresses(fields.get("from"))[0]:
        key = canonical(address.email)
        if key is not None:
            folded = fold_address(key)
            if folded in identity.addresses or folded in identity.aliases:
                return "sent"
    return "received"


_MESSAGE_ID = re.compile(rb"^message-id[ \t]*:[ \t]*((?:.*)(?:\r?\n[ \t].*)*)", re.I | re.M)


def message_digest(block: bytes) -> str:
    """What a message is known by, whichever folder or source it came from: a digest of its
    Message-ID, else (no Message-ID) of its header block."""
    found = _MESSAGE_ID.search(block)
    if found is not None:
        ids = hdr.msg_ids(found.group(1).decode("latin-1"))
        if ids:
            return hashlib.sha256(ids[0].lower().encode("utf-8", "surrogateescape")).hexdigest()[:32]
    return hashlib.sha256(block).hexdigest()[:32]


def harvest(
    block: bytes,
    direction: Direction | None,
    seen_at: datetime,
    *,
    identity: Identity,
    blocks: BlockList = _NO_BLOCKS,
    policy: Policy = "sent_and_received",
    fold: bool = False,
) -> list[Observation]:
    """The observations of one message, in header order (From, Reply-To, To, Cc, Bcc).

    ``direction`` None judges it from the From field (:func:`direction_of`).

    ``fold`` applies provider-aware folding (:func:`mailport.contacts.addresses.fold`) to the
    keys. The same address twice in one message (From and Reply-To) gives two observations: the
    aggregate counts the message once.
    """
    if policy == "off":
        return []
    fields = fields_of(block)
    if direction is None:
        direction = direction_of(fields, identity)
    roles = counted_roles(direction, policy)
    if not roles:
        return []
    message = message_reason(fields)
    out: list[Observation] = []
    for role in roles:
        value = fields.get(ROLE_FIELDS[role])
        if not value:
            continue
        for address in hdr.addresses(value)[0]:
            key = canonical(address.email)
            if key is None:
                continue
            if fold:
                key = fold_address(key)
            reason = exclude(key, message, identity, blocks)
            name = display_name(address.name, address.email)
            out.append(Observation(key, address.email, name, role, direction, seen_at, reason))
    return out
