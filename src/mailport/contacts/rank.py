"""The contact of one canonical address, merged from observations, and its rank.

A :class:`Contact` holds what issue 18 asks to keep per address: first and last seen, messages
sent to and received from, whether the correspondence is two-way, the display names seen with
their frequencies (the most frequent one is shown), and every raw address seen. Merging is
commutative and needs no other state, so a backfill and the live stream can feed it in any
order, and a stored contact can be merged with new observations later.

The score (:func:`score`), so lists sort by who matters::

    activity = 2·ln(1 + sent_to) + ln(1 + received_from) + 0.5·ln(1 + copied)
    recency  = 2 ** (−days_since_last_seen / 90)
    score    = activity × recency × (1.5 if two_way else 1)

- writing to someone says more than being written to (weight 2 against 1), and being on the
  same To/Cc line of received mail says least (0.5);
- the logarithm keeps one very chatty correspondent from burying everyone else: ten times the
  mail is about twice the score, not ten times;
- recency halves the score every 90 days since the last message, so an old colleague fades
  behind today's correspondents without disappearing;
- a two-way correspondence (the user both wrote to and heard from the address) gets half as
  much again: that is what a real contact looks like.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from mailport.contacts.harvest import Observation
from mailport.contacts.rules import Reason

HALF_LIFE_DAYS = 90.0
TWO_WAY_BOOST = 1.5
SENT_WEIGHT, RECEIVED_WEIGHT, COPIED_WEIGHT = 2.0, 1.0, 0.5


@dataclass(slots=True)
class Contact:
    """The aggregate of one canonical address of one mailbox (or owner)."""

    key: str
    first_seen: datetime
    last_seen: datetime
    sent_to: int = 0  # sent messages with this address among the recipients
    received_from: int = 0  # received messages with this address in From or Reply-To
    copied: int = 0  # received messages with it only in To/Cc (a fellow recipient)
    names: Counter[str] = field(default_factory=Counter)
    addresses: set[str] = field(default_factory=set)

    @property
    def two_way(self) -> bool:
        return self.sent_to > 0 and self.received_from > 0

    @property
    def name(self) -> str:
        """The most frequent display name (:func:`most_frequent`)."""
        return most_frequent(self.names)

    def merge(self, other: Contact) -> None:
        """Add another aggregate of the same address (a stored one, another mailbox's)."""
        self.first_seen = min(self.first_seen, other.first_seen)
        self.last_seen = max(self.last_seen, other.last_seen)
        self.sent_to += other.sent_to
        self.received_from += other.received_from
        self.copied += other.copied
        self.names.update(other.names)
        self.addresses |= other.addresses


def most_frequent(names: Counter[str]) -> str:
    """The most frequent display name; ties go to the longer, then the smaller, name ('' if none)."""
    if not names:
        return ""
    return min(names.items(), key=lambda item: (-item[1], -len(item[0]), item[0]))[0]


def score(contact: Contact, now: datetime) -> float:
    """The rank of a contact at ``now`` (the formula is in the module docstring)."""
    activity = (
        SENT_WEIGHT * math.log1p(contact.sent_to)
        + RECEIVED_WEIGHT * math.log1p(contact.received_from)
        + COPIED_WEIGHT * math.log1p(contact.copied)
    )
    days = max(0.0, (now - contact.last_seen).total_seconds() / 86_400)
    boost = TWO_WAY_BOOST if contact.two_way else 1.0
    return activity * 2 ** (-days / HALF_LIFE_DAYS) * boost


@dataclass(slots=True)
class Contacts:
    """Contacts and exclusions by canonical address, fed one message's observations at a time.

    ``excluded`` counts, per address, how often each reason left it out: an address can be both
    a contact (from its own mail) and excluded in some messages (a list post), and the history
    shows both.
    """

    contacts: dict[str, Contact] = field(default_factory=dict)
    excluded: dict[str, Counter[Reason]] = field(default_factory=dict)

    def add_message(self, observations: Iterable[Observation]) -> None:
        """Merge the observations of one message: each address counts once per message."""
        counted: dict[str, str] = {}  # key -> the strongest role kind seen in this message
        named: set[str] = set()
        for obs in observations:
            if obs.excluded is not None:
                self.excluded.setdefault(obs.key, Counter())[obs.excluded] += 1
                continue
            contact = self.contacts.get(obs.key)
            if contact is None:
                contact = self.contacts[obs.key] = Contact(obs.key, obs.seen_at, obs.seen_at)
            else:
                if obs.seen_at < contact.first_seen:
                    contact.first_seen = obs.seen_at
                if obs.seen_at > contact.last_seen:
                    contact.last_seen = obs.seen_at
            contact.addresses.add(obs.address)
            kind = _kind(obs)
            if obs.name and obs.key not in named:  # one name per address per message
                contact.names[obs.name] += 1
                named.add(obs.key)
            previous = counted.get(obs.key)
            if previous is None:
                counted[obs.key] = kind
                _count(contact, kind, 1)
            elif _RANK[kind] > _RANK[previous]:  # From after To in the same message: upgrade
                _count(contact, previous, -1)
                _count(contact, kind, 1)
                counted[obs.key] = kind

    def ranked(self, now: datetime) -> list[Contact]:
        """The contacts, best first (ties by address, so the order is stable)."""
        return sorted(self.contacts.values(), key=lambda c: (-score(c, now), c.key))


_RANK = {"copied": 0, "received": 1, "sent": 2}


def _kind(obs: Observation) -> str:
    if obs.direction == "sent":
        return "sent"
    return "received" if obs.role in ("from", "reply_to") else "copied"


def _count(contact: Contact, kind: str, step: int) -> None:
    if kind == "sent":
        contact.sent_to += step
    elif kind == "received":
        contact.received_from += step
    else:
        contact.copied += step
