"""Contacts kept current from the event stream: new mail shows up in contacts within seconds of
its ``message.received``, without waiting for the next scheduled re-sync.

One reader, ``harvest`` (a row of ``contact_feed`` holds the last ``seq`` it passed), in one
process at a time (the lease ``contacts_feed``, :mod:`mailport.leases`): it reads the
``message.received`` events of the mailboxes that harvest, takes each message's header block
from the stored source (``messages.raw`` up to the end of the header), or from the event's
``headers`` when the source was too large to keep or has expired, and records the harvest with
:func:`mailport.contacts.store.record` **in the same transaction** that moves its position on
(fenced by its lease): a crash neither loses a message nor counts one twice, and a message the
backfill also reads is counted once (the same digest, :mod:`mailport.contacts.harvesting`).

Which folders: those of ``settings.contacts.folders`` when set; else any folder the watchers
deliver from but Junk, Trash, Drafts and Flagged, told by their well-known names (the feed does
not ask the server). Mail from before harvesting was switched on is the backfill's; the reader
starts at the end of the log the first time it runs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from mailport import leases
from mailport.clock import Clock, utc_now
from mailport.connectors.folders import role_of
from mailport.contacts.blocklist import load_blocklist
from mailport.contacts.harvesting import SKIPPED_ROLES, Harvester, enabled, header_of, normal_block
from mailport.contacts.models import ContactSettings
from mailport.contacts.rules import BlockList
from mailport.contacts.store import HarvestedMessage, lock_book, record
from mailport.errors import LeaseLostError, NotFoundError
from mailport.events import EventLog, EventType, last_seq
from mailport.mailboxes.models import Mailbox
from mailport.mailboxes.service import MailboxService
from mailport.messages.headers import date
from mailport.store.database import dialect_insert
from mailport.store.tables import contact_feed, events, mailboxes, messages
from mailport.tasks import cancel_and_wait, stop_if_cancelled

log = logging.getLogger(__name__)

NAME = "harvest"  # the reader's row in contact_feed
LEASE = "contacts_feed"
BATCH = 200  # events per transaction
LEASE_SECONDS = 30.0
POLL_SECONDS = 2.0
_LEAF = re.compile(r"[./]")


def wanted_folder(settings: ContactSettings, folder: str) -> bool:
    """Does a message delivered from ``folder`` count (see the module docstring)?"""
    if settings.folders is not None:
        return folder in settings.folders
    leaf = _LEAF.split(folder)[-1] if folder.upper() != "INBOX" else folder
    return role_of(leaf, delimiter=None) not in SKIPPED_ROLES


def block_of(raw: bytes | None, payload: dict[str, Any]) -> bytes:
    """A stored message's header block: from its source, else from the event's headers."""
    if raw:
        return header_of(raw)
    lines = [f"{name}: {value}\r\n" for name, value in payload.get("headers") or ()]
    return "".join(lines).encode("utf-8", "surrogateescape")


class ContactFeed:
    """The ``harvest`` reader: ``start()`` / ``stop()``; :meth:`run_once` is one batch (tests)."""

    def __init__(
        self,
        events_log: EventLog,
        mailboxes: MailboxService,
        *,
        clock: Clock = utc_now,
        batch: int = BATCH,
        poll_seconds: float = POLL_SECONDS,
        lease_seconds: float = LEASE_SECONDS,
        holder: str | None = None,
    ) -> None:
        self.events = events_log
        self.database = events_log.database
        self.mailboxes = mailboxes
        self.clock = clock
        self.batch = batch
        self.poll_seconds = poll_seconds
        self.ttl = timedelta(seconds=lease_seconds)
        self.holder = holder or leases.new_holder()
        self._leases = leases.Leases(self.database, clock=clock)
        self._lease: leases.Lease | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._loop(), name="contacts-feed")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task, timeout=10)
            self._task = None
        if self._lease is not None:
            try:
                await self._leases.release(self._lease)
            except Exception:  # it runs out by itself
                log.warning("releasing the contacts feed's lease failed", exc_info=True)
            self._lease = None

    async def _loop(self) -> None:
        while True:
            try:
                self._lease = await self._leases.acquire(LEASE, self.holder, ttl=self.ttl)
                if self._lease is None:
                    await asyncio.sleep(self.poll_seconds)
                    continue
                position, more = await self.run_once(self._lease)
                if not more:
                    await self.events.wait_after(position, self.poll_seconds)
            except LeaseLostError:
                self._lease = None
            except Exception:  # a database hiccup must not end the loop
                stop_if_cancelled()
                log.exception("contacts feed pass failed; trying again in %.1f s", self.poll_seconds)
                await asyncio.sleep(self.poll_seconds)

    async def position(self) -> int:
        """The last seq passed (the end of the log, the first time)."""
        async with self.database.transaction() as conn:
            return await _position(conn, now=self.clock())

    async def run_once(self, lease: leases.Lease) -> tuple[int, bool]:
        """One batch: harvest, record and move on, under ``lease``; (the position now, whether
        more events are waiting)."""
        async with self.database.transaction() as conn:
            start = await _position(conn, now=self.clock())
            end = await last_seq(conn)
        if end <= start:
            return start, False
        async with self.database.connect() as conn:
            found = list(
                await conn.execute(
                    select(
                        events.c.seq,
                        events.c.tenant_id,
                        events.c.mailbox_id,
                        events.c.payload,
                        events.c.created_at,
                    )
                    .join(mailboxes, mailboxes.c.id == events.c.mailbox_id)
                    .where(
                        events.c.seq > start,
                        events.c.seq <= end,
                        events.c.type == EventType.MESSAGE_RECEIVED.value,
                        mailboxes.c.contacts.is_not(None),
                    )
                    .order_by(events.c.seq)
                    .limit(self.batch)
                )
            )
            payloads = [json.loads(row.payload) for row in found]
            raws = await _sources(conn, [p.get("id") for p in payloads])
            blocklists: dict[str, BlockList] = {}
            for tenant_id in {row.tenant_id for row in found}:
                blocklists[tenant_id] = await load_blocklist(conn, tenant_id)
        more = len(found) == self.batch
        position = found[-1].seq if more else end
        harvesters = await self._harvesters({row.mailbox_id for row in found}, blocklists)
        harvested: dict[str, list[HarvestedMessage]] = {}
        for row, payload in zip(found, payloads, strict=True):
            harvester = harvesters.get(row.mailbox_id)
            if harvester is None or not wanted_folder(harvester.settings, str(payload.get("folder", ""))):
                continue
            block = normal_block(block_of(raws.get(payload.get("id")), payload))
            sent = date(payload["date"]) if payload.get("date") else None
            at = min(sent, row.created_at) if sent is not None else row.created_at
            message = harvester.message(block, at, fallback=row.created_at)
            if message is not None:
                harvested.setdefault(row.mailbox_id, []).append(message)
        now = self.clock()
        async with self.events.transaction() as conn:
            # every book first, in one order: record() appends events under the event log's lock,
            # and a run holding one of these books waits for that lock (PostgreSQL)
            books = {
                (h.book.tenant_id, h.book.owner): h.book for m, h in harvesters.items() if m in harvested
            }
            for key in sorted(books):
                await lock_book(conn, books[key])
            for mailbox_id, found_messages in sorted(harvested.items()):
                await record(conn, harvesters[mailbox_id].book, mailbox_id, found_messages, now=now)
            await conn.execute(
                update(contact_feed).where(contact_feed.c.name == NAME).values(seq=position, updated_at=now)
            )
            await leases.fence(conn, lease)
        return position, more

    async def _harvesters(
        self, mailbox_ids: set[str], blocklists: dict[str, BlockList]
    ) -> dict[str, Harvester]:
        out: dict[str, Harvester] = {}
        for mailbox_id in sorted(mailbox_ids):
            try:
                mailbox: Mailbox = await self.mailboxes.repository.get_by_id(mailbox_id)
            except NotFoundError:
                continue  # deleted meanwhile
            settings = mailbox.settings.contacts
            if enabled(settings):
                assert settings is not None
                out[mailbox_id] = Harvester(mailbox, settings, blocklists[mailbox.tenant_id])
        return out


async def _position(conn: AsyncConnection, *, now: Any) -> int:
    row = (await conn.execute(select(contact_feed.c.seq).where(contact_feed.c.name == NAME))).first()
    if row is not None:
        return int(row.seq)
    end = await last_seq(conn)
    await conn.execute(
        dialect_insert(conn, contact_feed)
        .values(name=NAME, seq=end, updated_at=now)
        .on_conflict_do_nothing(index_elements=["name"])
    )
    return end


async def _sources(conn: AsyncConnection, ids: Sequence[Any]) -> dict[str, bytes]:
    """The stored sources of the messages ``ids`` that still have one (not oversized, not expired)."""
    wanted = [i for i in ids if isinstance(i, str)]
    out: dict[str, bytes] = {}
    for start in range(0, len(wanted), 500):
        rows = await conn.execute(
            select(messages.c.id, messages.c.raw).where(
                messages.c.id.in_(wanted[start : start + 500]), messages.c.raw.is_not(None)
            )
        )
        out.update({row.id: bytes(row.raw) for row in rows})
    return out
