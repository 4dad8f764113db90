"""Why a contact is what it is: which mailboxes' mail made it, which messages left its
addresses out and why, which groups it is in; and the same "why not" for any address.

Everything here reads what :func:`mailport.contacts.store.record` wrote (``contact_stats``,
``contact_exclusions``, ``contact_tombstones``) and the groups' membership, per book: one
owner's history never shows another owner's mailboxes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from mailport.contacts.groups import MEMBER_SOURCES
from mailport.contacts.models import Book
from mailport.contacts.rules import REASONS
from mailport.contacts.store import DELETED
from mailport.store.tables import (
    contact_exclusions,
    contact_group_members,
    contact_groups,
    contact_stats,
    contact_tombstones,
    mailboxes,
)

DESCRIPTIONS: dict[str, str] = {
    **{str(code): text for code, text in REASONS.items()},
    DELETED: "the address of a deleted contact (a deleted contact is not harvested again)",
}
"""Every exclusion reason the history shows, with its description."""


@dataclass(frozen=True, slots=True)
class Source:
    """What one mailbox's mail says about a contact's addresses."""

    mailbox_id: str
    mailbox_email: str
    keys: tuple[str, ...]
    sent_to: int
    received_from: int
    copied: int
    first_seen: datetime
    last_seen: datetime


@dataclass(frozen=True, slots=True)
class Exclusion:
    """How many messages of one mailbox left one address out, for one reason."""

    mailbox_id: str
    mailbox_email: str
    key: str
    reason: str
    description: str
    messages: int
    first_seen: datetime
    last_seen: datetime
    owner: str = ""


@dataclass(frozen=True, slots=True)
class GroupRef:
    id: str
    name: str
    kind: str
    source: str  # how the contact came in: manual | rule | organisation


@dataclass(frozen=True, slots=True)
class Deletion:
    """A deleted contact's address (a tombstone): harvesting leaves it out."""

    key: str
    contact_id: str
    deleted_at: datetime
    owner: str = ""


@dataclass(frozen=True, slots=True)
class History:
    contact_id: str
    sources: list[Source] = field(default_factory=list)
    exclusions: list[Exclusion] = field(default_factory=list)
    groups: list[GroupRef] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class AddressReport:
    """Why an address is (or is not) a contact (:meth:`ContactService.exclusions
    <mailport.contacts.service.ContactService.exclusions>`)."""

    address: str
    keys: tuple[str, ...]
    contacts: list[tuple[str, str]]  # (contact id, owner) holding one of the keys
    rule: str | None  # the reason every harvest leaves it out, whatever the mail
    rule_description: str | None
    deleted: list[Deletion]
    exclusions: list[Exclusion]


async def sources(conn: AsyncConnection, book: Book, keys: Sequence[str]) -> list[Source]:
    """Per mailbox of ``book``, the sums over ``keys`` (oldest first seen first)."""
    rows = await conn.execute(
        select(contact_stats, mailboxes.c.email.label("mailbox_email"))
        .join(mailboxes, mailboxes.c.id == contact_stats.c.mailbox_id)
        .where(
            contact_stats.c.tenant_id == book.tenant_id,
            contact_stats.c.owner == book.owner,
            contact_stats.c.key.in_(list(keys)),
        )
        .order_by(contact_stats.c.mailbox_id, contact_stats.c.key)
    )
    by_mailbox: dict[str, list[Source]] = {}
    for row in rows:
        by_mailbox.setdefault(row.mailbox_id, []).append(
            Source(
                row.mailbox_id,
                row.mailbox_email,
                (row.key,),
                row.sent_to,
                row.received_from,
                row.copied,
                row.first_seen,
                row.last_seen,
            )
        )
    summed = [_sum(parts) for parts in by_mailbox.values()]
    return sorted(summed, key=lambda s: (s.first_seen, s.mailbox_id))


def _sum(parts: list[Source]) -> Source:
    first = parts[0]
    return Source(
        first.mailbox_id,
        first.mailbox_email,
        tuple(k for p in parts for k in p.keys),
        sum(p.sent_to for p in parts),
        sum(p.received_from for p in parts),
        sum(p.copied for p in parts),
        min(p.first_seen for p in parts),
        max(p.last_seen for p in parts),
    )


async def exclusions(
    conn: AsyncConnection, tenant_id: str, owner: str | None, keys: Sequence[str]
) -> list[Exclusion]:
    """Every exclusion of ``keys`` in the tenant's books (``owner`` None) or in one book."""
    query = (
        select(contact_exclusions, mailboxes.c.email.label("mailbox_email"))
        .join(mailboxes, mailboxes.c.id == contact_exclusions.c.mailbox_id)
        .where(contact_exclusions.c.tenant_id == tenant_id, contact_exclusions.c.key.in_(list(keys)))
        .order_by(contact_exclusions.c.owner, contact_exclusions.c.key, contact_exclusions.c.mailbox_id)
    )
    if owner is not None:
        query = query.where(contact_exclusions.c.owner == owner)
    return [
        Exclusion(
            row.mailbox_id,
            row.mailbox_email,
            row.key,
            row.reason,
            DESCRIPTIONS.get(row.reason, row.reason),
            row.messages,
            row.first_seen,
            row.last_seen,
            row.owner,
        )
        for row in await conn.execute(query)
    ]


async def deletions(
    conn: AsyncConnection, tenant_id: str, owner: str | None, keys: Sequence[str]
) -> list[Deletion]:
    query = (
        select(contact_tombstones)
        .where(contact_tombstones.c.tenant_id == tenant_id, contact_tombstones.c.key.in_(list(keys)))
        .order_by(contact_tombstones.c.owner, contact_tombstones.c.key)
    )
    if owner is not None:
        query = query.where(contact_tombstones.c.owner == owner)
    return [Deletion(row.key, row.contact_id, row.deleted_at, row.owner) for row in await conn.execute(query)]


async def groups_of(conn: AsyncConnection, contact_ids: Sequence[str]) -> dict[str, list[GroupRef]]:
    """The groups each contact is a member of (by name)."""
    found: dict[str, list[GroupRef]] = {}
    if not contact_ids:
        return found
    rows = await conn.execute(
        select(
            contact_group_members.c.contact_id,
            contact_group_members.c.source,
            contact_groups.c.id,
            contact_groups.c.name,
            contact_groups.c.kind,
        )
        .join(contact_groups, contact_groups.c.id == contact_group_members.c.group_id)
        .where(
            contact_group_members.c.contact_id.in_(list(contact_ids)),
            contact_group_members.c.source.in_(MEMBER_SOURCES),
        )
        .order_by(contact_groups.c.name, contact_groups.c.id)
    )
    for row in rows:
        found.setdefault(row.contact_id, []).append(GroupRef(row.id, row.name, row.kind, row.source))
    return found
