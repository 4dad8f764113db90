"""The orchestrator: a watcher for every active mailbox of every tenant, following changes.

* **Following changes**: every ``reconcile_interval`` (default 0.5 s) one query reads each
  mailbox's *watch fingerprint* (connector, server, credentials, folders, interval, action,
  disabled);
  a new mailbox starts a watcher, a changed one restarts it, a deleted or disabled one stops
  it — within 2 s whichever process changed it. A change made through this process's
  :class:`~mailport.mailboxes.service.MailboxService` (the API, the web UI) calls
  :meth:`Orchestrator.poke`, which skips the wait. Health columns are not in the
  fingerprint, so a watcher recording its own status never restarts itself.
* **A watcher per watched folder** (``settings.folders``; :mod:`mailport.sync.folders` says
  why): each has its own connector and connection; the first folder's is the mailbox's
  watcher (``watchers``, after-processing), the others' are in ``folder_watchers``. They share
  the mailbox's lease and fence, and one health row. A changed list restarts them all: a folder
  removed is no longer watched, one added starts where it was added.
* **One process per mailbox**: the lease ``watcher:<mailbox id>`` (:mod:`mailport.leases`,
  renewed every ``lease_ttl / 3``) is taken before a watcher starts; another process sees it
  and leaves the mailbox alone, and takes it over when the owner dies and the lease expires.
  The watcher's chunk transactions are fenced with the lease's token: a watcher whose lease
  changed hands commits nothing more, and stops.
* **Start-up** is staggered (up to ``stagger_seconds`` spread) and connects are bounded by a
  semaphore (``max_concurrent_connects``), so a restart never opens 1,000 TLS handshakes at
  once against one server.
* **After-processing**: a lightweight loop wakes the watchers whose events were accepted
  (in-process notification, and a poll for acceptance written by other processes).
* **Push**: a :class:`~mailport.push.wakeups.WakeupFollower` wakes the watchers held here for
  the wake-ups push notifications recorded, whichever process received them.
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

from sqlalchemy import func, select

from mailport import leases
from mailport.clock import Clock, utc_now
from mailport.connectors.base import Connector
from mailport.errors import UnsupportedFeatureError
from mailport.mailboxes.models import Mailbox, MailboxStatus
from mailport.metrics import QUEUE_SIZE, WATCHERS
from mailport.push.wakeups import WakeupFollower
from mailport.services import Services
from mailport.store.tables import mailboxes
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
    ) -> None:
        self.services = services
        self.owner = owner or leases.new_holder()
        self.reconcile_interval = reconcile_interval
        self.full_interval = (
            lease_ttl / 3
        )  # leases are renewed (and other processes' expiries seen) this often
        self.lease_ttl = timedelta(seconds=lease_ttl)
        self.connect_slots = asyncio.Semaphore(max_concurrent_connects)
        self.stagger_seconds = stagger_seconds
        self.connector_factory = connector_factory or self._default_connector
        self.options = options or WatcherOptions()
        self.clock = clock
        self.watchers: dict[str, Watcher] = {}  # mailbox -> its first folder's watcher
        self.folder_watchers: dict[str, list[Watcher]] = {}  # mailbox -> its other folders'
        self._fingerprints: dict[str, str] = {}
        self._refused: dict[str, str] = {}  # mailbox -> fingerprint whose connector is unknown
        self._task: asyncio.Task[None] | None = None
        self._trim_task: asyncio.Task[None] | None = None
        self._actions_task: asyncio.Task[None] | None = None
        self._poke = asyncio.Event()
        self._unlisten: Callable[[], None] | None = None
        self._wakeups: WakeupFollower | None = None
        self._unlocal: Callable[[], None] | None = None
        self._started_once = False
        self._last_renew = 0.0
        self.ready = False
        # which tenants want changes made on the server as events (mailport.sync.interest)
        self.interest = ChangeInterest(services.database, on_new=self._wake_tenant)

    # ------------------------------------------------------------------ connectors

    def _default_connector(self, mailbox: Mailbox) -> Connector:
        """The connector the registry holds under ``mailbox.connector``, given this service's
        tokens, trust, guard and limits."""
        return self.services.connector(mailbox)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._unlisten = self.services.mailboxes.on_change(self.poke)
        await self.interest.start()
        await self.reconcile()
        self.ready = True
        self._task = asyncio.create_task(self._loop(), name="orchestrator")
        self._actions_task = asyncio.create_task(self._actions_loop(), name="orchestrator-actions")
        self._wakeups = WakeupFollower(self.services.database, self._wakeable, clock=self.clock)
        self._wakeups.start()  # push notifications received by any process
        self._unlocal = self.services.push.add_local(self._wakeable)  # … and by this one, at once

    async def stop(self) -> None:
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None
        if self._unlocal is not None:
            self._unlocal()
            self._unlocal = None
        if self._wakeups is not None:
            await self._wakeups.stop()
        await self.interest.stop()
        for task in (self._task, self._actions_task, self._trim_task):
            if task is not None:
                await cancel_and_wait(task, timeout=5)  # bounded: never hang shutdown
        self._task = self._actions_task = self._trim_task = None
        watchers = [*self.watchers.values(), *(w for ws in self.folder_watchers.values() for w in ws)]
        self.watchers, self.folder_watchers = {}, {}
        stopping = [asyncio.ensure_future(w.stop()) for w in watchers]
        if stopping:
            _, pending = await asyncio.wait(stopping, timeout=20)
            if pending:
                log.warning("%d watchers did not stop within 20 s; abandoned", len(pending))
        WATCHERS.set(0)
        try:
            async with self.services.database.transaction() as conn:
                await repo.release_leases(conn, self.owner)
        except Exception:  # the database may be gone at shutdown
            log.warning("could not release watcher leases", exc_info=True)
        self.ready = False

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
        self._poke.set()

    async def _signature(self) -> tuple[int, str]:
        """A cheap change detector: any create, delete or update moves count or max(updated_at)."""
        query = select(func.count(), func.max(mailboxes.c.updated_at))
        async with self.services.database.connect() as conn:
            count, latest = (await conn.execute(query)).one()
        return int(count), str(latest)

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        signature = await self._signature()
        last_full = loop.time()
        while True:
            poked = False
            try:
                await asyncio.wait_for(self._poke.wait(), self.reconcile_interval)
                poked = True
            except TimeoutError:
                pass
            self._poke.clear()
            try:
                current = await self._signature()
                if not poked and current == signature and loop.time() - last_full < self.full_interval:
                    continue
                signature, last_full = current, loop.time()
                await self.reconcile()
            except asyncio.CancelledError:
                raise
            except Exception:
                stop_if_cancelled()
                log.exception("reconciling watchers failed; retrying")

    # ------------------------------------------------------------------ reconcile

    async def _desired(self) -> dict[str, str]:
        query = select(mailboxes.c.id, mailboxes.c.status, *_FINGERPRINT)
        desired: dict[str, str] = {}
        async with self.services.database.connect() as conn:
            for row in await conn.execute(query):
                if row.status == MailboxStatus.DISABLED.value:
                    continue
                material = "\x1f".join("" if v is None else str(v) for v in row[2:])
                desired[row.id] = hashlib.sha256(material.encode()).hexdigest()
        return desired

    async def reconcile(self) -> None:
        desired = await self._desired()
        loop = asyncio.get_running_loop()
        for mailbox_id in [m for m in self.watchers if desired.get(m) != self._fingerprints.get(m)]:
            await self._stop_watcher(mailbox_id)
        now = self.clock()
        held: set[str] | None = None
        if loop.time() - self._last_renew > self.lease_ttl.total_seconds() / 3:
            async with self.services.database.transaction() as conn:
                held = await repo.renew_leases(conn, self.owner, now=now, ttl=self.lease_ttl)
            self._last_renew = loop.time()
            for mailbox_id in [m for m in self.watchers if m not in held]:
                log.warning("mailbox %s: lease lost to another process; stopping", mailbox_id)
                await self._stop_watcher(mailbox_id)
        self._refused = {m: f for m, f in self._refused.items() if desired.get(m) == f}
        missing = [m for m in desired if m not in self.watchers and m not in self._refused]
        first = not self._started_once
        spread = self.stagger_seconds if first and len(missing) > 20 else 0.0
        for mailbox_id in missing:
            async with self.services.database.transaction() as conn:
                lease = await repo.acquire_lease(conn, mailbox_id, self.owner, now=now, ttl=self.lease_ttl)
            if lease is None:
                continue
            try:
                mailbox = await self.services.mailboxes.repository.get_by_id(mailbox_id)
            except Exception:  # deleted between the two queries
                log.info("mailbox %s vanished before its watcher started", mailbox_id)
                continue
            try:
                watchers = self._folder_watchers(mailbox, leases.guard(lease))
            except UnsupportedFeatureError as exc:  # a connector key this build does not know
                await self._refuse(mailbox, desired[mailbox_id], exc)
                continue
            primary, *others = watchers
            self.watchers[mailbox_id] = primary
            if others:
                self.folder_watchers[mailbox_id] = others
            self._fingerprints[mailbox_id] = desired[mailbox_id]
            delay = random.uniform(0, spread) if spread else 0.0
            for watcher in watchers:
                watcher.start(delay=delay)
        if first and len(missing) >= 100:
            self._trim_task = asyncio.create_task(self._trim_after_startup(), name="orchestrator-trim")
        self._started_once = True
        WATCHERS.set(len(self.watchers))

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
                    connect_slots=self.connect_slots,
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

    async def _refuse(self, mailbox: Mailbox, fingerprint: str, exc: UnsupportedFeatureError) -> None:
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

    async def _stop_watcher(self, mailbox_id: str) -> None:
        watcher = self.watchers.pop(mailbox_id, None)
        others = self.folder_watchers.pop(mailbox_id, [])
        self._fingerprints.pop(mailbox_id, None)
        if watcher is not None:
            await asyncio.gather(*(w.stop() for w in [watcher, *others]))
            try:
                async with self.services.database.transaction() as conn:
                    await repo.release_leases(conn, self.owner, [mailbox_id])
            except Exception:
                log.warning("mailbox %s: could not release its lease", mailbox_id, exc_info=True)

    # ------------------------------------------------------------------ actions

    async def _actions_loop(self) -> None:
        """Wake the watchers whose events were accepted (after-processing actions)."""
        loop = asyncio.get_running_loop()
        last = last_gauge = 0.0
        version = self.services.events.version
        while True:
            await self.services.events.wait(timeout=2.0, since=version)
            version = self.services.events.version  # acceptances from now on wake the next round
            pause = 0.2 - (loop.time() - last)  # at most five checks a second under load
            if pause > 0:
                await asyncio.sleep(pause)
            last = loop.time()
            try:
                with_actions = any(
                    (w.mailbox.settings.after_processing or "none") != "none" for w in self.watchers.values()
                )
                ready: set[str] = set()
                async with self.services.database.connect() as conn:
                    if with_actions:
                        ready = await repo.mailboxes_with_accepted_actions(conn, now=self.clock())
                    if loop.time() - last_gauge > 10:
                        last_gauge = loop.time()
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
