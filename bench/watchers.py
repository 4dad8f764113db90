"""Thousands of mailboxes watched by one process: memory per watcher, idle CPU, new-mail latency.

The server is the IMAP simulator by default (``--server imapsim``: ``python -m tests.imapsim`` in a
process of its own, plain TCP, or implicit TLS with ``--tls`` and a throw-away certificate), so
that 10,000 mailboxes fit: Dovecot (``--server dovecot``, implicit TLS always) costs ~500 KiB and
a process per IDLE session, 1,000 at most here, started with the 1,000-connection limits of
PERF-NOTES and ``mailbox_idle_check_interval = 1 s`` (beyond ~128 IDLE sessions it runs out of
inotify instances and falls back to that interval). ``--mailboxes`` password mailboxes live in a
SQLite database; mailport's orchestrator watches them:

* ``rss_mib`` — the process's RSS growth from its idle baseline (service graph built, one
  watcher warmed up) to all watchers connected and idling; ``rss_per_watcher_kib`` the same per
  mailbox (the "watcher all-in" figure of issue 21);
* ``cpu_percent_idle`` — process CPU over ``--idle-seconds`` with every watcher idling;
* ``new_mail_p50_ms`` — a message delivered to ``--probes`` random mailboxes, one at a time:
  delivery -> ``message.received`` committed (with Dovecot this includes its 1 s idle check
  interval where it fell back from inotify; the simulator notifies at once).

``--profile FILE`` also writes what the memory is (tracemalloc top allocation sites between the
baseline and all connected, grouped by traceback; ``gc`` object counts by type; asyncio tasks;
all divided by the mailboxes); it slows the run and inflates the RSS figures.

Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import smtplib
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from email.message import EmailMessage
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._dovecot import many_connections_dovecot
from bench._imapsim import Simulator
from bench._process import cpu_seconds, raise_open_files, rss_kib
from bench._services import bench_services, password_mailbox
from sqlalchemy import update
from tests.mailstack.dovecot import make_self_signed_cert

from mailport.events import last_seq, list_after
from mailport.mailboxes.models import MailboxStatus, Security, ServerSettings
from mailport.store.tables import mailboxes
from mailport.sync import Orchestrator

Deliver = Callable[[str, int], Awaitable[float]]  # user, i -> monotonic time of the delivery


def message(i: int) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "bench@example.test", "w@example.test", f"watchers {i}"
    msg["Message-ID"] = f"<watchers.{i}.{time.time_ns()}@example.test>"
    msg.set_content("hello")
    return msg.as_bytes()


def lmtp_deliver(port: int, rcpt: str, raw: bytes) -> float:
    with smtplib.LMTP("127.0.0.1", port) as lmtp:
        lmtp.sendmail("bench@example.test", [rcpt], raw)
        return time.monotonic()


def profile(path: Path, first: tracemalloc.Snapshot, second: tracemalloc.Snapshot, count: int) -> None:
    """The memory between the baseline and all connected, per watcher (see the module doc)."""
    lines = [f"watchers: {count}", "", "== tracemalloc: top allocation sites (growth, KiB per watcher) =="]
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__)]
    first, second = first.filter_traces(ignore), second.filter_traces(ignore)
    stats = second.compare_to(first, "traceback")
    total = sum(s.size_diff for s in stats)
    lines.append(f"total traced growth: {total / 1024 / count:.2f} KiB per watcher")
    for stat in stats[:40]:
        lines.append(f"{stat.size_diff / 1024 / count:7.2f} KiB  {stat.count_diff / count:6.1f} blocks")
        for frame in stat.traceback.format(limit=8):
            lines.append("      " + frame.strip())
    lines += ["", "== tracemalloc by line (growth, top 40) =="]
    for stat in second.compare_to(first, "lineno")[:40]:
        lines.append(
            f"{stat.size_diff / 1024 / count:7.2f} KiB  {stat.count_diff / count:6.1f}  {stat.traceback[0]}"
        )
    gc.collect()
    types = Counter(type(o).__qualname__ for o in gc.get_objects())
    lines += ["", "== gc.get_objects() by type, per watcher (top 50) =="]
    for name, n in types.most_common(50):
        lines.append(f"{n / count:8.2f}  {name}")
    tasks = asyncio.all_tasks()
    lines += ["", f"== asyncio tasks: {len(tasks)} ({len(tasks) / count:.2f} per watcher) =="]
    names = Counter((t.get_name().split(":")[0]) for t in tasks)
    lines += [f"{n:8d}  {name}" for name, n in names.most_common(20)]
    path.write_text("\n".join(lines) + "\n")


async def run(
    *,
    server: ServerSettings,
    users: list[str],
    password: str,
    deliver: Deliver,
    root: Path,
    ca_file: Path | None,
    idle_seconds: float,
    probes: int,
    profile_to: Path | None,
) -> dict[str, float]:
    count = len(users) - 1
    services = await bench_services(
        f"sqlite+aiosqlite:///{root / 'mailport.db'}",
        root / "var",
        mail_ca_file=ca_file,
        allowed_hosts=["127.0.0.1"],  # the bench's server: the SSRF guard allows exactly that
    )
    tenant, _ = await services.tenants.create_tenant("bench")
    user_of: dict[str, str] = {}
    semaphore = asyncio.Semaphore(8)

    async def create(user: str) -> None:
        async with semaphore:
            mailbox = await password_mailbox(services, tenant.id, user, password, server)
        user_of[mailbox.id] = user

    await create(users[0])
    warm_id = next(iter(user_of))
    await asyncio.gather(*(create(u) for u in users[1:]))
    ids = [m for m in user_of if m != warm_id]
    # baseline: the graph built and ONE watcher running (imports, SSL context, pools warmed)
    orchestrator = Orchestrator(services, max_concurrent_connects=50, stagger_seconds=0)
    await services.database.engine.dispose()
    async with services.database.transaction() as conn:
        await conn.execute(
            update(mailboxes).where(mailboxes.c.id != warm_id).values(status=MailboxStatus.DISABLED.value)
        )
    await orchestrator.start()
    while orchestrator.watchers[warm_id].status.state != "connected":
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)
    gc.collect()
    if profile_to is not None:
        tracemalloc.start(10)
    first = tracemalloc.take_snapshot() if profile_to is not None else None
    before = rss_kib()
    started = time.perf_counter()
    async with services.database.transaction() as conn:
        await conn.execute(update(mailboxes).values(status=MailboxStatus.PENDING.value))
    orchestrator.poke()
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        connected = sum(1 for w in orchestrator.watchers.values() if w.status.state == "connected")
        if connected >= count + 1:
            break
        await asyncio.sleep(0.2)
    all_connected_s = time.perf_counter() - started
    await asyncio.sleep(3.0 + count / 2000)  # the orchestrator trims the heap once connects settled
    gc.collect()
    after = rss_kib()
    if profile_to is not None and first is not None:
        profile(profile_to, first, tracemalloc.take_snapshot(), count)
        tracemalloc.stop()
    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    await asyncio.sleep(idle_seconds)
    cpu_idle = (cpu_seconds() - cpu0) / (time.perf_counter() - wall0) * 100
    latencies: list[float] = []
    async with services.database.connect() as conn:
        seq = await last_seq(conn)
    for i, mailbox_id in enumerate(random.sample(ids, min(probes, len(ids)))):
        delivered = await deliver(user_of[mailbox_id], i)
        end = time.monotonic() + 30
        while time.monotonic() < end:
            async with services.database.connect() as conn:
                got = await list_after(
                    conn, tenant_id=tenant.id, after_seq=seq, limit=50, mailbox_id=mailbox_id
                )
            if any(e.type == "message.received" for e in got):
                latencies.append((time.monotonic() - delivered) * 1000)
                break
            await services.events.wait(timeout=0.05)
    connected = sum(1 for w in orchestrator.watchers.values() if w.status.state == "connected")
    await orchestrator.stop()
    await services.aclose()
    return {
        "rss_mib": round((after - before) / 1024, 1),
        "rss_per_watcher_kib": round((after - before) / count, 1),
        "cpu_percent_idle": round(cpu_idle, 2),
        "new_mail_p50_ms": round(statistics.median(latencies), 1) if latencies else -1.0,
        "mailboxes": count,
        "connected": connected - 1,
        "all_connected_s": round(all_connected_s, 1),
        "rss_baseline_mib": round(before / 1024, 1),
        "probes": len(latencies),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mailboxes", type=int, default=1000)
    parser.add_argument("--server", choices=["imapsim", "dovecot"], default="imapsim")
    parser.add_argument("--tls", action="store_true", help="implicit TLS to the simulator (Dovecot: always)")
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument("--probes", type=int, default=50)
    parser.add_argument("--profile", type=Path, default=None, help="write a memory profile here")
    args = parser.parse_args()
    raise_open_files(20_000)
    loadavg_start = [round(x, 2) for x in os.getloadavg()]
    names = [f"w{i}" for i in range(args.mailboxes + 1)]
    common = {"idle_seconds": args.idle_seconds, "probes": args.probes, "profile_to": args.profile}
    with ExitStack() as stack:
        if args.server == "dovecot":
            dovecot, root = stack.enter_context(
                many_connections_dovecot("mailport-bench-watchers-", idle_check_interval="1 s")
            )
            pairs = [dovecot.dyn_user(name) for name in names]

            async def lmtp(user: str, i: int) -> float:
                return await asyncio.to_thread(lmtp_deliver, dovecot.lmtp_port, user, message(i))

            result = asyncio.run(
                run(
                    server=ServerSettings("127.0.0.1", dovecot.imaps_port, Security.SSL),
                    users=[u for u, _ in pairs],
                    password=pairs[0][1],
                    deliver=lmtp,
                    root=root,
                    ca_file=Path(dovecot.ca_file),
                    **common,
                )
            )
            tls = True
        else:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mailport-bench-watchers-")))
            cert = make_self_signed_cert(root) if args.tls else None
            sim = Simulator(tls=cert)
            stack.callback(sim.stop)

            async def to_sim(user: str, i: int) -> float:
                sent = time.monotonic()
                await asyncio.to_thread(sim.call, "deliver", users=[user])
                return sent

            result = asyncio.run(
                run(
                    server=ServerSettings(
                        "127.0.0.1",
                        sim.tls_port if args.tls else sim.port,
                        Security.SSL if args.tls else Security.NONE,
                    ),
                    users=[f"{name}@sim.example.test" for name in names],
                    password="pw",
                    deliver=to_sim,
                    root=root,
                    ca_file=cert[0] if cert else None,
                    **common,
                )
            )
            tls = args.tls
    result.update(
        server=args.server,
        tls=tls,
        loadavg_start=loadavg_start,
        loadavg_end=[round(x, 2) for x in os.getloadavg()],
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
