"""Harvesting one mailbox from its source: the backfill over the chosen period and the
scheduled re-sync (issue 18), over any connector that lists folders and reads header fields.

A run (:meth:`ContactSync.run`, or the worker's :meth:`ContactSync.run_claimed`):

1. holds the mailbox's ``contact_sync`` claim (:mod:`mailport.contacts.schedule`);
2. opens a connection of its own through the services' connector factory (never one of the
   watchers' or the command pool's: a backfill may read for minutes);
3. chooses the folders: ``settings.contacts.folders``, else every folder but Junk, Trash,
   Drafts and Flagged (a view of others); where the source has an All Mail folder, that one and
   Sent only, as All Mail holds the inbox and every other label already (the Gmail API has no
   such folder but the same view, :meth:`~mailport.connectors.base.Connector.all_mail`: read
   label by label, the inbox's mail would be fetched again for IMPORTANT and its category);
4. per folder, reads the header fields of the mail that arrived since the folder's position
   (the period's start the first time), ``chunk`` messages at a time, and records each chunk
   with :func:`mailport.contacts.store.record` in one transaction together with the folder's new
   position and the claim's renewal. A crash therefore loses at most the chunk in flight, and
   the next run reads from the saved position; what it reads twice the digests count once.

A failure ends the run ``failed`` with ``last_error`` {code, message, attempts}: a temporary one
(:func:`mailport.failures.classify`) is retried after a backoff, one a person must fix (a refused
password) at the next scheduled time, a connector that cannot harvest never by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from mailport import leases
from mailport.clock import Clock, utc_now
from mailport.connectors.base import Connector, Feature
from mailport.connectors.folders import Folder, Role
from mailport.contacts import schedule
from mailport.contacts.blocklist import load_blocklist
from mailport.contacts.harvesting import SKIPPED_ROLES, WANTED, Harvester, enabled, normal_block
from mailport.contacts.models import Book, ContactSettings
from mailport.contacts.store import HarvestedMessage, announce_book, record
from mailport.errors import (
    ConflictError,
    ContactsNotEnabledError,
    MailportError,
    NotFoundError,
    UnsupportedFeatureError,
)
from mailport.events import EventLog
from mailport.failures import Verdict, classify
from mailport.mailboxes.models import Mailbox, MailboxStatus
from mailport.mailboxes.service import MailboxService
from mailport.retry import RetryPolicy

log = logging.getLogger(__name__)

CHUNK = 500  # messages read and recorded per transaction
CLAIM_SECONDS = 300.0  # a run's claim; renewed with every chunk recorded
OVERLAP = timedelta(days=1)  # a folder's position stays this far behind its newest arrival
RETRY = RetryPolicy(first_delay=60, multiplier=2, max_delay=6 * 3600, jitter=0.2)


@dataclass(slots=True)
class SyncReport:
    """What one run did."""

    mailbox_id: str
    full: bool
    read: int = 0  # header blocks read
    messages: int = 0  # messages counted (not counted before by this mailbox)
    created: int = 0  # contacts created
    updated: int = 0  # contacts whose figures changed
    folders: dict[str, int] = field(default_factory=dict)  # blocks read per folder

    def to_json(self) -> dict[str, Any]:
        return {
            "mailbox_id": self.mailbox_id,
            "full": self.full,
            "read": self.read,
            "messages": self.messages,
            "created": self.created,
            "updated": self.updated,
            "folders": dict(self.folders),
        }


def choose_folders(
    settings: ContactSettings, folders: Sequence[Folder], *, all_mail: str | None = None
) -> list[str]:
    """The folders a run harvests (see the module docstring); ``all_mail``: the source's All
    Mail where it is no listed folder (:meth:`~mailport.connectors.base.Connector.all_mail`)."""
    if settings.folders is not None:
        return list(settings.folders)
    usable = [f for f in folders if f.selectable and f.role not in SKIPPED_ROLES]
    everything = [f.path for f in usable if f.role is Role.ALL] or ([all_mail] if all_mail else [])
    if everything:
        return everything[:1] + [f.path for f in usable if f.role is Role.SENT]
    return [f.path for f in usable]


def _error(exc: BaseException, attempts: int) -> dict[str, Any]:
    if isinstance(exc, MailportError):
        return {"code": exc.code, "message": exc.message[:500], "attempts": attempts}
    return {
        "code": "internal_error",
        "message": f"unexpected {type(exc).__name__}; see the logs",
        "attempts": attempts,
    }


class ContactSync:
    """Requests, state and runs of the harvest of mailboxes (``services.contact_sync``)."""

    def __init__(
        self,
        events: EventLog,
        mailboxes: MailboxService,
        connector: Callable[[Mailbox], Connector],
        *,
        wake: Callable[[], None] = lambda: None,
        clock: Clock = utc_now,
        chunk: int = CHUNK,
        claim_seconds: float = CLAIM_SECONDS,
        retry: RetryPolicy = RETRY,
        owner: str | None = None,
        on_chunk: Callable[[SyncReport], Awaitable[None]] | None = None,
    ) -> None:
        self.events = events
        self.database = events.database
        self.mailboxes = mailboxes
        self.connector = connector
        self.wake = wake
        self.clock = clock
        self.chunk = chunk
        self.claim = timedelta(seconds=claim_seconds)
        self.retry = retry
        self.owner = owner or leases.new_holder()
        self.on_chunk = on_chunk  # after each chunk is committed (progress; tests stop a run there)

    # --- the API's side

    async def _mailbox(self, tenant_id: str, mailbox_id: str, owner: str | None) -> Mailbox:
        """The mailbox; 404 for another tenant's, or (``owner`` given) another owner's."""
        mailbox = await self.mailboxes.get(tenant_id, mailbox_id)
        if owner is not None and (mailbox.owner or "") != owner:
            raise NotFoundError(f"no mailbox {mailbox_id!r}")
        return mailbox

    async def state(
        self, tenant_id: str, mailbox_id: str, *, owner: str | None = None
    ) -> tuple[Mailbox, schedule.SyncState | None]:
        """The mailbox and its sync row (None: never switched on)."""
        mailbox = await self._mailbox(tenant_id, mailbox_id, owner)
        async with self.database.connect() as conn:
            return mailbox, await schedule.get(conn, mailbox.id)

    async def request(
        self, tenant_id: str, mailbox_id: str, *, full: bool = False, owner: str | None = None
    ) -> schedule.SyncState:
        """Ask for a run now (``full``: from the period's start again); the worker takes it.
        409 ``contacts_not_enabled`` when the mailbox harvests nothing."""
        mailbox = await self._mailbox(tenant_id, mailbox_id, owner)
        settings = self._settings(mailbox)
        now = self.clock()
        async with self.database.transaction() as conn:
            if full or await schedule.get(conn, mailbox.id) is None:
                await schedule.request(conn, mailbox.id, now=now, full=True, settings=settings)
            else:
                await schedule.request(conn, mailbox.id, now=now)
            found = await schedule.get(conn, mailbox.id)
        assert found is not None
        self.wake()
        return found

    @staticmethod
    def _settings(mailbox: Mailbox) -> ContactSettings:
        settings = mailbox.settings.contacts
        if not enabled(settings):
            raise ContactsNotEnabledError(f"mailbox {mailbox.id} does not harvest contacts")
        assert settings is not None
        return settings

    # --- runs

    async def run(self, mailbox_id: str, *, full: bool = False) -> SyncReport:
        """Harvest ``mailbox_id`` now, in this process (the CLI's ``mailport contacts sync``);
        409 ``conflict`` while another process runs it, ``contacts_not_enabled`` when off.
        A failure is recorded on the row and raised."""
        mailbox = await self.mailboxes.repository.get_by_id(mailbox_id)
        settings = self._settings(mailbox)
        now = self.clock()
        async with self.database.transaction() as conn:
            if full or await schedule.get(conn, mailbox_id) is None:
                await schedule.request(conn, mailbox_id, now=now, full=True, settings=settings)
            claimed = await schedule.claim(conn, mailbox_id, self.owner, now=now, until=now + self.claim)
        if claimed is None:
            raise ConflictError(
                f"the contacts of mailbox {mailbox_id} are being harvested by another process",
                hint="Wait for that run to end (GET /v1/mailboxes/{id}/contacts shows it).",
            )
        return await self.run_claimed(claimed, mailbox=mailbox, raise_errors=True)

    async def claim_due(self, limit: int) -> list[schedule.SyncState]:
        """Claim up to ``limit`` due runs for this process (the worker)."""
        now = self.clock()
        async with self.database.transaction() as conn:
            return await schedule.claim_due(conn, self.owner, now=now, until=now + self.claim, limit=limit)

    async def release(self, mailbox_id: str) -> None:
        """Give a claimed run back (this process is stopping); it resumes elsewhere or later."""
        async with self.database.transaction() as conn:
            await schedule.release(conn, mailbox_id, self.owner, now=self.clock())

    async def run_claimed(
        self, claimed: schedule.SyncState, *, mailbox: Mailbox | None = None, raise_errors: bool = False
    ) -> SyncReport:
        """Run a claimed row to its end: ``idle`` and scheduled again, or ``failed``."""
        full = not claimed.folders
        report = SyncReport(claimed.mailbox_id, full)
        settings: ContactSettings | None = None
        try:
            if mailbox is None:
                mailbox = await self.mailboxes.repository.get_by_id(claimed.mailbox_id)
            settings = self._settings(mailbox)
            if mailbox.health.status is MailboxStatus.DISABLED:
                log.info("contact sync of %s: the mailbox is disabled; not read", claimed.mailbox_id)
            else:
                await self._harvest(mailbox, settings, claimed, report)
        except schedule.ClaimLostError:
            log.info("contact sync of %s: switched off or taken over; stopped", claimed.mailbox_id)
            return report
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await self._failed(claimed, settings, exc)
            if raise_errors:
                raise
            if not isinstance(exc, MailportError):
                log.exception("contact sync of %s failed", claimed.mailbox_id)
            return report
        assert settings is not None
        now = self.clock()
        async with self.database.transaction() as conn:
            await schedule.finish(
                conn,
                claimed.mailbox_id,
                self.owner,
                now=now,
                next_at=now + timedelta(hours=settings.resync_hours),
            )
        return report

    async def _failed(
        self, claimed: schedule.SyncState, settings: ContactSettings | None, exc: BaseException
    ) -> None:
        previous = claimed.last_error or {}
        attempts = int(previous.get("attempts", 0)) + 1
        now = self.clock()
        hours = timedelta(hours=settings.resync_hours if settings else 24)
        next_at: datetime | None
        if isinstance(exc, ContactsNotEnabledError | UnsupportedFeatureError):
            next_at = None  # a settings change or a request schedules it again
        elif classify(exc) is Verdict.RETRY:
            next_at = min(now + timedelta(seconds=self.retry.delay(attempts)), now + hours)
        else:
            next_at = now + hours  # a person must act; try again at the usual time
        error = _error(exc, attempts)
        log.warning("contact sync of %s failed: [%s] %s", claimed.mailbox_id, error["code"], error["message"])
        async with self.database.transaction() as conn:
            await schedule.finish(conn, claimed.mailbox_id, self.owner, now=now, next_at=next_at, error=error)

    async def _harvest(
        self, mailbox: Mailbox, settings: ContactSettings, claimed: schedule.SyncState, report: SyncReport
    ) -> None:
        connector = self.connector(mailbox)
        if not connector.supports(Feature.FOLDERS):
            raise UnsupportedFeatureError(
                f"the {mailbox.connector} connector cannot list folders, so contacts cannot be harvested",
                hint="Harvesting reads the header fields of each folder; this connector has no folders. "
                "Switch harvesting off for this mailbox (settings.contacts: null).",
            )
        async with self.database.connect() as conn:
            harvester = Harvester(mailbox, settings, await load_blocklist(conn, mailbox.tenant_id))
        positions = claimed.positions()
        if not positions:  # from the period's start: the period ends now
            claimed = replace(claimed, since=self.clock() - timedelta(days=settings.backfill_days))
        try:
            await connector.connect()
            folders = choose_folders(settings, await connector.list_folders(), all_mail=connector.all_mail())
            positions = {
                path: at for path, at in positions.items() if path in folders
            }  # no longer read: gone
            for folder in folders:
                await self._folder(connector, folder, harvester, claimed, positions, report)
                await self._announce(harvester.book, claimed.mailbox_id)
        finally:
            with contextlib.suppress(Exception):
                await connector.disconnect()

    async def _announce(self, book: Book, mailbox_id: str) -> None:
        """``contact.created`` / ``contact.updated`` for what the batches changed, once per contact
        (also what a run that crashed before announcing left owed: the ``announced`` column)."""
        while True:
            async with self.events.transaction() as conn:
                if not await announce_book(conn, book, mailbox_id=mailbox_id, now=self.clock()):
                    return

    async def _folder(
        self,
        connector: Connector,
        folder: str,
        harvester: Harvester,
        claimed: schedule.SyncState,
        positions: dict[str, datetime],
        report: SyncReport,
    ) -> None:
        start = max(claimed.since, positions.get(folder, claimed.since))
        report.folders.setdefault(folder, 0)
        async for chunk in connector.header_blocks(folder, since=start, fields=WANTED, chunk=self.chunk):
            now = self.clock()
            harvested: list[HarvestedMessage] = []
            newest: datetime | None = None
            for item in chunk:
                if item.received_at is not None:
                    if item.received_at < claimed.since:
                        continue  # the source's SINCE counts whole days
                    newest = item.received_at if newest is None else max(newest, item.received_at)
                found = harvester.message(normal_block(item.block), item.received_at, fallback=now)
                if found is not None:
                    harvested.append(found)
            report.read += len(chunk)
            report.folders[folder] += len(chunk)
            if newest is not None:
                positions[folder] = max(positions.get(folder, claimed.since), newest - OVERLAP)
            else:
                positions.setdefault(folder, start)
            async with self.events.transaction() as conn:
                # no events per batch: a correspondent in every batch would be announced once per
                # batch; _announce tells each contact once per folder (store.announce_book)
                done = await record(
                    conn, harvester.book, claimed.mailbox_id, harvested, now=now, events=False
                )
                report.messages += done.messages
                report.created += len(done.created)
                report.updated += len(done.updated)
                await schedule.progress(
                    conn,
                    claimed.mailbox_id,
                    self.owner,
                    folders=positions,
                    messages=report.messages,
                    now=now,
                    until=now + self.claim,
                    since=claimed.since,
                )
            if self.on_chunk is not None:
                await self.on_chunk(report)
