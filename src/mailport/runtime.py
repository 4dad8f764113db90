"""The background work of one process: the mailbox watchers (the orchestrator), the webhook
dispatcher (with the broker publishers of ``MAILPORT_BROKERS``), the retention janitor, the
send worker and the contacts worker, started and stopped in one place.

``mailport serve`` (through the app factory's lifespan), ``mailport worker`` and the embedded
``mailport.watch(ingest=True)`` all run their background work through :class:`Runtime`, so
which parts run, in which order they start, and how they stop is decided here only. Each part
keeps its own lease or claim in the database, so several processes may run the same parts.
Each part's ``stop()`` ends its tasks with :func:`mailport.tasks.cancel_and_wait`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from mailport import leases
from mailport.bootstrap import build
from mailport.config import Settings
from mailport.fleet import registry
from mailport.fleet.membership import Membership
from mailport.fleet.stats import StatsSource, empty
from mailport.janitor import Janitor, start_janitor
from mailport.services import Services
from mailport.store.sqlite_watch import DEFAULT_INTERVAL as COMMIT_POLL

if TYPE_CHECKING:
    from mailport.brokers import Publisher
    from mailport.connectors.gmail.pull import GmailPuller
    from mailport.contacts.worker import ContactWorker
    from mailport.delivery import Dispatcher
    from mailport.delivery.process import DeliveryProcess
    from mailport.sending.worker import SendWorker
    from mailport.sync import Orchestrator

log = logging.getLogger(__name__)


class Runtime:
    """Starts the chosen parts on ``start()`` and stops them, last started first, on ``stop()``.

    ``watchers``, ``delivery``, ``janitor``, ``sending`` and ``contacts`` switch the orchestrator,
    the webhook dispatcher, the janitor, the send worker and the contacts worker on or off. The
    parts are reachable (``orchestrator``, ``dispatcher``, ``janitor``, ``sender``, ``contacts``)
    once started, for readiness checks and tests. The send worker's and the contacts worker's
    claims keep each queued message and each harvest run to one process, so they run in every
    process that runs background work (never in ``mailport.watch()``, which only reads).

    Fleet membership: the orchestrator registers this process as a ``watchers`` worker (and
    ``api`` too when ``api``: ``mailport serve``); an API process without watchers registers
    with the role ``api`` alone, so per-account connection limits are shared among the
    processes that open command connections (:mod:`mailport.fleet.budgets`). A worker without
    watchers (``MAILPORT_WORKER_PARTS``) registers with its parts as its ``roles`` (e.g.
    ``delivery``): listed by ``GET /v1/workers``, given no mailboxes and no budget share.

    ``delivery_process`` (``mailport serve`` with ``MAILPORT_DELIVERY_PROCESS``): the webhook
    dispatcher runs in a child ``mailport worker`` that this process starts, wakes at each
    commit and stops (:mod:`mailport.delivery.process`); ``parent_wakes`` is that child's side.
    """

    def __init__(
        self,
        services: Services,
        *,
        watchers: bool = True,
        delivery: bool = True,
        janitor: bool = True,
        sending: bool = True,
        contacts: bool = True,
        stats: StatsSource | None = None,
        api: bool = False,
        roles: tuple[str, ...] = (),
        delivery_process: bool = False,
        parent_wakes: bool = False,
    ) -> None:
        self.services = services
        self.stats = stats  # what the watchers' worker tells the fleet in each heartbeat
        self.serves_api = api  # registered with the role ``api`` (budgets share per-account limits)
        # a worker without watchers registers with these (its parts), so the fleet lists it
        self.roles = roles
        self.membership: Membership | None = None  # an API process's, when it runs no watchers
        self.wants_watchers = watchers
        self.wants_delivery = delivery
        self.wants_janitor = janitor
        self.wants_sending = sending
        self.wants_contacts = contacts
        # webhook delivery in a child process (serve, MAILPORT_DELIVERY_PROCESS), not here
        self.wants_delivery_process = delivery_process
        # a child of serve: the parent wakes this dispatcher at each commit (no commit poll)
        self.parent_wakes = parent_wakes
        self.delivery_process: DeliveryProcess | None = None
        self.orchestrator: Orchestrator | None = None
        self.dispatcher: Dispatcher | None = None
        self.brokers: list[Publisher] = []  # one per MAILPORT_BROKERS entry, with the dispatcher
        self.janitor: Janitor | None = None
        self.sender: SendWorker | None = None
        self.contacts: ContactWorker | None = None  # harvest runs and the event-stream reader
        self.gmail_pull: GmailPuller | None = None  # Gmail notifications by Pub/Sub pull, when set
        self._stopped = False

    @classmethod
    def for_app(cls, services: Services, *, serve: bool) -> Runtime:
        """What an API process runs. ``MAILPORT_WATCHERS`` decides the background work (the
        watchers, the webhook dispatcher and the janitor); unset, only ``mailport serve`` runs it
        (an app embedded with ``create_app()`` runs none). ``false`` makes an API-only process:
        its request handlers then never share an event loop with ingestion or delivery, which
        ``mailport worker`` processes do (a busy API cannot delay new mail's webhooks)."""
        configured = services.settings.watchers
        background = bool(configured) if configured is not None else serve
        # MAILPORT_DELIVERY_PROCESS: serve's webhook delivery in a child (a core of its own)
        child = background and serve and services.settings.delivery_process
        return cls(
            services,
            watchers=background,
            delivery=background and not child,
            delivery_process=child,
            janitor=background,
            sending=background,
            contacts=background,
            api=serve,
        )

    @classmethod
    def for_worker(cls, services: Services, *, parent_wakes: bool = False) -> Runtime:
        """What ``mailport worker`` runs: the parts named in ``MAILPORT_WORKER_PARTS`` (all by
        default), so that e.g. webhook delivery gets a process, and a core, of its own.
        ``parent_wakes``: the delivery child of ``mailport serve``, woken by its parent."""
        parts = tuple(dict.fromkeys(services.settings.worker_parts))
        return cls(
            services,
            watchers="watchers" in parts,
            delivery="delivery" in parts,
            janitor="janitor" in parts,
            sending="sending" in parts,
            contacts="contacts" in parts,
            roles=parts,
            parent_wakes=parent_wakes,
        )

    def readiness(self) -> dict[str, bool]:
        """For a worker's ``/readyz``: whether each started part that can be waited for runs
        (the watchers once they watch, the webhook dispatcher once its supervisor runs)."""
        checks: dict[str, bool] = {}
        if self.wants_watchers:
            checks["watchers"] = bool(self.orchestrator is not None and self.orchestrator.ready)
        if self.wants_delivery:
            checks["delivery"] = bool(self.dispatcher is not None and self.dispatcher.running)
        return checks

    @property
    def delivering(self) -> bool | None:
        """For serve's ``/readyz``: None unless webhook delivery runs in a child process, else
        whether that child's dispatcher runs."""
        return None if self.delivery_process is None else self.delivery_process.ready

    @property
    def watching(self) -> bool | None:
        """For ``/readyz``: None when this process runs no watchers, else whether they run."""
        return None if self.orchestrator is None else bool(self.orchestrator.ready)

    async def start(self) -> None:
        """Start the chosen parts; on a failure, stop those already started and raise."""
        try:
            if self.wants_watchers:
                from mailport.sync import Orchestrator

                settings = self.services.settings
                roles = (registry.WATCHERS, registry.API) if self.serves_api else (registry.WATCHERS,)
                self.orchestrator = Orchestrator(
                    self.services,
                    max_concurrent_connects=settings.max_concurrent_connects,
                    lease_ttl=settings.lease_seconds,
                    stats=self.stats,
                    roles=roles,
                )
                await self.orchestrator.start()
                from mailport.connectors.gmail.pull import build_puller

                self.gmail_pull = build_puller(self.services)  # MAILPORT_GMAIL_PUBSUB_SUBSCRIPTION
                if self.gmail_pull is not None:
                    self.gmail_pull.start()
            elif self.serves_api or self.roles:
                settings = self.services.settings
                self.membership = Membership(
                    self.services.database,
                    leases.new_holder(),
                    roles=(registry.API,) if self.serves_api else self.roles,
                    weight=settings.worker_weight,
                    lease_seconds=settings.lease_seconds,
                    stats=self.stats or empty,
                )
                await self.membership.start()
            if self.wants_delivery:
                # the dispatcher's own lease keeps it to one process per database
                from mailport.delivery import start_dispatcher

                # its failover follows MAILPORT_LEASE_SECONDS, at most its own 15 s
                # without watchers here, the events come from other processes: on SQLite, look
                # for their commits (PostgreSQL's NOTIFY needs no look)
                self.dispatcher = await start_dispatcher(
                    self.services,
                    lease_ttl=min(15.0, self.services.settings.lease_seconds),
                    commit_poll=0.0 if self.wants_watchers or self.parent_wakes else COMMIT_POLL,
                )
                if self.services.settings.brokers:  # each publisher's lease: one process per broker
                    from mailport.brokers import start_publishers

                    self.brokers = start_publishers(self.services)
            if self.wants_delivery_process:
                from mailport.delivery.process import DeliveryProcess

                # the child is a `mailport worker` with serve's environment: its own HTTP port
                # (and metrics) only when MAILPORT_WORKER_PORT is set
                self.delivery_process = DeliveryProcess(
                    self.services.events, worker_port=self.services.settings.worker_port
                )
                self.delivery_process.start()
            if self.wants_janitor:
                self.janitor = start_janitor(self.services.database, self.services.settings)
            if self.wants_sending:
                from mailport.sending.worker import SendWorker

                self.sender = SendWorker(self.services)
                self.sender.start()
            if self.wants_contacts:
                self.contacts = start_contacts(self.services)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop what runs, the last started first (chunks in progress commit); once. The
        watchers' worker is marked draining before anything else, and deregisters last, after
        its watchers stopped and released their mailboxes to the others."""
        if self._stopped:
            return
        self._stopped = True
        if self.orchestrator is not None:
            # draining first: the other workers take this one's mailboxes while the rest stops
            await self.orchestrator.drain()
        if self.contacts is not None:
            await self.contacts.stop()
        if self.sender is not None:
            await self.sender.stop()
        if self.janitor is not None:
            await self.janitor.stop()
        for publisher in self.brokers:
            await publisher.stop()
        if self.dispatcher is not None:
            await self.dispatcher.stop()
        if self.delivery_process is not None:
            await self.delivery_process.stop()
        if self.gmail_pull is not None:
            await self.gmail_pull.stop()
        if self.orchestrator is not None:
            await self.orchestrator.stop()
        if self.membership is not None:
            await self.membership.stop()


def start_contacts(services: Services) -> ContactWorker:
    """The contacts worker (harvest runs, ``MAILPORT_CONTACTS_CONCURRENCY`` at once) with the
    event-stream reader, woken by every mailbox change and sync request of this process."""
    from mailport.contacts.feed import ContactFeed
    from mailport.contacts.worker import ContactWorker

    feed = ContactFeed(services.events, services.mailboxes)
    worker = ContactWorker(
        services.contact_sync,
        feed=feed,
        wakeup=services.contacts_wakeup,
        concurrency=services.settings.contacts_concurrency,
    )
    stop_listening = services.mailboxes.on_change(worker.wake)
    worker.on_stop(stop_listening)
    worker.start()
    return worker


class OwnedRuntime:
    """A service graph (built here unless given) and its :class:`Runtime`, owned by one
    background task that closes them when told to stop or when cancelled.

    For ``mailport.watch()``: Python closes an abandoned async generator from a task that
    asyncio schedules later, and the loop may be closed before that task has finished; what
    needs closing therefore belongs to a task of its own, which the loop's shutdown cancels and
    waits for like any other.
    """

    def __init__(self, settings: Settings | None, services: Services | None, *, watchers: bool) -> None:
        self._settings = settings
        self._given = services
        self._watchers = watchers
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> Services:
        """The services, once built and (with ``watchers``) watching."""
        if self._given is not None and not self._watchers:
            return self._given  # nothing to own, nothing to close
        ready: asyncio.Future[Services] = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._run(ready), name="mailport-watch")
        return await ready

    async def _run(self, ready: asyncio.Future[Services]) -> None:
        runtime = None
        active = self._given
        try:
            if active is None:
                active = await build(self._settings or Settings())
            if self._watchers:
                runtime = Runtime(
                    active, watchers=True, delivery=False, janitor=False, sending=False, contacts=False
                )
                await runtime.start()
            ready.set_result(active)
            await self._stop.wait()
        except Exception as exc:  # handed to the reader (never left for "never retrieved")
            if not ready.done():
                ready.set_exception(exc)
        finally:
            if not ready.done():
                ready.cancel()
            try:
                if runtime is not None:
                    await runtime.stop()
                if active is not None and self._given is None:
                    await active.aclose()
            except Exception:  # nobody awaits an abandoned reader's cleanup: say it here
                log.warning("closing mailport.watch() failed", exc_info=True)

    async def stop(self) -> None:
        """Close and wait; the cleanup goes on (shielded) if the caller is cancelled meanwhile."""
        if self._task is not None:
            self._stop.set()
            await asyncio.shield(self._task)
