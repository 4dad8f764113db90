"""Which send a received bounce or complaint is about: its original Message-ID -> our send id.

A bounce names the mail it reports by Message-ID (:mod:`mailport.messages.bounces`); every send
is in ``outbound_messages`` with ``message_id_key``, the lower-cased Message-ID without angle
brackets (Message-IDs are compared case-insensitively because relays and MTAs re-case them).
Ingestion asks for a whole chunk's reports in one query, in the transaction that stores them.

Only the tenant's own sends are ever linked (a bounce cannot reveal another tenant's mail). The
mailbox the report arrived in is preferred: the same Message-ID sent from two mailboxes is most
likely answered to the one that sent it; else any mailbox of the tenant (replies to an alias
that lands elsewhere). Among several candidates, a send that reached the server (``sent`` or
``committing``) wins over one that did not, then the newest.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from mailport.sending.models import SendState
from mailport.store.tables import outbound_messages

__all__ = ["find_sends", "message_id_key"]

_REACHED_SERVER = frozenset({SendState.SENT.value, SendState.COMMITTING.value})
_BATCH = 500  # keys per IN list: far under every database's bound-parameter limit


def message_id_key(message_id: str) -> str:
    """The lookup form of a Message-ID: no angle brackets or blanks around it, lower-cased."""
    return message_id.strip().strip("<>").strip().lower()


async def find_sends(
    conn: AsyncConnection, *, tenant_id: str, mailbox_id: str, message_ids: Iterable[str | None]
) -> dict[str, str]:
    """``{message_id_key: send id}`` for those of ``message_ids`` the tenant sent (see the module
    docstring for which send wins); ids that match nothing are absent. One query per 500 ids."""
    keys = sorted({message_id_key(m) for m in message_ids if m and message_id_key(m)})
    best: dict[str, tuple[tuple[Any, ...], str]] = {}
    for start in range(0, len(keys), _BATCH):
        rows = await conn.execute(
            select(
                outbound_messages.c.id,
                outbound_messages.c.mailbox_id,
                outbound_messages.c.message_id_key,
                outbound_messages.c.state,
                outbound_messages.c.created_at,
            ).where(
                outbound_messages.c.tenant_id == tenant_id,
                outbound_messages.c.message_id_key.in_(keys[start : start + _BATCH]),
            )
        )
        for row in rows:
            rank = (row.mailbox_id == mailbox_id, row.state in _REACHED_SERVER, row.created_at, row.id)
            held = best.get(row.message_id_key)
            if held is None or rank > held[0]:
                best[row.message_id_key] = (rank, row.id)
    return {key: send_id for key, (_rank, send_id) in best.items()}
