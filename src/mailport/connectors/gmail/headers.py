"""Header fields of every message of a Gmail label since an instant (contact harvesting).

``messages.list`` with the folder's label (``labelIds``, as listings resolve it) and
``q=after:<epoch seconds>`` gives ids only, 500 a page, newest first. Every page is listed before
the first header is fetched, so that what is yielded can be oldest first: the caller records the
newest ``received_at`` it has seen as its position, and a harvest stopped half-way must not have
passed older mail by. Listing costs one small request per 500 messages, a fraction of the
``messages.get`` calls, and a message arriving meanwhile is newer than everything yielded (the
next harvest finds it).

The headers come from ``messages.get?format=metadata&metadataHeaders=…`` in the client's
batches of 50; a chunk's batches go out together, as many at once as the mailbox's
:class:`~mailport.connectors.api_http.MailboxLimiter` lets through. ``received_at`` is Gmail's
``internalDate`` (checked exactly: ``after:`` is by the second); a message deleted between the
listing and its ``get`` (404) is left out.

:data:`ALL_MAIL` is Gmail's All Mail, which the API lists as no label but as a listing without
``labelIds`` (spam and trash left out), drafts and chats dropped by their ``DRAFT`` and
``CHAT`` labels (IMAP's All Mail has neither). A harvest reads
it rather than each label: a message carries several labels (INBOX, IMPORTANT, a category), and
label by label it would be fetched once for each; archived mail is in no label at all.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mailport.connectors import header_fields
from mailport.connectors.base import HeaderBlock
from mailport.connectors.gmail import labels as gl
from mailport.connectors.gmail.client import BATCH_LIMIT
from mailport.connectors.gmail.models import GmailMessage
from mailport.errors import InputError

if TYPE_CHECKING:
    from mailport.connectors.gmail.client import GmailClient

LIST_PAGE = 500  # messages.list's maximum maxResults
ALL_MAIL = "[Gmail]/All Mail"  # as IMAP names it (a user label of this very name is shadowed)
NOT_MAIL = frozenset({"DRAFT", "CHAT"})  # in All Mail's listing, but unsent or chats (not in IMAP's)


async def message_ids(client: GmailClient, label_id: str | None, since: datetime) -> list[str]:
    """The ids of the label's (None: All Mail's) messages received after ``since`` less a
    second, oldest first."""
    ids: list[str] = []
    token: str | None = None
    while True:
        page = await client.list_messages(
            label_ids=[label_id] if label_id else [],
            q=f"after:{int(since.timestamp()) - 1}",
            page_token=token,
            max_results=LIST_PAGE,
            include_spam_trash=label_id in gl.HIDING,
        )
        ids += [m.id for m in page.ids]
        token = page.next_page_token
        if not token:
            return list(reversed(dict.fromkeys(ids)))  # a message on two pages counts once


async def header_blocks(
    client: GmailClient, folder: str, *, since: datetime, fields: Sequence[str], chunk: int = 500
) -> AsyncIterator[list[HeaderBlock]]:
    """See :meth:`mailport.connectors.base.Connector.header_blocks` and the module docstring."""
    if since.tzinfo is None:
        raise InputError("since needs a time zone", field="since")
    label_id = None if folder == ALL_MAIL else (await gl.resolve(client, folder)).id
    wanted = header_fields.wanted(fields)
    names = sorted(wanted) if wanted is not None else []  # none named: Gmail sends every field
    ids = await message_ids(client, label_id, since)
    chunk = max(chunk, 1)
    for start in range(0, len(ids), chunk):
        page = ids[start : start + chunk]
        parts = [page[n : n + BATCH_LIMIT] for n in range(0, len(page), BATCH_LIMIT)]
        fetched = await _together(
            [client.get_messages(part, format="metadata", metadata_headers=names) for part in parts]
        )
        blocks = [
            _block(message, wanted)
            for part in fetched
            for message in part
            if message is not None
            and (message.internal_date is None or message.internal_date >= since)
            and (label_id is not None or NOT_MAIL.isdisjoint(message.label_ids))
        ]
        if blocks:
            yield blocks


Fetched = list[GmailMessage | None]


async def _together(calls: list[Coroutine[Any, Any, Fetched]]) -> list[Fetched]:
    """Every call's result, in order; when one fails the others are cancelled and its error
    raised as it is (no ExceptionGroup: callers catch mailport's own errors)."""
    tasks = [asyncio.ensure_future(call) for call in calls]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def _block(message: GmailMessage, wanted: frozenset[str] | None) -> HeaderBlock:
    return HeaderBlock(message.id, message.internal_date, header_fields.render(message.fields, wanted))
