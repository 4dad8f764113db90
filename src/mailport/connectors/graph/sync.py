"""Ingestion from a Graph folder's ``messages/delta``: positions, new mail, changes, recovery.

**Position.** A cursor's position is the URL to follow next — the round's ``@odata.nextLink``
while a round is under way, its ``@odata.deltaLink`` once it is complete — together with the
``receivedDateTime`` bound the stream was started from and the newest message it delivered
(JSON, opaque to the core: ``{"link", "since", "newest"}``). The first position of a folder
(:func:`baseline_position`) has no link: the first fetch starts a round filtered on
``receivedDateTime ge since``, so the messages that arrived since then are ingested and older
mail is not (Graph's delta filter only allows that one bound). Each page of a round is one
batch, so a large first sync makes durable progress page by page.

**MIME.** A page's new messages' bytes come through JSON ``$batch``, twenty ``/$value`` parts a
call (about 0.06 requests per message with the delta pages, where a GET each cost 1.01); a
batch takes as many of the mailbox's concurrent-request slots as Graph runs parts at once (4),
so one batch is in flight per mailbox. A single new message (the push path) is a plain GET.
The next page and its MIME are fetched while the consumer stores the current one.

**New vs changed.** Delta does not say whether an item was created or updated. An item counts
as new mail when it was received at or after the stream's bound; a message delivered before
is harmless (the core drops it by its idempotency key), and the ids this process has already
delivered are remembered (bounded) so an update costs no second ``/$value``. Updates and
``@removed`` entries are what :func:`changes` reports, from a delta stream of its own.

**Expired delta token (410).** Graph forgets a sync state it has not been asked about for a
while. The round starts again without changing the epoch: filtered from ``RECOVERY_WINDOW``
before the newest message delivered (so whatever arrived in the gap is in it), everything
yielded, duplicates dropped by the core, ending with the fresh deltaLink. Counted in
``mailport_sync_recoveries_total{connector="graph", reason="delta_expired"}`` and the connector's health.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from mailport.connectors.base import Batch, ChangeSet, Cursor, MessageChange, RemoteMessage
from mailport.connectors.graph.client import MESSAGE_FIELDS, GraphClient
from mailport.connectors.graph.models import (
    DeltaExpiredError,
    GraphMessage,
    format_datetime,
    parse_datetime,
)
from mailport.connectors.mail import imap_spelling
from mailport.metrics import SYNC_RECOVERIES

log = logging.getLogger(__name__)

RECOVERY_WINDOW = timedelta(hours=1)  # re-listed before the newest delivered message after a 410
# what a delta round reads of each message (its MIME comes from /$value)
DELTA_FIELDS = tuple(
    f
    for f in MESSAGE_FIELDS
    if f not in ("categories", "subject", "internetMessageId", "sentDateTime", "from", "hasAttachments")
)
PAGE_LIMIT = 100  # messages per delta page (Prefer: odata.maxpagesize); each page is one batch
REMEMBERED = 20_000  # ids delivered by this process, per folder (no second /$value for updates)


@dataclass(frozen=True, slots=True)
class Position:
    """Where a folder's stream is (see the module docstring)."""

    link: str | None
    since: datetime | None
    newest: datetime | None = None

    def encode(self) -> str:
        return json.dumps(
            {
                "link": self.link,
                "since": format_datetime(self.since) if self.since else None,
                "newest": format_datetime(self.newest) if self.newest else None,
            },
            separators=(",", ":"),
        )

    @classmethod
    def decode(cls, text: str) -> Position:
        """A stored position; a bare URL is a delta link of unknown age (no bound)."""
        if text.startswith("http"):
            return cls(text, None)
        data = json.loads(text) if text else {}
        return cls(data.get("link"), parse_datetime(data.get("since")), parse_datetime(data.get("newest")))

    def recovered(self) -> Position:
        """A new round after a 410, from the recovery window before the newest delivery."""
        since = self.since
        if self.newest is not None:
            bound = self.newest - RECOVERY_WINDOW
            since = bound if since is None else max(since, bound)
        return Position(None, since, self.newest)

    def admits(self, message: GraphMessage) -> bool:
        """Is this item new mail for the stream (received at or after its bound)?"""
        return self.since is None or message.received_at is None or message.received_at >= self.since


def baseline_position(since: datetime) -> Position:
    return Position(None, since)


def neutral_flags(message: GraphMessage) -> tuple[str, ...]:
    """Graph's state in the contract's neutral names (``answered`` is not exposed)."""
    flags = []
    if message.is_read:
        flags.append("seen")
    if message.flagged:
        flags.append("flagged")
    if message.is_draft:
        flags.append("draft")
    return tuple(flags)


class Delivered:
    """Ids this process delivered (a bounded LRU): an update of one costs no ``/$value``."""

    def __init__(self, limit: int = REMEMBERED) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._limit = limit

    def __contains__(self, item: str) -> bool:
        return item in self._ids

    def add(self, items: Sequence[str]) -> None:
        for item in items:
            self._ids[item] = None
            self._ids.move_to_end(item)
        while len(self._ids) > self._limit:
            self._ids.popitem(last=False)


