"""The tenant's block list as harvesting reads it (table ``contact_blocklist``): addresses and
domains never harvested (reasons ``blocked_address`` / ``blocked_domain``)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from mailport.contacts.rules import BlockList
from mailport.store.tables import contact_blocklist


async def load_blocklist(conn: AsyncConnection, tenant_id: str) -> BlockList:
    """The tenant's block list, read once per harvest run or feed batch."""
    rows = await conn.execute(
        select(contact_blocklist.c.kind, contact_blocklist.c.value).where(
            contact_blocklist.c.tenant_id == tenant_id
        )
    )
    addresses: list[str] = []
    domains: list[str] = []
    for row in rows:
        (addresses if row.kind == "address" else domains).append(row.value)
    return BlockList.of(addresses, domains=domains)
