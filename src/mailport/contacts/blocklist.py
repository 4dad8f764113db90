"""The tenant's block list (``contact_blocklist``): addresses and domains never harvested.

Stored in the form the harvest compares (:class:`mailport.contacts.rules.BlockList`): an
address canonical and provider-folded (``J.Doe+x@GoogleMail.com`` → ``jdoe@gmail.com``), a
domain as its lowercase A-label (``Bücher.example`` → ``xn--bcher-kva.example``; it covers its
subdomains). The list applies to harvesting from the moment it changes: contacts already made
from a blocked address stay until deleted (deleting one also keeps it from coming back).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from mailport.contacts.addresses import canonical, fold, normalize_domain
from mailport.contacts.rules import BlockList
from mailport.errors import InputError, InvalidEmailError
from mailport.store.database import dialect_insert
from mailport.store.tables import contact_blocklist

Kind = Literal["address", "domain"]


@dataclass(frozen=True, slots=True)
class Entries:
    """The block list as stored, each part sorted."""

    addresses: tuple[str, ...] = ()
    domains: tuple[str, ...] = ()


def blocked_address(value: str, *, field: str = "address") -> str:
    """An address as the block list stores it; 422 ``invalid_email`` when it is none."""
    key = canonical(value)
    if key is None:
        raise InvalidEmailError(f"{value!r} is not an email address", field=field)
    return fold(key)


def blocked_domain(value: str, *, field: str = "domain") -> str:
    """A domain as the block list stores it; 422 ``invalid_input`` when it is no host name."""
    domain = normalize_domain(value.strip().lstrip("@"))
    if domain is None:
        raise InputError(
            f"{value!r} is not a domain name",
            field=field,
            hint="Give a domain name with at least one dot, such as example.com; it covers its subdomains.",
        )
    return domain


async def entries(conn: AsyncConnection, tenant_id: str) -> Entries:
    rows = await conn.execute(
        select(contact_blocklist.c.kind, contact_blocklist.c.value)
        .where(contact_blocklist.c.tenant_id == tenant_id)
        .order_by(contact_blocklist.c.kind, contact_blocklist.c.value)
    )
    found: dict[str, list[str]] = {"address": [], "domain": []}
    for row in rows:
        found.setdefault(row.kind, []).append(row.value)
    return Entries(tuple(found["address"]), tuple(found["domain"]))


async def load_blocklist(conn: AsyncConnection, tenant_id: str) -> BlockList:
    """The tenant's block list as the harvest applies it (:func:`mailport.contacts.harvest.harvest`)."""
    found = await entries(conn, tenant_id)
    return BlockList(frozenset(found.addresses), frozenset(found.domains))


async def add(
    conn: AsyncConnection, tenant_id: str, kind: Kind, values: Iterable[str], *, now: datetime
) -> None:
    """Add canonical ``values`` (already checked); those listed already stay as they are."""
    rows = [
        {"tenant_id": tenant_id, "kind": kind, "value": v, "created_at": now} for v in sorted(set(values))
    ]
    if rows:
        statement = dialect_insert(conn, contact_blocklist).on_conflict_do_nothing(
            index_elements=["tenant_id", "kind", "value"]
        )
        await conn.execute(statement, rows)


async def remove(conn: AsyncConnection, tenant_id: str, kind: Kind, value: str) -> bool:
    """Take ``value`` off the list; False when it was not on it."""
    result = await conn.execute(
        delete(contact_blocklist).where(
            contact_blocklist.c.tenant_id == tenant_id,
            contact_blocklist.c.kind == kind,
            contact_blocklist.c.value == value,
        )
    )
    return bool(result.rowcount)


async def replace(
    conn: AsyncConnection, tenant_id: str, addresses: Iterable[str], domains: Iterable[str], *, now: datetime
) -> None:
    """Make the list exactly these canonical entries."""
    await conn.execute(delete(contact_blocklist).where(contact_blocklist.c.tenant_id == tenant_id))
    await add(conn, tenant_id, "address", addresses, now=now)
    await add(conn, tenant_id, "domain", domains, now=now)
