"""A fleet of real ``mailport worker`` processes on one PostgreSQL database, watching real
Dovecot mailboxes, for the multi-process tests of issue 20.

What the tests need and nothing in ``tests/fixtures`` gave:

* :class:`Fleet` starts, stops (SIGTERM), kills (SIGKILL) and pauses (SIGSTOP/SIGCONT) worker
  processes, each with its own data directory and log, and reads who holds what: the live
  ``watcher:<mailbox id>`` leases (holder ``host:pid:nonce``; the pid names the process) and the
  ``workers`` rows (migration 0023), straight from the database, as an operator would.
* :func:`dovecot_sessions` asks Dovecot (``doveadm who``) how many IMAP sessions each user has:
  the outside view of "no mailbox is watched twice".
* :class:`MailPump` delivers mail over LMTP to every mailbox in turn at a fixed rate (a thread:
  ``smtplib`` speaks LMTP and the pump must not wait on the test's event loop), each message
  with a Message-ID of its own.
* :func:`wait_exactly_once` checks the ``events`` table: every pumped message is there once as
  ``message.received`` of its mailbox (by Message-ID), nothing twice, nothing unexpected.

Why the database and not ``GET /v1/workers``: that endpoint is built on another branch; the
tables are the contract every branch builds to, and the assertions must not depend on the code
under test reporting on itself.
"""

from __future__ import annotations

import asyncio
import json
import math
import signal
import smtplib
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import asyncpg

from mailport.bootstrap import build
from mailport.crypto import Secret
from mailport.mailboxes.models import AuthMethod, NewMailbox, ProcessingSettings, Security, ServerSettings
from tests.fixtures.api import make_settings
from tests.fixtures.process import clean_environment, start_mailport
from tests.mailstack.dovecot import Dovecot

WATCHER_PREFIX = "watcher:"


# --------------------------------------------------------------------------- the mailboxes


async def seed_mailboxes(
    database_url: str, data_dir: Path, secret_key: str, dovecot: Dovecot, count: int, *, tag: str
) -> dict[str, str]:
    """A tenant with ``count`` password mailboxes on ``dovecot`` (throw-away ``dyn`` users, so
    no Dovecot config changes); mailbox id -> user. Migrates the empty database first."""
    settings = make_settings(database_url, data_dir, secret_key).model_copy(
        update={"allow_private_hosts": True}
    )
    services = await build(settings, migrate=True)
    try:
        tenant, _key = await services.tenants.create_tenant(f"fleet-{tag}")
        users: dict[str, str] = {}
        for index in range(count):
            user, password = dovecot.dyn_user(f"f{tag}{index:03d}")
            mailbox = await services.mailboxes.create(
                tenant.id,
                NewMailbox(
                    email=user,
                    auth_method=AuthMethod.PASSWORD,
                    imap=ServerSettings("127.0.0.1", dovecot.imap_port, Security.NONE),
                    password=Secret(password),
                    settings=ProcessingSettings(check_interval=60),
                ),
            )
            users[mailbox.id] = user
        return users
    finally:
        await services.aclose()


def dovecot_sessions(dovecot: Dovecot) -> Counter[str]:
    """IMAP sessions per user now, as Dovecot counts them (``doveadm who -1``)."""
    out = dovecot.doveadm("who", "-1").stdout.decode()
    sessions: Counter[str] = Counter()
    for line in out.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 2 and parts[1] == "imap":
            sessions[parts[0]] += 1
    return sessions


# --------------------------------------------------------------------------- the processes


