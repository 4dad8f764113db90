"""A fleet of ``mailport worker`` processes watching 10,000 mailboxes on the IMAP simulator.

Starts the simulator (``python -m tests.imapsim``: one asyncio process, plain IMAP) and a fresh
PostgreSQL database with ``--mailboxes`` password mailboxes on it and a tenant whose webhook
(``message.received`` only) points at a local receiver, then ``--workers`` ``mailport worker``
processes (MAILPORT_ALLOW_PRIVATE_HOSTS=true, MAILPORT_LEASE_SECONDS=``--lease-seconds``).
Measures, in order:

* ``all_connected_s`` — workers started -> every mailbox has an IDLE session (the simulator counts);
* ``rss_total_mib`` / ``rss_per_watcher_kib`` — sum of the workers' RSS, all in, over mailboxes;
* ``idle_cpu_s`` — the workers' CPU seconds over ``--idle-seconds`` with everything idling;
* latency under load — ``--rate`` messages/s to random mailboxes for ``--load-seconds``: from the
  simulator writing ``* N EXISTS`` to an IDLE session (its own notification, the zero) to the
  event committed (``events.created_at``, wall clock) and to the webhook received (monotonic,
  the receiver is a thread of this process); "absolute" figures start at the delivery request;
* ``balance`` — watcher leases per worker;
* ``rebalance_s`` — ``kill -9`` of the worker holding most mailboxes -> every mailbox IDLE again;
* rolling restart — mail at ``--rate`` while each worker in turn gets SIGTERM and is started again
  (waiting until every mailbox has a session with INBOX selected again, idle or catching up,
  before the next); then delivered vs events: lost and duplicated, in the events table and at
  the webhook.

Prints the figures, PASS/FAIL per goal of issue 20, and one JSON line at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._imapsim import Simulator  # noqa: E402
from bench._process import process_cpu, raise_open_files  # noqa: E402
from pydantic import SecretStr  # noqa: E402
from sqlalchemy import select  # noqa: E402
from tests.fixtures.webhook_receiver import WebhookReceiver  # noqa: E402

from mailport.bootstrap import Services, build  # noqa: E402
from mailport.config import Settings  # noqa: E402
from mailport.crypto import Secret, generate_key  # noqa: E402
from mailport.delivery.schemas import WebhookCreate  # noqa: E402
from mailport.mailboxes.models import (  # noqa: E402
    AuthMethod,
    NewMailbox,
    ProcessingSettings,
    Security,
    ServerSettings,
)
from mailport.store.tables import events, leases  # noqa: E402

ADMIN_URL = os.environ.get("MAILPORT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
PYTHON = sys.executable
MAILPORT = str(Path(sys.executable).parent / "mailport")


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))] if ordered else -1.0


# ---------------------------------------------------------------------------- processes


def proc_rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except FileNotFoundError:
        pass
    return 0


def proc_cpu_s(pid: int) -> float:
    try:
        return process_cpu(pid)
    except FileNotFoundError:  # the process is gone
        return 0.0


def _raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@dataclass
class Worker:
    index: int
    env: dict[str, str]
    logdir: Path
    proc: subprocess.Popen[bytes] | None = None
    generation: int = 0

    def start(self) -> None:
        self.generation += 1
        out = open(self.logdir / f"worker{self.index}.{self.generation}.log", "wb")
        self.proc = subprocess.Popen(
            [MAILPORT, "worker"],
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=_raise_nofile,
            cwd=self.logdir,
        )

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def died(self) -> int | None:
        """The exit code when this process ended on its own (None while it runs)."""
        return None if self.proc is None else self.proc.poll()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> float:
        """Signal and wait; returns the seconds until it exited (SIGKILL after ``timeout``)."""
        assert self.proc is not None
        started = time.monotonic()
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log(f"worker {self.index} did not exit within {timeout:g} s: SIGKILL")
            self.proc.kill()
            self.proc.wait()
        return time.monotonic() - started


# ---------------------------------------------------------------------------- mail flow


@dataclass
class Flow:
    """Deliveries at a steady rate to random users, in a thread (the simulator does the work)."""

    sim: Simulator
    users: list[str]
    rate: float
    delivered: list[tuple[str, int, float]] = field(default_factory=list)  # user, uid, monotonic
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Flow:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        tick = 0.02
        owed = 0.0
        next_at = time.monotonic()
        while not self._stop.is_set():
            owed += self.rate * tick
            n = int(owed)
            owed -= n
            if n:
                users = random.choices(self.users, k=n)
                sent = time.monotonic()
                uids = self.sim.call("deliver", users=users)["uids"]
                self.delivered += [(u, uid, sent) for u, uid in zip(users, uids, strict=True)]
            next_at += tick
            time.sleep(max(0.0, next_at - time.monotonic()))

    def stop(self) -> list[tuple[str, int, float]]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return self.delivered


# ---------------------------------------------------------------------------- the bench


async def admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(ADMIN_URL, timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def wait_until(check: Any, timeout: float, interval: float = 0.25) -> float | None:
    """Seconds until ``check()`` is true (None on timeout)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if await asyncio.to_thread(check):
            return time.monotonic() - started
        await asyncio.sleep(interval)
    return None


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.root = Path(tempfile.mkdtemp(prefix="mailport-bench-fleet-"))
        self.db_name = f"mailport_bench_fleet_{uuid.uuid4().hex[:10]}"
        base = ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
        self.database_url = f"{base}/{self.db_name}"
        self.key = generate_key()
        self.results: dict[str, Any] = {}
        self.workers: list[Worker] = []
        self.user_of: dict[str, str] = {}  # mailbox id -> simulator user
        self.mailbox_of: dict[str, str] = {}

    async def setup(self) -> Services:
        await admin(f'CREATE DATABASE "{self.db_name}"')
        settings = Settings(
            _env_file=None,
            database_url=self.database_url,
            data_dir=self.root / "var",
            secret_keys=SecretStr(self.key),
            log_level="WARNING",
            allow_private_hosts=True,
        )
        services = await build(settings, migrate=True)
        tenant, _ = await services.tenants.create_tenant("fleet")
        self.receiver = WebhookReceiver().start()
        await services.webhooks.create(
            tenant.id, WebhookCreate(url=self.receiver.url, events=["message.received"])
        )
        started = time.monotonic()
        server = ServerSettings("127.0.0.1", self.sim.port, Security.NONE)
        semaphore = asyncio.Semaphore(8)

        async def one(i: int) -> None:
            user = f"u{i:05d}@sim.example.test"
            async with semaphore:
                mailbox = await services.mailboxes.create(
                    tenant.id,
                    NewMailbox(
                        email=user,
                        auth_method=AuthMethod.PASSWORD,
                        imap=server,
                        connector="imap",
                        password=Secret("pw"),
                        settings=ProcessingSettings(check_interval=60),
                    ),
                )
            self.user_of[mailbox.id] = user
            self.mailbox_of[user] = mailbox.id

        await asyncio.gather(*(one(i) for i in range(self.args.mailboxes)))
        log(f"{self.args.mailboxes} mailboxes created in {time.monotonic() - started:.1f} s")
        return services

    def worker_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAILPORT_")}
        env.update(
            MAILPORT_DATABASE_URL=self.database_url,
            MAILPORT_SECRET_KEYS=self.key,
            MAILPORT_DATA_DIR=str(self.root / "var"),
            MAILPORT_ALLOW_PRIVATE_HOSTS="true",
            MAILPORT_LEASE_SECONDS=str(self.args.lease_seconds),
            MAILPORT_LOG_LEVEL="WARNING",
        )
        for item in self.args.env:
            name, _, value = item.partition("=")
            env[name] = value
        return env

    async def balance(self, services: Services) -> dict[str, int]:
        """Watcher leases per worker pid (``pid`` live, ``pid:expired`` held but past their expiry:
        a holder renewing late)."""
        now = datetime.now(UTC)
        query = select(leases.c.holder, leases.c.expires_at).where(
            leases.c.name.like("watcher:%"), leases.c.holder.is_not(None)
        )
        async with services.database.connect() as conn:
            rows = Counter((holder, expires > now) for holder, expires in (await conn.execute(query)).all())
        by_pid = {str(w.pid): 0 for w in self.workers if w.alive()}
        for (holder, live), count in rows.items():
            pid = str(holder).split(":")[1] if ":" in str(holder) else str(holder)
            key = pid if live else f"{pid}:expired"
            by_pid[key] = by_pid.get(key, 0) + int(count)
        return by_pid

    async def received(self, services: Services) -> list[tuple[str, int, float, int]]:
        """(user, uid, created_at wall, seq) of every message.received event."""
        query = select(events.c.mailbox_id, events.c.payload, events.c.created_at, events.c.seq).where(
            events.c.type == "message.received"
        )
        async with services.database.connect() as conn:
            rows = (await conn.execute(query)).all()
        out = []
        for mailbox_id, payload, created_at, seq in rows:
            data = payload if isinstance(payload, dict) else json.loads(payload)
            uid = int(data["source"]["imap"]["uid"])
            out.append((self.user_of[mailbox_id], uid, created_at.timestamp(), seq))
        return out

    def hooked(self) -> list[tuple[str, int, float, str]]:
        """(user, uid, received monotonic, event id) of every webhook answered 2xx."""
        out = []
        for r in self.receiver.succeeded():
            body = r.json()
            if body.get("type") != "message.received":
                continue
            uid = int(body["data"]["source"]["imap"]["uid"])
            out.append((self.user_of[body["mailbox_id"]], uid, r.at, body["id"]))
        return out

    def rss_total_kib(self) -> int:
        return sum(proc_rss_kib(w.pid) for w in self.workers if w.alive())

    def cpu_total_s(self) -> float:
        return sum(proc_cpu_s(w.pid) for w in self.workers if w.alive())

    async def run(self) -> dict[str, Any]:
        a, r = self.args, self.results
        r["loadavg_start"] = [round(x, 2) for x in os.getloadavg()]
        r["nofile"] = raise_open_files(20_000)
        r.update(mailboxes=a.mailboxes, workers=a.workers, lease_seconds=a.lease_seconds, rate=a.rate)
        self.sim = Simulator()
        services = await self.setup()
        try:
            await self.phases(services)
        finally:
            for w in self.workers:
                if w.alive():
                    w.stop(signal.SIGTERM, timeout=30)
            await services.aclose()
            self.receiver.stop()
            self.sim.stop()
            if not a.keep_db:
                await admin(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
        r["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
        return r

    async def all_idle(self, timeout: float) -> float | None:
        n = self.args.mailboxes
        return await wait_until(lambda: self.sim.idle_users() >= n, timeout)

    async def all_selected(self, timeout: float) -> float | None:
        """Every mailbox has a session with INBOX selected (IDLE or busy catching up)."""
        n = self.args.mailboxes
        return await wait_until(lambda: int(self.sim.call("stats")["selected_users"]) >= n, timeout)

    def check_workers(self, phase: str, *, restart: bool = False) -> None:
        """Record workers that exited on their own (a crash) before ``phase`` (once each), and
        with ``restart`` start them again."""
        for w in self.workers:
            code = w.died()
            if code is not None and not any(e["pid"] == w.pid for e in self.results.get("worker_exits", [])):
                log(f"worker {w.index} (pid {w.pid}) exited with {code} before {phase}: see {w.logdir}")
                self.results.setdefault("worker_exits", []).append({"phase": phase, "pid": w.pid, "rc": code})
            if code is not None and restart:
                w.start()

    async def phases(self, services: Services) -> None:
        a, r = self.args, self.results
        env = self.worker_env()
        self.workers = [Worker(i, env, self.root) for i in range(a.workers)]
        # 1. start: all connected
        for w in self.workers:
            w.start()
        took = await self.all_idle(a.connect_timeout)
        r["all_connected_s"] = round(took, 1) if took is not None else None
        log(f"all connected: {r['all_connected_s']} s; sim {self.sim.call('stats')}")
        if took is None:
            r["idle_users_at_timeout"] = self.sim.idle_users()
        r["balance_start"] = await self.balance(services)
        # 2. memory, idle CPU
        self.check_workers("memory")
        await asyncio.sleep(5)
        rss = self.rss_total_kib()
        r["rss_total_mib"] = round(rss / 1024, 1)
        r["rss_per_worker_mib"] = [round(proc_rss_kib(w.pid) / 1024, 1) for w in self.workers]
        r["rss_per_watcher_kib"] = round(rss / a.mailboxes, 1)
        cpu0, wall0 = self.cpu_total_s(), time.monotonic()
        await asyncio.sleep(a.idle_seconds)
        r["idle_cpu_s"] = round(self.cpu_total_s() - cpu0, 2)
        r["idle_seconds"] = round(time.monotonic() - wall0, 1)
        log(f"rss {r['rss_total_mib']} MiB, idle cpu {r['idle_cpu_s']} s / {r['idle_seconds']} s")
        # 3. latency under load
        self.check_workers("latency")
        mark = self.sim.call("stats")["notifications"]
        users = list(self.mailbox_of)
        flow = Flow(self.sim, users, a.rate).start()
        await asyncio.sleep(a.load_seconds)
        sent = flow.stop()
        await self.drain(services, sent, a.drain_seconds)
        r.update(await self.latency(services, sent, mark))
        log(f"latency: {json.dumps({k: v for k, v in r.items() if 'ms' in k})}")
        # 4. kill -9 the worker holding most
        self.check_workers("kill -9", restart=True)
        before = await self.balance(services)
        r["balance"] = before
        victim = max(self.workers, key=lambda w: before.get(str(w.pid), 0))
        killed = time.monotonic()
        victim.stop(signal.SIGKILL)
        took = await self.all_idle(a.rebalance_timeout)
        r["rebalance_s"] = round(time.monotonic() - killed, 1) if took is not None else None
        r["killed_held"] = before.get(str(victim.pid), 0)
        r["balance_after_kill"] = await self.balance(services)
        log(f"rebalanced after kill -9 of {r['killed_held']} mailboxes: {r['rebalance_s']} s")
        victim.start()
        await asyncio.sleep(a.lease_seconds / 3 + 2)
        # 5. rolling restart with mail flowing
        self.check_workers("rolling restart", restart=True)
        received_before = {(u, uid) for u, uid, _, _ in await self.received(services)}
        hooked_before = {(u, uid) for u, uid, _, _ in self.hooked()}
        flow = Flow(self.sim, users, a.rate).start()
        restarts = []
        for w in self.workers:
            stopped = w.stop(signal.SIGTERM)
            w.start()
            again = await self.all_selected(a.rebalance_timeout)
            restarts.append(
                {"stop_s": round(stopped, 1), "all_connected_again_s": round(again, 1) if again else None}
            )
            log(f"worker {w.index} restarted: {restarts[-1]}")
        sent = flow.stop()
        r["rolling_restarts"] = restarts
        await self.drain(services, sent, a.drain_seconds)
        delivered = {(u, uid) for u, uid, _ in sent}
        got = [(u, uid) for u, uid, _, _ in await self.received(services) if (u, uid) not in received_before]
        hooks = [(u, uid) for u, uid, _, _ in self.hooked() if (u, uid) not in hooked_before]
        ev, hk = Counter(got), Counter(hooks)
        r["rolling_delivered"] = len(delivered)
        r["rolling_lost_events"] = len(delivered - set(ev))
        r["rolling_duplicated_events"] = sum(c - 1 for c in ev.values())
        r["rolling_lost_webhooks"] = len(delivered - set(hk))
        r["rolling_duplicated_webhooks"] = sum(c - 1 for c in hk.values())
        r["rolling_unexpected"] = len(set(ev) - delivered)
        r["balance_end"] = await self.balance(services)
        self.check_workers("the end")

    async def drain(self, services: Services, sent: list[tuple[str, int, float]], timeout: float) -> None:
        """Wait until every delivered message has its event and its webhook (or ``timeout``)."""
        wanted = {(u, uid) for u, uid, _ in sent}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = {(u, uid) for u, uid, _, _ in await self.received(services)}
            hooked = {(u, uid) for u, uid, _, _ in self.hooked()}
            if wanted <= got and wanted <= hooked:
                return
            await asyncio.sleep(0.5)
        log(f"drain timed out after {timeout:g} s")

    async def latency(
        self, services: Services, sent: list[tuple[str, int, float]], mark: int
    ) -> dict[str, Any]:
        notes = self.sim.call("notifications", after=mark)["items"]
        notified = {(u, uid): (mono, wall, idle) for u, uid, mono, wall, idle in notes}
        sent_at = {(u, uid): t for u, uid, t in sent}
        committed = {(u, uid): wall for u, uid, wall, _ in await self.received(services)}
        hooked: dict[tuple[str, int], float] = {}
        for u, uid, at, _ in self.hooked():
            hooked.setdefault((u, uid), at)
        ev_sim, ev_abs, wh_sim, wh_abs, via_idle = [], [], [], [], 0
        for key, t_sent in sent_at.items():
            n = notified.get(key)
            if n is None:
                continue
            mono, wall, idle = n
            via_idle += bool(idle)
            if key in committed:
                ev_sim.append((committed[key] - wall) * 1000)
                ev_abs.append((committed[key] - wall) * 1000 + (mono - t_sent) * 1000)
            if key in hooked:
                wh_sim.append((hooked[key] - mono) * 1000)
                wh_abs.append((hooked[key] - t_sent) * 1000)
        sim_ms = [(notified[k][0] - t) * 1000 for k, t in sent_at.items() if k in notified]
        return {
            "load_messages": len(sent),
            "load_notified_via_idle": via_idle,
            "sim_notify_p50_ms": round(pct(sim_ms, 0.5), 2),
            "event_p50_ms_above_sim": round(pct(ev_sim, 0.5), 1),
            "event_p99_ms_above_sim": round(pct(ev_sim, 0.99), 1),
            "event_p50_ms_abs": round(pct(ev_abs, 0.5), 1),
            "event_p99_ms_abs": round(pct(ev_abs, 0.99), 1),
            "webhook_p50_ms_above_sim": round(pct(wh_sim, 0.5), 1),
            "webhook_p99_ms_above_sim": round(pct(wh_sim, 0.99), 1),
            "webhook_p50_ms_abs": round(pct(wh_abs, 0.5), 1),
            "webhook_p99_ms_abs": round(pct(wh_abs, 0.99), 1),
            "load_events": len(ev_sim),
            "load_webhooks": len(wh_sim),
        }


def verdicts(r: dict[str, Any]) -> list[tuple[str, bool, str]]:
    def ok(value: Any, limit: float) -> bool:
        return value is not None and value >= 0 and value <= limit

    return [
        ("memory <= 600 MiB total", ok(r.get("rss_total_mib"), 600), f"{r.get('rss_total_mib')} MiB"),
        ("all connected <= 120 s", ok(r.get("all_connected_s"), 120), f"{r.get('all_connected_s')} s"),
        ("rebalanced <= 30 s after kill -9", ok(r.get("rebalance_s"), 30), f"{r.get('rebalance_s')} s"),
        (
            "new-mail p50 <= 50 ms above the simulator",
            ok(r.get("event_p50_ms_above_sim"), 50),
            f"event {r.get('event_p50_ms_above_sim')} ms, webhook {r.get('webhook_p50_ms_above_sim')} ms",
        ),
        (
            "0 lost",
            r.get("rolling_lost_events") == 0 and r.get("rolling_lost_webhooks") == 0,
            f"events {r.get('rolling_lost_events')}, webhooks {r.get('rolling_lost_webhooks')}",
        ),
        (
            "0 duplicated",
            r.get("rolling_duplicated_events") == 0 and r.get("rolling_duplicated_webhooks") == 0,
            f"events {r.get('rolling_duplicated_events')}, webhooks {r.get('rolling_duplicated_webhooks')}",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mailboxes", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--lease-seconds", type=float, default=15.0, help="MAILPORT_LEASE_SECONDS")
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=20.0, help="messages per second while loaded")
    parser.add_argument("--load-seconds", type=float, default=20.0)
    parser.add_argument("--drain-seconds", type=float, default=60.0)
    parser.add_argument("--connect-timeout", type=float, default=600.0)
    parser.add_argument("--rebalance-timeout", type=float, default=300.0)
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the workers")
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args()
    raise_open_files(20_000)

    def interrupted(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # the bench's finally blocks stop the workers and drop the database

    signal.signal(signal.SIGTERM, interrupted)
    result = asyncio.run(Bench(args).run())
    print()
    for name, passed, shown in verdicts(result):
        print(f"{'PASS' if passed else 'FAIL'}  {name}: {shown}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
