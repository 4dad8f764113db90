"""Header fields of every message of an IMAP folder since a date (contact harvesting).

One ``UID SEARCH SINCE`` over the folder EXAMINEd read-only (:func:`~mailport.connectors.imap_mail.select`,
so a folder path in any namespace layout and non-ASCII names in modified UTF-7 work as for
listings), then ``UID FETCH <chunk> (UID INTERNALDATE BODY.PEEK[HEADER.FIELDS (…)])`` chunk by
chunk, lowest UID first. SEARCH dates have day granularity and ignore the time zone, so the search
starts a day early and the exact instant is checked against INTERNALDATE here; a message whose
server sends no INTERNALDATE is kept (the caller deduplicates; nothing may be missed).

Our client runs one command at a time, so the chunks are not pipelined: with 500 messages a
chunk the round trip is a small part of a chunk's transfer (``bench/contacts.py``).

A message expunged by another session between the SEARCH and its FETCH is simply not returned
(Dovecot answers the rest, or ``NO [EXPUNGEISSUED]``: then the chunk is fetched again after a
NOOP has told the session of the expunge). When the folder's UIDVALIDITY changes meanwhile (the
pooled connection was lent elsewhere and the folder was recreated), the rest is searched again
in the new epoch.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from mailport.connectors.base import HeaderBlock
from mailport.connectors.imap_mail import search_date, select
from mailport.errors import CommandError
from mailport.imap.models import FetchedMessage

if TYPE_CHECKING:
    from mailport.connectors.imap import ImapConnector

FETCH_TIMEOUT = 300.0
_FIELD_NAME = re.compile(r"[!-9;-~]+\Z")  # RFC 5322 ftext: printable ASCII but ":"


def fetch_items(fields: Sequence[str]) -> tuple[str, ...]:
    """The FETCH items for ``fields`` (the whole header when empty); ValueError for a name that
    is no header field name (it would break the command)."""
    names = sorted({f.upper() for f in fields})
    for name in names:
        if not _FIELD_NAME.match(name):
            raise ValueError(f"not a header field name: {name[:40]!r}")
    section = f"HEADER.FIELDS ({' '.join(names)})" if names else "HEADER"
    return ("UID", "INTERNALDATE", f"BODY.PEEK[{section}]")


async def header_blocks(
    connector: ImapConnector, folder: str, *, since: datetime, fields: Sequence[str], chunk: int = 500
) -> AsyncIterator[list[HeaderBlock]]:
    """See :meth:`mailport.connectors.base.Connector.header_blocks` and the module docstring."""
    items = fetch_items(fields)
    chunk = max(chunk, 1)
    searched = False
    epoch: int | None = None
    uids: list[int] = []
    while True:
        info = await select(connector, folder, fresh=not searched)  # the connection may have been lent
        if not searched or info.uidvalidity != epoch:  # the first search, or the folder was reset
            searched, epoch = True, info.uidvalidity
            uids = await _since(connector, since)
        if not uids:
            return
        page, uids = uids[:chunk], uids[chunk:]
        fetched = await _fetch(connector, page, items)
        connector._touch()
        blocks = [
            HeaderBlock(str(m.uid), m.internaldate, m.headers or b"")
            for m in sorted(fetched, key=_uid)
            if m.internaldate is None or m.internaldate >= since
        ]
        if blocks:
            yield blocks


async def _since(connector: ImapConnector, since: datetime) -> list[int]:
    criteria = f"SINCE {search_date(since)}".encode()
    return sorted(await connector._require().search_uids(criteria, timeout=FETCH_TIMEOUT))


async def _fetch(connector: ImapConnector, uids: list[int], items: Sequence[str]) -> list[FetchedMessage]:
    client = connector._require()
    try:
        return await client.fetch(uids, items, timeout=FETCH_TIMEOUT)
    except CommandError as exc:
        # NO [EXPUNGEISSUED] (RFC 5530): some of them were expunged by another session; a NOOP
        # tells this one, and the rest can be fetched.
        if (exc.details.get("response_code") or "").upper() != "EXPUNGEISSUED":
            raise
        await client.noop()
        return await client.fetch(uids, items, timeout=FETCH_TIMEOUT)


def _uid(message: FetchedMessage) -> int:
    return message.uid or 0
