"""The orchestrator: a watcher for every active mailbox this worker is assigned, following changes.

* **Assignment**: every process running watchers is a member of the fleet
  (:class:`~mailport.fleet.membership.Membership`: registered, heartbeating); the mailboxes are
  divided among the live, active members by :mod:`mailport.fleet.assignment`, which every
  member computes alike. This orchestrator wants the mailboxes assigned to it; alone (SQLite,
  one process) it wants them all.
* **Following changes at the cost of the changes**: the ids and watch fingerprints (connector,
  server, credentials, folders, interval, action, disabled) of all mailboxes are read at start
  and when the membership changes; otherwise only the mailboxes the change log names
  (:class:`~mailport.fleet.changes.ChangeFollower`: NOTIFY on PostgreSQL, a poll of
  ``reconcile_interval`` on SQLite) are read again. A new mailbox starts a watcher, a changed
  one restarts it, a deleted or disabled one stops it, within 2 s whichever process changed it.
  A change made through this process's :class:`~mailport.mailboxes.service.MailboxService`
  calls :meth:`Orchestrator.poke`, which skips the wait. Health columns are not in the
  fingerprint, so a watcher recording its own status never restarts itself.
* **Handover**: a mailbox no longer assigned here has its watchers stopped gracefully (the
  chunk in progress commits) and its lease released; the winner retries ``acquire`` for its
  wanted-but-unheld mailboxes about every second (one query for all of them) until it gets
  them. A clean stop drains: the member is marked ``draining`` (the others take its share),
  its watchers stop and release, then it deregisters.
* **A watcher per watched folder** (``settings.folders``; :mod:`mailport.sync.folders` says
  why): each has its own connector and connection; the first folder's is the mailbox's
  watcher (``watchers``, after-processing), the others' are in ``folder_watchers``. They share
  the mailbox's lease and fence, and one health row. A changed list restarts them all.
* **One process per mailbox**: the lease ``watcher:<mailbox id>`` (:mod:`mailport.leases`,
  renewed every ``lease_ttl / 3``) is taken before a watcher starts; a watcher whose lease was
  lost is stopped. A dead worker's leases expire after ``lease_ttl``, and its mailboxes'
  new owners take them then. The watcher's chunk transactions are fenced with the lease's
  token.
* **Start-up** is staggered (up to ``stagger_seconds`` spread) and connects are bounded by a
  this worker's share of the fleet's budgets (``budgets``, :mod:`mailport.fleet.budgets`: logins
  in flight per mail host, connects per second, per-account connection limits, with
  ``max_concurrent_connects`` for the process inside), the one place watchers wait to connect, so
  a restart never opens 1,000 TLS handshakes at once against one server.
* **After-processing**: a lightweight loop wakes the watchers whose events were accepted
  (in-process notification, and a poll for acceptance written by other processes).
* **Push**: a :class:`~mailport.push.wakeups.WakeupFollower` wakes the watchers held here for
  the wake-ups push notifications recorded, whichever process received them.
* **The heap**: what is alive when the orchestrator starts (and once a mass start-up has
  settled) is frozen out of the cyclic collector's full collections (:mod:`mailport.sync.heap`:
  they walked ~160,000 long-lived objects, ~100 ms of the event loop each, during a backlog);
  :meth:`Orchestrator.stop` thaws it.
* **Shutdown**: every watcher finishes its current chunk transaction, then disconnects;
  nothing in flight is lost (an uncommitted chunk is fetched again from the cursor).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import hashlib
import logging
import random
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from mailport import leases
from mailport.clock import Clock, utc_now
from mailport.connectors.base import Connector
from mailport.errors import UnsupportedFeatureError
from mailport.fleet import registry
from mailport.fleet.assignment import Assigner
from mailport.fleet.budgets import FleetBudgets
from mailport.fleet.changes import ChangeFollower
from mailport.fleet.listen import Listener
from mailport.fleet.membership import Membership
from mailport.fleet.stats import StatsCollector, StatsSource
from mailport.mailboxes.models import Mailbox, MailboxStatus
from mailport.metrics import QUEUE_SIZE, WATCHERS
from mailport.push.wakeups import WakeupFollower
from mailport.services import Services
from mailport.store.tables import mailboxes
from mailport.sync import heap
from mailport.sync import repository as repo
from mailport.sync.folders import MailboxFolders, resolve_watched
from mailport.sync.interest import ChangeInterest
from mailport.sync.watcher import Watcher, WatcherOptions
from mailport.tasks import cancel_and_wait, stop_if_cancelled

log = logging.getLogger(__name__)

_FINGERPRINT = (
    mailboxes.c.connector,
    mailboxes.c.imap_host,
    mailboxes.c.imap_port,
    mailboxes.c.imap_security,
    mailboxes.c.imap_username,
    mailboxes.c.imap_trusted_cert,
    mailboxes.c.pop3_host,
    mailboxes.c.pop3_port,
    mailboxes.c.pop3_security,
    mailboxes.c.pop3_username,
    mailboxes.c.pop3_trusted_cert,
    mailboxes.c.auth_method,
    mailboxes.c.password_enc,
    mailboxes.c.oauth_provider,
    mailboxes.c.oauth_connected_email,
    mailboxes.c.folder,
    mailboxes.c.folders,
    mailboxes.c.check_interval,
    mailboxes.c.after_processing,
)

ConnectorFactory = Callable[[Mailbox], Connector]


def release_free_memory() -> None:
    """``malloc_trim(0)`` where glibc provides it (Linux); a no-op elsewhere."""
    gc.collect()
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        return


class Orchestrator:
    def __init__(
        self,
        services: Services,
        *,
        owner: str | None = None,
        reconcile_interval: float = 0.5,
        lease_ttl: float = 30.0,
        max_concurrent_connects: int = 20,
        stagger_seconds: float = 5.0,
        connector_factory: ConnectorFactory | None = None,
        options: WatcherOptions | None = None,
        clock: Clock = utc_now,
        weight: float | None = None,
        stats: StatsSource | None = None,
        membership_refresh: float = 2.0,
        acquire_interval: float = 1.0,
        roles: tuple[str, ...] = (registry.WATCHERS,),
    ) -> None:
        self.services = services
        self.owner = owner or leases.new_holder()
        self.reconcile_interval = reconcile_interval
        self.lease_ttl = timedelta(seconds=lease_ttl)
        # where watchers wait to connect: this worker's share of the fleet's budgets
        self.budgets = FleetBudgets.from_settings(
            services.database, self.owner, services.settings, local_connects=max_concurrent_connects
        )
        self.stagger_seconds = stagger_seconds
        self.connector_factory = connector_factory or self._default_connector
        self.options = options or WatcherOptions()
        self.clock = clock
        self.acquire_interval = acquire_interval
        self.watchers: dict[str, Watcher] = {}  # mailbox -> its first folder's watcher
        self.folder_watchers: dict[str, list[Watcher]] = {}  # mailbox -> its other folders'
        self._with_actions: set[str] = set()  # watched mailboxes with an after-processing action
        # fingerprints are 32-byte digests (not 64-character hex strings): one per mailbox of the fleet
        self._fingerprints: dict[str, bytes] = {}  # of the mailboxes watched here
        self._known: dict[str, bytes] = {}  # every active mailbox -> its fingerprint
        self.wanted: set[str] = set()  # the mailboxes assigned to this worker
        self._refused: dict[str, bytes] = {}  # mailbox -> fingerprint whose connector is unknown
        self._stopping: set[asyncio.Future[None]] = set()
        database = services.database
        self.listener = Listener(database)
        self.membership = Membership(
            database,
            self.owner,
            weight=services.settings.worker_weight if weight is None else weight,
            lease_seconds=lease_ttl,
            roles=roles,
            stats=stats or StatsCollector(self),
            refresh_seconds=membership_refresh,
            listener=self.listener,
            clock=clock,
        )
        poll = reconcile_interval if database.dialect == "sqlite" else min(2.0, 4 * reconcile_interval)
        self.changes = ChangeFollower(database, poll_seconds=poll, listener=self.listener)
        self.assigner = Assigner()
        self._membership_seen = -1
        self._unmember: Callable[[], None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._trim_task: asyncio.Task[None] | None = None
        self._froze = False  # whether start() froze the heap (stop() thaws it)
        self._actions_task: asyncio.Task[None] | None = None
        self._unlisten: Callable[[], None] | None = None
        self._wakeups: WakeupFollower | None = None
        self._unlocal: Callable[[], None] | None = None
        self._started_once = False
        self._member = False
        self._renew_task: asyncio.Task[None] | None = None
        self._leaving: set[str] = set()  # mailboxes whose old watchers are still stopping
        self._last_acquire = 0.0
        self._blocked: set[str] = set()  # wanted, but another worker held them at the last try
        self._closing = False  # the loop ends after its round: never cancelled inside a query
        # A round applies (an O(N) pass over the watchers) only when something may have changed
        # since the last one that completed, or some wanted mailbox is still unheld: an idle
        # worker's rounds cost nothing per watcher (issue 21).
        self._dirty = 1  # bumped by whatever may change what _apply would do
        self._applied = 0  # the value of _dirty the last completed _apply started from
        self._unheld = True  # the last _apply left wanted mailboxes without a watcher
        self.ready = False
        # which tenants want changes made on the server as events (mailport.sync.interest)
        self.interest = ChangeInterest(services.database, on_new=self._wake_tenant)

    # ------------------------------------------------------------------ connectors

    def _default_connector(self, mailbox: Mailbox) -> Connector:
        """The connector the registry holds under ``mailbox.connector``, given this service's
        tokens, trust, guard and limits."""
        return self.services.connector(mailbox)

    def _membership_changed(self) -> None:
        """Workers came or went: reassign (at the next round) and reshare the budgets now."""
        self.budgets.apply(self.membership.workers)
        self._dirty += 1
        self.changes.poke()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._closing = False
        if not self._froze:  # the long-lived heap, out of the full collections' way (sync.heap)
            heap.freeze_long_lived()
            self._froze = True
        self._unlisten = self.services.mailboxes.on_change(self.poke)
        self.listener.start()
        await self.membership.start()
        self._member = True
        self._unmember = self.membership.on_change(self._membership_changed)
        self.budgets.apply(self.membership.workers)
        await self.interest.start()
        await self.changes.start()  # before the full read: a change made meanwhile is read again
        self._renew_task = asyncio.create_task(self._renew_loop(), name="orchestrator-renew")
        try:
            await self.reconcile()
        except Exception:  # a database hiccup ("too many clients") must not end the worker
            log.exception("the first reconcile failed; the loop retries it")
            self._membership_seen = -1  # the loop's next round reads every mailbox again
        self.ready = True
        self._task = asyncio.create_task(self._loop(), name="orchestrator")
        self._actions_task = asyncio.create_task(self._actions_loop(), name="orchestrator-actions")
        self._wakeups = WakeupFollower(self.services.database, self._wakeable, clock=self.clock)
        self._wakeups.start()  # push notifications received by any process
        self._unlocal = self.services.push.add_local(self._wakeable)  # … and by this one, at once

    async def drain(self) -> None:
        """Take no more mailboxes and hand this worker's over (the others take them as soon as
        their leases are released). ``stop()`` drains first; a runtime calls this early so the
        handover runs while its other parts stop."""
        if not self._member or self.membership.state == registry.DRAINING:
            return
        try:
            await self.membership.drain()
        except Exception:  # the database may be gone at shutdown
            log.warning("could not mark worker %s draining", self.owner, exc_info=True)
        self._dirty += 1
        self.changes.poke()

    async def stop(self, *, handover: bool = True) -> None:
        """Drain, stop every watcher (their chunks commit), release the leases, deregister.

        ``handover=False`` stops as a dying process would look to the others: no draining, the
        leases and the registration left to expire (for tests of a crash)."""
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None
        if self._unlocal is not None:
            self._unlocal()
            self._unlocal = None
        if self._unmember is not None:
            self._unmember()
            self._unmember = None
        if handover:
            await self.drain()
        if self._wakeups is not None:
            await self._wakeups.stop()
        await self.interest.stop()
        self._closing = True
        self.changes.poke()
        if self._task is not None:  # its round (a handover in progress) ends first, bounded
            await asyncio.wait({self._task}, timeout=5)
        for task in (self._task, self._actions_task, self._trim_task):
            if task is not None:
                await cancel_and_wait(task, timeout=5)  # bounded: never hang shutdown
        self._task = self._actions_task = self._trim_task = None
        watchers = [*self.watchers.values(), *(w for ws in self.folder_watchers.values() for w in ws)]
        self.watchers, self.folder_watchers = {}, {}
        self._with_actions = set()
        stopping = [asyncio.ensure_future(w.stop()) for w in watchers] + list(self._stopping)
        if stopping:
            _, pending = await asyncio.wait(stopping, timeout=20)
            if pending:
                log.warning("%d watchers did not stop within 20 s; abandoned", len(pending))
        WATCHERS.set(0)
        if handover:
            try:
                async with self.services.database.transaction() as conn:
                    await repo.release_leases(conn, self.owner)
            except Exception:  # the database may be gone at shutdown
                log.warning("could not release watcher leases", exc_info=True)
        if self._renew_task is not None:  # only now: a slow graceful stop keeps its leases
            await cancel_and_wait(self._renew_task, timeout=5)
            self._renew_task = None
        if self._member:
            await self.membership.stop(deregister=handover)
            self._member = False
        await self.listener.stop()
        await self.budgets.stop()
        self.ready = False
        if self._froze:
            self._froze = False
            heap.thaw()

    def _watcher(self, mailbox_id: str) -> Watcher | None:
        return self.watchers.get(mailbox_id)

    def _wake_tenant(self, tenant_id: str) -> None:
        """A tenant newly wants change events: its watchers start their streams now."""
        others = (w for ws in self.folder_watchers.values() for w in ws)
        for watcher in [*self.watchers.values(), *others]:
            if watcher.mailbox.tenant_id == tenant_id:
                watcher.wake()

    def _wakeable(self, mailbox_id: str) -> _AllFolders | None:
        """What a push wake-up wakes: every folder watcher of the mailbox."""
        if mailbox_id not in self.watchers:
            return None
        return _AllFolders([self.watchers[mailbox_id], *self.folder_watchers.get(mailbox_id, [])])

    def poke(self) -> None:
        """Reconcile now (a mailbox was created, changed or deleted in this process)."""
        self._dirty += 1
        self.changes.poke()

    async def _loop(self) -> None:
        while not self._closing:
            await self.changes.wait(self.acquire_interval if self._unheld else None)
            if self._closing:
                return
            try:
                await self._tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                stop_if_cancelled()
                log.exception("reconciling watchers failed; retrying")

    async def _tick(self) -> None:
        """One round: the changed mailboxes (or all, when the membership changed), then apply."""
        changed = await self.changes.read()
        if self.membership.version != self._membership_seen:
            self._dirty += 1
            await self._read_all()
        elif changed:
            self._dirty += 1
            await self._read_some(changed)
        if self._dirty != self._applied or self._unheld:
            await self._apply()

    # ------------------------------------------------------------------ reconcile

    @staticmethod
    def _fingerprint(row: Any) -> bytes | None:
        """The watch fingerprint of a row (id, status, *fingerprint columns); None if disabled."""
        if row.status == MailboxStatus.DISABLED.value:
            return None
        material = "\x1f".join("" if v is None else str(v) for v in row[2:])
        return hashlib.sha256(material.encode()).digest()

    async def _read_all(self) -> None:
        """Every active mailbox's fingerprint (at start and when the membership changed)."""
        self._membership_seen = self.membership.version
        query = select(mailboxes.c.id, mailboxes.c.status, *_FINGERPRINT)
        known: dict[str, bytes] = {}
        async with self.services.database.connect() as conn:
            for row in await conn.execute(query):
                fingerprint = self._fingerprint(row)
                if fingerprint is not None:
                    known[row.id] = fingerprint
        self._known = known
        self._assign()

    async def _read_some(self, mailbox_ids: set[str]) -> None:
        """Read again the mailboxes the change log named (gone or disabled ones drop out)."""
        ids = sorted(mailbox_ids)
        found: dict[str, bytes | None] = dict.fromkeys(ids)
        async with self.services.database.connect() as conn:
            for start in range(0, len(ids), 500):
                query = select(mailboxes.c.id, mailboxes.c.status, *_FINGERPRINT).where(
                    mailboxes.c.id.in_(ids[start : start + 500])
                )
                for row in await conn.execute(query):
                    found[row.id] = self._fingerprint(row)
        membership_changed = False
        for mailbox_id, fingerprint in found.items():
            if fingerprint is None:
                membership_changed |= self._known.pop(mailbox_id, None) is not None
            else:
                membership_changed |= mailbox_id not in self._known
                self._known[mailbox_id] = fingerprint
        if membership_changed:
            self._assign()

    def _assign(self) -> None:
        """This worker's mailboxes: none while draining, else what the assignment gives it."""
        if self.membership.state != registry.ACTIVE:
            self.wanted = set()
            return
        self.wanted = self.assigner.mine(self._known, self.membership.active_weights(), self.owner)

    async def reconcile(self) -> None:
        """Read every mailbox again and start, restart and stop watchers to match."""
        await self._read_all()
        await self._apply()

    async def _apply(self) -> None:
        dirty = self._dirty
        await self._apply_round()
        self._applied = dirty  # completed: nothing to do again until something changes

    async def _apply_round(self) -> None:
        loop = asyncio.get_running_loop()
        known = self._known
        # handed over: stopped in the background (their leases are released as each one stops),
        # so this round goes on; changed: restarted, so the old watchers stop first
        for mailbox_id in [m for m in self.watchers if m not in self.wanted]:
            self._stop_watcher_later(mailbox_id)
        changed = [m for m in self.watchers if known.get(m) != self._fingerprints.get(m)]
        if changed:
            await asyncio.gather(*(self._stop_watcher(m) for m in changed))
        now = self.clock()
        self._refused = {m: f for m, f in self._refused.items() if known.get(m) == f}
        skipped = self.watchers.keys() | self._refused.keys() | self._leaving
        missing = sorted(m for m in self.wanted if m not in skipped)
        self._unheld = bool(missing)
        if not missing:
            self._started_once = True
            return
        first = not self._started_once
        if loop.time() - self._last_acquire >= self.acquire_interval * 0.9:
            self._last_acquire = loop.time()  # about once a second: everything unheld again
        else:
            # those another worker held a moment ago wait for the next round; the rest go now
            missing = [m for m in missing if m not in self._blocked]
            if not missing:
                return
        holders: dict[str, leases.Lease] = {}
        names = [repo.WATCHER_LEASES + m for m in missing]
        async with self.services.database.connect() as conn:  # who holds them now: one query a 1,000
            for start in range(0, len(names), 1000):
                holders.update(await leases.current(conn, names[start : start + 1000], now=now))
        free = [
            m
            for m in missing
            if (lease := holders.get(repo.WATCHER_LEASES + m)) is None
            or lease.holder == self.owner
            or leases.holder_is_dead(lease.holder)
        ]
        self._blocked = ((self._blocked & self.wanted) | set(missing)) - set(free)
        spread = self.stagger_seconds if first and len(free) > 20 else 0.0
        for mailbox_id in free:
            await self._start_watchers(mailbox_id, spread=spread)
        if first and len(free) >= 100:
            self._trim_task = asyncio.create_task(self._trim_after_startup(), name="orchestrator-trim")
        self._started_once = True
        WATCHERS.set(len(self.watchers))

    async def _start_watchers(self, mailbox_id: str, *, spread: float) -> None:
        now = self.clock()  # each its own: a long round must not shorten the later leases
        async with self.services.database.transaction() as conn:
            lease = await repo.acquire_lease(conn, mailbox_id, self.owner, now=now, ttl=self.lease_ttl)
        if lease is None:
            return
        try:
            mailbox = await self.services.mailboxes.repository.get_by_id(mailbox_id)
        except Exception:  # deleted between the two queries
            log.info("mailbox %s vanished before its watcher started", mailbox_id)
            async with self.services.database.transaction() as conn:
                await repo.release_leases(conn, self.owner, [mailbox_id])
            return
        try:
            watchers = self._folder_watchers(mailbox, leases.guard(lease))
        except UnsupportedFeatureError as exc:  # a connector key this build does not know
            await self._refuse(mailbox, self._known.get(mailbox_id, b""), exc)
            return
        primary, *others = watchers
        self.watchers[mailbox_id] = primary
        if (mailbox.settings.after_processing or "none") != "none":
            self._with_actions.add(mailbox_id)
        if others:
            self.folder_watchers[mailbox_id] = others
        self._fingerprints[mailbox_id] = self._known.get(mailbox_id, b"")
        delay = random.uniform(0, spread) if spread else 0.0
        for watcher in watchers:
            watcher.start(delay=delay)

    def _folder_watchers(self, mailbox: Mailbox, fence: leases.Fence) -> list[Watcher]:
        """A watcher per watched folder, the first folder's first, each with a connector (and so
        a connection) of its own. One folder: the mailbox's health is recorded as it always was;
        several: through their :class:`MailboxFolders`."""
        watched = mailbox.settings.watched
        shared = MailboxFolders(self.services.mailboxes, watched) if len(watched) > 1 else None
        watchers = []
        for index, folder in enumerate(watched):
            watchers.append(
                Watcher(
                    mailbox,
                    self.connector_factory(mailbox),
                    log_=self.services.events,
                    mailboxes=shared.sink(folder.spec) if shared else self.services.mailboxes,
                    owner=self.owner,
                    connect_slots=self.budgets.gate(mailbox, index),
                    options=self.options,
                    clock=self.clock,
                    fence=fence,
                    folder=folder.spec,
                    primary=index == 0,
                    since=folder.added_at,
                    resolve=shared.resolve if shared else resolve_watched,
                    interest=self.interest,
                )
            )
        return watchers

    async def _refuse(self, mailbox: Mailbox, fingerprint: bytes, exc: UnsupportedFeatureError) -> None:
        """A mailbox whose connector cannot be built is not watched: it shows the error once and
        is tried again when it changes; the other mailboxes' watchers start as usual."""
        log.warning("mailbox %s: not watched: %s", mailbox.id, exc.message)
        self._refused[mailbox.id] = fingerprint
        async with self.services.database.transaction() as conn:
            await repo.release_leases(conn, self.owner, [mailbox.id])
        await self.services.mailboxes.record_health(
            mailbox.tenant_id,
            mailbox.id,
            status=MailboxStatus.ERROR,
            error=f"[{exc.code}] {exc.message}",
            at=self.clock(),
        )

    async def _trim_after_startup(self) -> None:
        """Once a mass start-up has settled, hand the heap its TLS handshakes and first fetches
        left behind back to the OS (glibc keeps freed memory otherwise: ~10 MiB per 1,000)."""
        for _ in range(300):
            if not any(w.status.state in ("starting", "connecting") for w in self.watchers.values()):
                break
            await asyncio.sleep(1.0)
        await asyncio.sleep(2.0)
        release_free_memory()
        heap.refreeze()  # the watchers are long-lived too

    async def _stop_watcher(self, mailbox_id: str) -> None:
        """Stop the mailbox's watchers (their chunks commit), then release its lease: handover."""
        stopping = self._stop_watcher_later(mailbox_id)
        if stopping is not None:
            await asyncio.shield(stopping)

    def _stop_watcher_later(self, mailbox_id: str, *, lost: bool = False) -> asyncio.Future[None] | None:
        """:meth:`_stop_watcher` in the background. Shielded and remembered: a stop() cancelling
        the loop meanwhile still waits for it, and the mailbox is not started again here before
        its old watchers stopped and released the lease (``_leaving``)."""
        watcher = self.watchers.pop(mailbox_id, None)
        others = self.folder_watchers.pop(mailbox_id, [])
        self._with_actions.discard(mailbox_id)
        self._dirty += 1
        self._fingerprints.pop(mailbox_id, None)
        if watcher is None:
            return None
        stopping = asyncio.ensure_future(self._stop_and_release(mailbox_id, [watcher, *others], lost=lost))
        self._stopping.add(stopping)
        self._leaving.add(mailbox_id)

        def done(future: asyncio.Future[None]) -> None:
            self._stopping.discard(future)
            self._leaving.discard(mailbox_id)
            self._dirty += 1
            self.changes.poke()  # wanted again meanwhile: start it now

        stopping.add_done_callback(done)
        return stopping

    async def _renew_loop(self) -> None:
        """Renew this worker's leases every third of their time, in a task of its own: a long
        round of the reconcile loop (a mass start, a handover) must never let them lapse. A
        mailbox whose lease another process took meanwhile has its watchers stopped."""
        period = self.lease_ttl.total_seconds() / 3
        while True:
            await asyncio.sleep(period)
            before = set(self.watchers)  # a watcher started during the renewal is not "lost"
            try:
                async with self.services.database.transaction() as conn:
                    held = await repo.renew_leases(conn, self.owner, now=self.clock(), ttl=self.lease_ttl)
            except asyncio.CancelledError:
                raise
            except Exception:
                stop_if_cancelled()
                log.warning("renewing watcher leases failed; retrying", exc_info=True)
                continue
            for mailbox_id in [m for m in before if m in self.watchers and m not in held]:
                log.warning("mailbox %s: lease lost to another process; stopping", mailbox_id)
                self._stop_watcher_later(mailbox_id, lost=True)

    async def _stop_and_release(self, mailbox_id: str, watchers: list[Watcher], *, lost: bool) -> None:
        await asyncio.gather(*(w.stop() for w in watchers))
        try:
            async with self.services.database.transaction() as conn:
                released = await repo.release_leases(conn, self.owner, [mailbox_id])
            if not released and not lost:  # paused past the lease: another process took it meanwhile
                log.warning("mailbox %s: lease lost to another process before its handover", mailbox_id)
        except Exception:
            log.warning("mailbox %s: could not release its lease", mailbox_id, exc_info=True)
        WATCHERS.set(len(self.watchers))

    # ------------------------------------------------------------------ actions

    async def _actions_loop(self) -> None:
        """Wake the watchers whose events were accepted (after-processing actions)."""
        loop = asyncio.get_running_loop()
        last = last_gauge = 0.0
        version = self.services.events.version
        gauged: tuple[int, int] | None = None  # (events version, watchers) the gauge was read at
        while True:
            await self.services.events.wait(timeout=2.0, since=version)
            version = self.services.events.version  # acceptances from now on wake the next round
            pause = 0.2 - (loop.time() - last)  # at most five checks a second under load
            if pause > 0:
                await asyncio.sleep(pause)
            last = loop.time()
            # Idle costs nothing per watcher (issue 21): the mailboxes with an action are kept as
            # watchers start and stop, and the gauge is read again only when an event was
            # appended or accepted, or the watchers changed, since it was last read.
            due_gauge = loop.time() - last_gauge > 10 and gauged != (version, len(self.watchers))
            if not self._with_actions and not due_gauge:
                continue
            try:
                ready: set[str] = set()
                async with self.services.database.connect() as conn:
                    if self._with_actions:
                        ready = await repo.mailboxes_with_accepted_actions(conn, now=self.clock())
                    if due_gauge:
                        last_gauge = loop.time()
                        gauged = (version, len(self.watchers))
                        queued = await repo.unaccepted_counts(conn, list(self.watchers))
                        QUEUE_SIZE.labels(queue="events_unaccepted").set(sum(queued.values()))
                for mailbox_id in ready:
                    watcher = self.watchers.get(mailbox_id)
                    if watcher is not None:
                        watcher.wake()
            except asyncio.CancelledError:
                raise
            except Exception:
                stop_if_cancelled()
                log.exception("checking accepted actions failed")

    # ------------------------------------------------------------------ status

    def running(self) -> int:
        return len(self.watchers)


class _AllFolders:
    """The folder watchers of one mailbox, woken together."""

    def __init__(self, watchers: list[Watcher]) -> None:
        self._watchers = watchers

    def wake(self) -> None:
        for watcher in self._watchers:
            watcher.wake()
