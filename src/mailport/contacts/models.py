"""The contacts feature's plain models: a mailbox's harvest settings, a contact book, a stored
contact. No I/O here (the store is :mod:`mailport.contacts.store`).

A **book** is where contacts live: the tenant's, or one owner's within it (the owner of the
mailboxes they were harvested from; ``owner`` is ``""`` for mailboxes without one). Every read
and write names its book, so two owners never see each other's contacts even for one address.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from mailport.contacts.rules import Policy

NameSource = Literal["harvest", "user"]

DEFAULT_BACKFILL_DAYS = 365  # "a backfill over a chosen period (default 12 months)"
DEFAULT_RESYNC_HOURS = 24


@dataclass(frozen=True, slots=True)
class Book:
    """A tenant's contact book (``owner == ""``) or one owner's within the tenant."""

    tenant_id: str
    owner: str = ""

    @classmethod
    def of(cls, tenant_id: str, owner: str | None) -> Book:
        return cls(tenant_id, owner or "")


@dataclass(frozen=True, slots=True)
class ContactSettings:
    """Per mailbox (``mailboxes.contacts``, JSON); a mailbox without them harvests nothing.

    ``folders``: the folder paths harvested; None chooses them (every folder but Junk, Trash and
    Drafts; where the source has an All Mail folder or view, that one and Sent). ``aliases``: more of the
    mailbox's own addresses, beside its address and its sending aliases. ``fold``: provider-aware
    folding (Gmail dots and ``+tags``, :func:`mailport.contacts.addresses.fold`).
    """

    policy: Policy = "sent_and_received"
    backfill_days: int = DEFAULT_BACKFILL_DAYS
    resync_hours: int = DEFAULT_RESYNC_HOURS
    exclude_own_domain: bool = False
    fold: bool = True
    aliases: tuple[str, ...] = ()
    folders: tuple[str, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "backfill_days": self.backfill_days,
            "resync_hours": self.resync_hours,
            "exclude_own_domain": self.exclude_own_domain,
            "fold": self.fold,
            "aliases": list(self.aliases),
            "folders": None if self.folders is None else list(self.folders),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ContactSettings:
        folders = data.get("folders")
        return cls(
            policy=data.get("policy", "sent_and_received"),
            backfill_days=int(data.get("backfill_days", DEFAULT_BACKFILL_DAYS)),
            resync_hours=int(data.get("resync_hours", DEFAULT_RESYNC_HOURS)),
            exclude_own_domain=bool(data.get("exclude_own_domain", False)),
            fold=bool(data.get("fold", True)),
            aliases=tuple(data.get("aliases") or ()),
            folders=None if folders is None else tuple(folders),
        )


@dataclass(frozen=True, slots=True)
class StoredContact:
    """One row of ``contacts`` with its address keys (``keys``, the primary one first)."""

    id: str
    tenant_id: str
    owner: str
    email: str
    name: str | None
    name_source: NameSource
    names: Counter[str]
    addresses: tuple[str, ...]
    organisation: str | None
    organisation_source: NameSource
    notes: str | None
    first_seen: datetime | None
    last_seen: datetime | None
    sent_to: int
    received_from: int
    copied: int
    two_way: bool
    rank: float
    version: int
    announced: int
    created_at: datetime
    updated_at: datetime
    keys: tuple[str, ...] = field(default=())

    @property
    def book(self) -> Book:
        return Book(self.tenant_id, self.owner)
