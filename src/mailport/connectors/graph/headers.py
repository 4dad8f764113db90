"""Header fields of every message of a Graph folder since an instant (contact harvesting).

One listing of the folder, ``$filter=receivedDateTime ge <since>`` and
``$orderby=receivedDateTime asc`` (oldest first, as the caller wants: it records the newest
``received_at`` it has seen as its position), ``chunk`` messages a page, followed by
``@odata.nextLink``. Each message comes with its ``internetMessageHeaders`` and the structured
address fields.

Graph keeps internet headers for delivered mail only: the Sent Items copy of mail written in
Outlook (or sent through Graph) has none, and its Bcc recipients exist only in
``bccRecipients``. So the block is the internet headers that were asked for, and every asked
address field they lack (From, Sender, To, Cc, Bcc, Reply-To, Message-ID) is written from the
structured fields (:func:`synthesized`), names in RFC 2047 words where they need them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from email.utils import formataddr
from typing import TYPE_CHECKING, Any

from mailport.connectors import header_fields
from mailport.connectors.base import HeaderBlock
from mailport.connectors.graph.access import client_of, resolve
from mailport.connectors.graph.models import format_datetime
from mailport.errors import InputError

if TYPE_CHECKING:
    from mailport.connectors.graph.connector import GraphConnector

PAGE_LIMIT = 1000  # Graph's largest $top for messages
# Structured fields -> the header field each stands for (order: as a header block writes them).
STRUCTURED: dict[str, str] = {
    "from": "From",
    "sender": "Sender",
    "replyTo": "Reply-To",
    "toRecipients": "To",
    "ccRecipients": "Cc",
    "bccRecipients": "Bcc",
}
SELECT = ("id", "receivedDateTime", "internetMessageHeaders", "internetMessageId", *STRUCTURED)


async def header_blocks(
    connector: GraphConnector, folder: str, *, since: datetime, fields: Sequence[str], chunk: int = 500
) -> AsyncIterator[list[HeaderBlock]]:
    """See :meth:`mailport.connectors.base.Connector.header_blocks` and the module docstring."""
    if since.tzinfo is None:
        raise InputError("since needs a time zone", field="since")
    place = await resolve(connector, folder)
    wanted = header_fields.wanted(fields)
    client = client_of(connector)
    link: str | None = None
    while True:
        page = await client.list_messages(
            place.id,
            top=min(max(chunk, 1), PAGE_LIMIT),
            next_link=link,
            filter=f"receivedDateTime ge {format_datetime(since)}",
            orderby="receivedDateTime asc",
            select=SELECT,
        )
        blocks = [
            HeaderBlock(m.id, m.received_at, block(m.data, wanted))
            for m in page.items
            if m.received_at is None or m.received_at >= since  # the filter is by the second
        ]
        if blocks:
            yield blocks
        if page.next_link is None:
            return
        link = page.next_link


def block(data: Mapping[str, Any], wanted: frozenset[str] | None) -> bytes:
    """The header block of one message resource: its internet headers, and what they lack of
    the structured fields."""
    pairs = [
        (str(item["name"]), str(item.get("value") or ""))
        for item in data.get("internetMessageHeaders") or ()
        if isinstance(item, Mapping) and isinstance(item.get("name"), str)
    ]
    present = {name.lower() for name, _ in pairs}
    pairs += [(name, value) for name, value in synthesized(data) if name.lower() not in present]
    return header_fields.render(pairs, wanted)


def synthesized(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """RFC 5322 fields written from a message's structured fields (Graph names a recipient
    without a display name by its address: then the address alone is written)."""
    out: list[tuple[str, str]] = []
    for key, name in STRUCTURED.items():
        value = data.get(key)
        recipients = value if isinstance(value, list) else [value] if isinstance(value, Mapping) else []
        written = [_address(r) for r in recipients]
        if any(written):
            out.append((name, ", ".join(w for w in written if w)))
    message_id = data.get("internetMessageId")
    if isinstance(message_id, str) and message_id.strip():
        out.append(("Message-ID", message_id.strip()))
    return out


def _address(recipient: object) -> str:
    email = recipient.get("emailAddress") if isinstance(recipient, Mapping) else None
    if not isinstance(email, Mapping) or not email.get("address"):
        return ""
    address = str(email["address"])
    name = str(email.get("name") or "")
    return formataddr((name if name != address else "", address))