class DeltaReader:
    """One folder's ingestion stream (one per connector, so per watched folder)."""

    def __init__(self, client: GraphClient, *, max_bytes: int) -> None:
        self.client = client
        self.max_bytes = max_bytes
        self.delivered = Delivered()
        self.recoveries = 0
        self.last_recovery: datetime | None = None

    async def fetch_since(self, cursor: Cursor, *, chunk: int, now: datetime) -> AsyncIterator[Batch]:
        position = Position.decode(cursor.position)
        try:
            async for batch, reached in self._round(cursor, position, chunk):
                position = reached
                yield batch
        except DeltaExpiredError as exc:
            self.recoveries += 1
            self.last_recovery = now
            SYNC_RECOVERIES.labels(connector="graph", reason="delta_expired").inc()
            position = position.recovered()
            log.warning(
                "graph folder %s: the delta token expired (%s); a new round from %s (duplicates are dropped)",
                cursor.scope,
                exc.code,
                format_datetime(position.since) if position.since else "the start",
            )
            async for batch, _ in self._round(cursor, position, chunk):
                yield batch

    async def _round(
        self, cursor: Cursor, position: Position, chunk: int
    ) -> AsyncIterator[tuple[Batch, Position]]:
        pages = self.client.delta(
            cursor.epoch,
            delta_link=position.link,
            select=DELTA_FIELDS,
            filter=None
            if position.link or position.since is None
            else f"receivedDateTime ge {format_datetime(position.since)}",
            max_page_size=max(1, min(chunk, PAGE_LIMIT)),
        )

        async def load(position: Position) -> tuple[list[RemoteMessage], Position] | None:
            """The next page and its new messages' MIME; None once the round is complete."""
            page = await anext(pages, None)
            if page is None:
                return None
            new = [m for m in page.items if m.id not in self.delivered and position.admits(m)]
            messages = await self._download(new)
            newest = max(
                [m.received_at for m in new if m.received_at is not None]
                + ([position.newest] if position.newest else []),
                default=None,
            )
            return messages, replace(
                position, link=page.next_link or page.delta_link or position.link, newest=newest
            )

        # One page ahead: the next page's MIME is fetched while the consumer stores this one
        # (fetching and storing take turns otherwise, each idle while the other works).
        ahead = asyncio.ensure_future(load(position))
        try:
            while (loaded := await ahead) is not None:
                messages, position = loaded
                ahead = asyncio.ensure_future(load(position))
                yield Batch(messages, Cursor(cursor.scope, cursor.epoch, position.encode())), position
                # the consumer asked for more: that batch is stored
                self.delivered.add([m.item for m in messages])
        finally:
            ahead.cancel()
            await asyncio.gather(ahead, return_exceptions=True)  # a prefetch's error goes unused
            await pages.aclose()

    async def _download(self, messages: Sequence[GraphMessage]) -> list[RemoteMessage]:
        """Their MIME in page order (:meth:`GraphClient.get_mimes`: ``$batch``, or a plain GET
        for one); one deleted meanwhile is left out (its ``@removed`` entry follows)."""
        if not messages:
            return []
        raws = await self.client.get_mimes([m.id for m in messages])
        return [self.remote(m, raw) for m, raw in zip(messages, raws, strict=True) if raw is not None]

    def remote(self, message: GraphMessage, raw: bytes) -> RemoteMessage:
        big = len(raw) > self.max_bytes
        return RemoteMessage(
            item=message.id,
            size=len(raw),
            flags=imap_spelling(neutral_flags(message)),
            received_at=message.received_at,
            raw=None if big else raw,
            headers=_header_block(raw) if big else None,
            oversized=big,
            source=message.source,
        )


def _header_block(raw: bytes) -> bytes:
    for separator in (b"\r\n\r\n", b"\n\n"):
        end = raw.find(separator)
        if end >= 0:
            return raw[: end + len(separator)]
    return raw[:65536]


# ---------------------------------------------------------------------- changes made on the server


@dataclass(frozen=True, slots=True)
class ChangeToken:
    """A changes stream's own delta link and when its last round started (items created since
    are new mail, announced by ``message.received``, not updates)."""

    link: str
    at: datetime

    def encode(self) -> str:
        return json.dumps({"link": self.link, "at": format_datetime(self.at)}, separators=(",", ":"))

    @classmethod
    def decode(cls, text: str) -> ChangeToken | None:
        try:
            data = json.loads(text)
            at = parse_datetime(data["at"])
            return None if at is None else cls(str(data["link"]), at)
        except (ValueError, KeyError, TypeError):
            return None


async def changes(client: GraphClient, folder_id: str, token: str | None, *, now: datetime) -> ChangeSet:
    """Updates (``message.updated``) and removals (``message.deleted``) since ``token``; without
    one (or after a 410), a silent round that records where the folder is."""
    known = ChangeToken.decode(token) if token else None
    found: list[MessageChange] = []
    link: str | None = None
    try:
        link = await _changes_round(client, folder_id, known, found)
    except DeltaExpiredError:
        log.warning("graph folder %s: the changes' delta token expired; starting anew", folder_id)
        known, found = None, []
    if link is None:
        link = await _changes_round(client, folder_id, None, [])
    return ChangeSet(found, ChangeToken(link, now).encode())


async def _changes_round(
    client: GraphClient, folder_id: str, known: ChangeToken | None, found: list[MessageChange]
) -> str:
    link = known.link if known else None
    async for page in client.delta(
        folder_id, delta_link=link, select=DELTA_FIELDS, max_page_size=500 if known is None else None
    ):
        if known is not None:
            for message in page.items:
                if message.received_at is not None and message.received_at >= known.at - timedelta(minutes=5):
                    continue  # new mail, told by message.received
                found.append(
                    MessageChange(
                        message.id,
                        neutral_flags(message),
                        message.change_key or "",
                        source=message.source,
                    )
                )
            found.extend(
                MessageChange(item, None, "", source={"graph": {"id": item, "folder_id": folder_id}})
                for item in page.removed_ids
            )
        link = page.delta_link or link
    assert link is not None, "a delta round ends with a deltaLink"
    return link