@dataclass
class Worker:
    """One ``mailport worker`` process of the fleet."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    started: float = field(default_factory=time.monotonic)
    signalled: float | None = None  # when it was sent SIGTERM, SIGKILL or SIGSTOP (monotonic)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def log(self, tail: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
        except OSError:
            return ""


@dataclass(frozen=True)
class Registered:
    """A row of ``workers`` (migration 0023), as much of it as the tests look at."""

    id: str
    pid: int
    state: str
    weight: float
    expires_at: datetime


def asyncpg_target(database_url: str) -> tuple[str, dict[str, str]]:
    """The DSN and server settings asyncpg wants for a SQLAlchemy URL of ``fresh_database_url``
    (``postgresql+asyncpg://…/db?search_path=t_…``)."""
    parts = urlsplit(database_url)
    query = parse_qs(parts.query)
    dsn = parts._replace(scheme="postgresql", query="").geturl()
    settings = {"search_path": query["search_path"][0]} if "search_path" in query else {}
    return dsn, settings


class Fleet:
    """Worker processes on one database; every process started here is stopped by :meth:`close`."""

    def __init__(self, root: Path, env: Mapping[str, str], database_url: str) -> None:
        self.root = root
        self.env = dict(env)
        self.database_url = database_url
        self.workers: list[Worker] = []  # every one ever started, in order
        self._conn: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()  # one connection, read by the test and its samplers

    # ----------------------------------------------------------- processes

    def start(self, count: int = 1) -> list[Worker]:
        """``count`` more workers, each with a data directory and a log of its own."""
        started = []
        for _ in range(count):
            name = f"w{len(self.workers) + 1}"
            data_dir = self.root / name
            data_dir.mkdir(parents=True, exist_ok=True)
            environment = clean_environment()
            environment.update(self.env, MAILPORT_DATA_DIR=str(data_dir))
            log_path = self.root / f"{name}.log"
            proc = start_mailport("worker", cwd=data_dir, env=environment, log_path=log_path)
            worker = Worker(name, proc, log_path)
            self.workers.append(worker)
            started.append(worker)
        return started

    @property
    def running(self) -> list[Worker]:
        return [w for w in self.workers if w.running]

    def by_pid(self, pid: int) -> Worker | None:
        return next((w for w in self.workers if w.pid == pid), None)

    async def terminate(self, worker: Worker, *, timeout: float = 30.0) -> float:
        """SIGTERM, and how long the worker took to exit (it must exit 0: a graceful stop)."""
        began = worker.signalled = time.monotonic()
        worker.proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(worker.proc.wait, timeout)
        assert code == 0, f"{worker.name} exited {code}\n{worker.log()}"
        return time.monotonic() - began

    async def kill(self, worker: Worker) -> None:
        """SIGKILL: no handover, no release; the leases stay until someone takes them."""
        worker.signalled = time.monotonic()
        worker.proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(worker.proc.wait, 10)

    def pause(self, worker: Worker) -> None:
        worker.signalled = time.monotonic()
        worker.proc.send_signal(signal.SIGSTOP)

    def resume(self, worker: Worker) -> None:
        worker.proc.send_signal(signal.SIGCONT)

    def signal_term(self, worker: Worker) -> None:
        """SIGTERM without waiting (see :meth:`terminate`)."""
        worker.signalled = time.monotonic()
        worker.proc.send_signal(signal.SIGTERM)

    async def close(self, *, grace: float = 5.0) -> None:
        """Stop what still runs: SIGCONT (a paused one cannot exit), SIGTERM, SIGKILL after
        ``grace`` seconds (the test is over: a slow graceful stop only costs wall time)."""
        for worker in self.running:
            worker.proc.send_signal(signal.SIGCONT)
            worker.proc.send_signal(signal.SIGTERM)
        for worker in self.workers:
            try:
                await asyncio.to_thread(worker.proc.wait, grace)
            except subprocess.TimeoutExpired:
                worker.proc.kill()
                await asyncio.to_thread(worker.proc.wait, 10)
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    def logs(self, tail: int = 3000) -> str:
        """Every worker's log tail, for an assertion's message."""
        return "\n".join(f"--- {w.name} (pid {w.pid}) ---\n{w.log(tail)}" for w in self.workers)

    def lost_leases(self) -> dict[str, int]:
        """Worker -> how many times one of its watchers found its lease taken by another
        ("changed hands", "lease lost"), for workers never signalled: a running worker that
        keeps renewing should never see that."""
        found = {}
        for worker in (w for w in self.workers if w.signalled is None):
            text = worker.log(10_000_000)
            found[worker.name] = text.count("changed hands") + text.count("lease lost")
        return {name: count for name, count in found.items() if count}

    def tracebacks(self) -> list[str]:
        return [w.name for w in self.workers if "Traceback" in w.log(10_000_000)]

    # ----------------------------------------------------------- database views

    async def _fetch(self, query: str, *args: object) -> list[asyncpg.Record]:
        async with self._lock:
            if self._conn is None or self._conn.is_closed():
                dsn, server_settings = asyncpg_target(self.database_url)
                self._conn = await asyncpg.connect(dsn, server_settings=server_settings, timeout=10)
            return list(await self._conn.fetch(query, *args))

    async def holders(self) -> dict[str, int]:
        """mailbox id -> pid of the process holding its watcher lease now (unexpired, not
        released). The pid may be a dead process's: see :meth:`live_holders`."""
        rows = await self._fetch(
            "SELECT name, holder FROM leases WHERE name LIKE 'watcher:%' "
            "AND holder IS NOT NULL AND expires_at > $1",
            datetime.now(UTC),
        )
        return {r["name"][len(WATCHER_PREFIX) :]: int(r["holder"].split(":")[-2]) for r in rows}

    async def live_holders(self) -> dict[str, int]:
        """:meth:`holders` held by a worker of this fleet that still runs."""
        alive = {w.pid for w in self.running}
        return {m: pid for m, pid in (await self.holders()).items() if pid in alive}

    async def shares(self) -> dict[str, int]:
        """Worker name -> how many mailboxes it holds, for every running worker (0 included)."""
        held = Counter((await self.live_holders()).values())
        return {w.name: held.get(w.pid, 0) for w in self.running}

    async def leases_of(self, worker: Worker) -> int:
        """How many watcher leases still name ``worker`` as holder, expired or not (a graceful
        stop releases them all; a killed worker's stay until someone takes them)."""
        rows = await self._fetch(
            "SELECT count(*) FROM leases WHERE name LIKE 'watcher:%' AND holder LIKE $1",
            f"%:{worker.pid}:%",
        )
        return int(rows[0][0])

    async def lease_margins(self) -> dict[int, float]:
        """pid -> seconds until the first of its watcher leases expires (negative: expired and
        not yet taken): how close each holder lets its leases come to running out."""
        rows = await self._fetch(
            "SELECT holder, min(expires_at) AS first FROM leases WHERE name LIKE 'watcher:%' "
            "AND holder IS NOT NULL GROUP BY holder"
        )
        now = datetime.now(UTC)
        return {int(r["holder"].split(":")[-2]): (r["first"] - now).total_seconds() for r in rows}

    async def registered(self) -> list[Registered]:
        """The ``workers`` rows, live or not."""
        rows = await self._fetch("SELECT id, pid, state, weight, expires_at FROM workers ORDER BY started_at")
        return [Registered(r["id"], r["pid"], r["state"], r["weight"], r["expires_at"]) for r in rows]

    async def received(self) -> list[tuple[str, str]]:
        """(mailbox id, Message-ID without brackets) of every ``message.received`` event."""
        rows = await self._fetch("SELECT mailbox_id, payload FROM events WHERE type = 'message.received'")
        return [(r["mailbox_id"], bare(json.loads(r["payload"]).get("message_id") or "")) for r in rows]

    async def ingested_at(self) -> dict[tuple[str, str], float]:
        """(mailbox id, Message-ID) -> when its first ``message.received`` event was written."""
        rows = await self._fetch(
            "SELECT mailbox_id, payload, created_at FROM events WHERE type = 'message.received' ORDER BY seq"
        )
        found: dict[tuple[str, str], float] = {}
        for r in rows:
            key = (r["mailbox_id"], bare(json.loads(r["payload"]).get("message_id") or ""))
            found.setdefault(key, r["created_at"].timestamp())
        return found


def bare(message_id: str) -> str:
    return message_id.strip().strip("<>")


# --------------------------------------------------------------------------- balance


def room(total: int, workers: int) -> int:
    """The design's cap per worker of equal weight: ``ceil(1.05 · N / workers)``."""
    return math.ceil(1.05 * total / workers)


def balance_problems(shares: Mapping[str, int], total: int, *, tolerance: float) -> list[str]:
    """Why ``shares`` (worker -> mailboxes held) is not every mailbox held once with each worker
    within ``tolerance`` of its equal share and at most the design's room; [] when it is."""
    problems = []
    if not shares:
        return ["no worker runs"]
    if sum(shares.values()) != total:
        problems.append(f"{sum(shares.values())} of {total} mailboxes held by running workers")
    fair = total / len(shares)
    low, high = fair * (1 - tolerance), min(fair * (1 + tolerance), room(total, len(shares)))
    for name, count in sorted(shares.items()):
        if not low <= count <= high:
            problems.append(f"{name} holds {count}, not within [{low:.1f}, {high:.1f}]")
    return problems


async def coverage_problems(fleet: Fleet, workers: Iterable[Worker], mailboxes: Iterable[str]) -> list[str]:
    """Why not every one of ``mailboxes`` is held by one of ``workers`` (running); [] when all are."""
    pids = {w.pid for w in workers if w.running}
    holders = await fleet.holders()
    orphans = [m for m in mailboxes if holders.get(m) not in pids]
    return [f"{len(orphans)} mailboxes not held by {sorted(pids)}, e.g. {orphans[:3]}"] if orphans else []


async def wait_for(
    check: Callable[[], Awaitable[list[str]]], *, timeout: float, interval: float = 0.25
) -> tuple[float, list[str]]:
    """Poll ``check`` (a list of problems) until it reports none or ``timeout`` passes; the
    seconds it took and the last problems ([] on success)."""
    began = time.monotonic()
    while True:
        problems = await check()
        if not problems or time.monotonic() - began > timeout:
            return time.monotonic() - began, problems
        await asyncio.sleep(interval)


async def wait_stable(fleet: Fleet, *, quiet: float = 2.0, timeout: float = 30.0) -> float:
    """Until no mailbox changed holder for ``quiet`` seconds (or ``timeout``); how long it took.
    For a fleet still settling after its start, whatever its assignment does."""
    began = time.monotonic()
    last, since = await fleet.live_holders(), time.monotonic()
    while time.monotonic() - since < quiet and time.monotonic() - began < timeout:
        await asyncio.sleep(0.25)
        now = await fleet.live_holders()
        if now != last:
            last, since = now, time.monotonic()
    return time.monotonic() - began


class HolderTimeline:
    """Samples :meth:`Fleet.holders` in the background (every ``interval`` seconds) so a test can
    say when each mailbox moved: ``moved_at(mailboxes, to=pids, after=t)``."""

    def __init__(self, fleet: Fleet, *, interval: float = 0.2) -> None:
        self.fleet = fleet
        self.interval = interval
        self.samples: list[tuple[float, dict[str, int]]] = []  # monotonic time, holders
        self.margins: dict[str, float] = {}  # worker -> least lease time left seen while it ran
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            at = time.monotonic()
            holders = await self.fleet.holders()
            steady = {w.pid: w for w in self.fleet.running if w.signalled is None}
            for pid, left in (await self.fleet.lease_margins()).items():
                if pid in steady:
                    name = steady[pid].name
                    self.margins[name] = min(left, self.margins.get(name, left))
            self.samples.append((at, holders))
            await asyncio.sleep(self.interval)

    async def __aenter__(self) -> HolderTimeline:
        self._task = asyncio.create_task(self._run(), name="holder-timeline")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def moved_at(self, mailboxes: Iterable[str], *, to: set[int], after: float) -> dict[str, float | None]:
        """For each mailbox, seconds after ``after`` when it was first seen held by one of ``to``
        (None: never)."""
        found: dict[str, float | None] = dict.fromkeys(mailboxes)
        for at, holders in self.samples:
            if at < after:
                continue
            for mailbox, seen in found.items():
                if seen is None and holders.get(mailbox) in to:
                    found[mailbox] = at - after
        return found

    def history(self, mailbox: str, *, after: float) -> list[tuple[float, int | None]]:
        """(seconds after ``after``, holder pid) each time ``mailbox``'s holder changed."""
        changes: list[tuple[float, int | None]] = []
        for at, holders in self.samples:
            if at >= after and (not changes or changes[-1][1] != holders.get(mailbox)):
                changes.append((round(at - after, 1), holders.get(mailbox)))
        return changes

    def handoffs(self) -> int:
        """How many times a mailbox was seen with a different holder than in the sample before."""
        count = 0
        for (_, before), (_, after) in zip(self.samples, self.samples[1:], strict=False):
            count += sum(1 for m, pid in after.items() if m in before and before[m] != pid)
        return count


class DoubleWatchSampler:
    """Samples Dovecot's sessions in the background: any user ever seen with two IMAP sessions
    at once means two watchers of one mailbox (every mailbox watches one folder)."""

    def __init__(self, dovecot: Dovecot, users: Iterable[str], *, interval: float = 0.5) -> None:
        self.dovecot = dovecot
        self.users = set(users)
        self.interval = interval
        self.doubles: dict[str, int] = {}
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="double-watch-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for user, count in dovecot_sessions(self.dovecot).items():
                if user in self.users and count > 1:
                    self.doubles[user] = max(count, self.doubles.get(user, 0))
            self.samples += 1
            self._stop.wait(self.interval)

    def __enter__(self) -> DoubleWatchSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


# --------------------------------------------------------------------------- mail


def pump_message(message_id: str, user: str) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "Pump <pump@example.test>", user, message_id
    msg["Message-ID"] = f"<{message_id}>"
    msg.set_content("fleet test mail")
    return msg.as_bytes().replace(b"\n", b"\r\n")


class MailPump:
    """Delivers one message every ``1 / rate`` seconds over Dovecot's LMTP, to each user in
    turn; remembers (user, Message-ID) of every delivery Dovecot accepted."""

    def __init__(self, dovecot: Dovecot, users: Iterable[str], *, rate: float, tag: str) -> None:
        self.dovecot = dovecot
        self.users = sorted(users)
        self.rate = rate
        self.tag = tag
        self.sent: list[tuple[str, str, float]] = []  # user, message id, when (time.time())
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mail-pump", daemon=True)

    def _run(self) -> None:
        lmtp: smtplib.LMTP | None = None
        began = time.monotonic()
        number = 0
        try:
            while not self._stop.is_set():
                due = began + number / self.rate
                if self._stop.wait(max(0.0, due - time.monotonic())):
                    break
                user = self.users[number % len(self.users)]
                message_id = f"pump-{self.tag}-{number:06d}@fleet.test"
                try:
                    if lmtp is None:
                        lmtp = smtplib.LMTP("127.0.0.1", self.dovecot.lmtp_port, timeout=10)
                    lmtp.sendmail("pump@example.test", [user], pump_message(message_id, user))
                    self.sent.append((user, message_id, time.time()))
                except (smtplib.SMTPException, OSError) as exc:
                    self.errors.append(f"{message_id}: {exc!r}")
                    lmtp = None
                number += 1
        finally:
            if lmtp is not None:
                try:
                    lmtp.quit()
                except (smtplib.SMTPException, OSError):
                    pass

    def __enter__(self) -> MailPump:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(15)


async def delays(
    fleet: Fleet, sent: Iterable[tuple[str, str, float]], mailbox_of: Mapping[str, str]
) -> list[float]:
    """Seconds from each delivery to its event, for the messages that have one."""
    written = await fleet.ingested_at()
    keys = [((mailbox_of[user], message_id), at) for user, message_id, at in sent]
    return sorted(written[key] - at for key, at in keys if key in written)


def summary(seconds: list[float]) -> str:
    if not seconds:
        return "none"
    median, p95 = seconds[len(seconds) // 2], seconds[int(len(seconds) * 0.95)]
    return f"median {median:.2f}s, p95 {p95:.2f}s, max {seconds[-1]:.2f}s"


async def wait_exactly_once(
    fleet: Fleet,
    sent: Iterable[tuple[str, str, float]],
    mailbox_of: Mapping[str, str],
    *,
    timeout: float = 30.0,
    settle: float = 2.0,
) -> list[str]:
    """Wait until every sent message is a ``message.received`` event of its mailbox, then
    ``settle`` seconds more (a late duplicate shows up then); the problems: messages missing,
    received twice, or received but never sent. [] when every message is there exactly once."""
    expected = {(mailbox_of[user], message_id) for user, message_id, _ in sent}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if expected <= set(await fleet.received()):
            break
        await asyncio.sleep(0.25)
    await asyncio.sleep(settle)
    counts = Counter(await fleet.received())
    problems = []
    missing = sorted(expected - set(counts))
    twice = sorted(key for key, n in counts.items() if n > 1)
    unexpected = sorted(set(counts) - expected)
    if missing:
        problems.append(f"{len(missing)} of {len(expected)} missing, e.g. {missing[:5]}")
    if twice:
        problems.append(f"{len(twice)} received more than once, e.g. {twice[:5]}")
    if unexpected:
        problems.append(f"{len(unexpected)} received but not sent, e.g. {unexpected[:5]}")
    return problems
