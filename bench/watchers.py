"""1,000 mailboxes watched by one process: memory, idle CPU and new-mail latency.

Starts a Dovecot of its own with the 1,000-connection limits of PERF-NOTES and
``mailbox_idle_check_interval = 1 s`` (beyond ~128 IDLE sessions Dovecot runs out of inotify
instances here and falls back to that check interval), creates ``--mailboxes`` mailboxes
(implicit TLS, one Dovecot user each) in a SQLite database, and runs mailport's orchestrator:

* ``rss_mib`` — the process's RSS growth from its idle baseline (service graph built, one
  watcher warmed up) to all watchers connected and idling;
* ``cpu_percent_idle`` — process CPU over ``--idle-seconds`` with every watcher idling;
* ``new_mail_p50_ms`` — a message delivered by LMTP to 50 random mailboxes, one at a time:
  delivery -> ``message.received`` committed (includes Dovecot's 1 s idle check interval
  where it fell back from inotify).

Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import smtplib
import statistics
import sys
import time
from email.message import EmailMessage
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._dovecot import many_connections_dovecot
from bench._process import cpu_seconds, raise_open_files, rss_kib
from bench._services import bench_services, password_mailbox
from tests.mailstack.dovecot import Dovecot

from mailport.events import last_seq, list_after
from mailport.mailboxes.models import Security, ServerSettings
from mailport.sync import Orchestrator


def message(i: int) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "bench@example.test", "w@example.test", f"watchers {i}"
    msg["Message-ID"] = f"<watchers.{i}.{time.time_ns()}@example.test>"
    msg.set_content("hello")
    return msg.as_bytes()


def lmtp_deliver(port: int, rcpt: str, raw: bytes) -> float:
    with smtplib.LMTP("127.0.0.1", port) as lmtp:
        lmtp.sendmail("bench@example.test", [rcpt], raw)
        return time.perf_counter()


async def run(dovecot: Dovecot, root: Path, count: int, idle_seconds: float, probes: int) -> dict[str, float]:
    services = await bench_services(
        f"sqlite+aiosqlite:///{root / 'mailport.db'}",
        root / "var",
        mail_ca_file=Path(dovecot.ca_file),
        allowed_hosts=["127.0.0.1"],  # the bench's Dovecot: the SSRF guard allows exactly that
    )
    tenant, _ = await services.tenants.create_tenant("bench")
    users: dict[str, str] = {}
    for i in range(count + 1):
        user, password = dovecot.dyn_user(f"w{i}")
        imap = ServerSettings("127.0.0.1", dovecot.imaps_port, Security.SSL)
        mailbox = await password_mailbox(services, tenant.id, user, password, imap)
        users[mailbox.id] = user
    ids = list(users)
    warm_id, ids = ids[0], ids[1:]
    # baseline: the graph built and ONE watcher running (imports, SSL context, pools warmed)
    orchestrator = Orchestrator(services, max_concurrent_connects=50, stagger_seconds=0)
    await services.database.engine.dispose()
    async with services.database.transaction() as conn:
        from sqlalchemy import update

        from mailport.mailboxes.models import MailboxStatus
        from mailport.store.tables import mailboxes

        await conn.execute(
            update(mailboxes).where(mailboxes.c.id != warm_id).values(status=MailboxStatus.DISABLED.value)
        )
    await orchestrator.start()
    while orchestrator.watchers[warm_id].status.state != "connected":
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)
    gc.collect()
    before = rss_kib()
    started = time.perf_counter()
    async with services.database.transaction() as conn:
        await conn.execute(update(mailboxes).values(status=MailboxStatus.PENDING.value))
    orchestrator.poke()
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        connected = sum(1 for w in orchestrator.watchers.values() if w.status.state == "connected")
        if connected >= count + 1:
            break
        await asyncio.sleep(0.2)
    all_connected_s = time.perf_counter() - started
    await asyncio.sleep(3.0)
    gc.collect()
    after = rss_kib()
    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    await asyncio.sleep(idle_seconds)
    cpu_idle = (cpu_seconds() - cpu0) / (time.perf_counter() - wall0) * 100
    latencies: list[float] = []
    async with services.database.connect() as conn:
        seq = await last_seq(conn)
    for i, mailbox_id in enumerate(random.sample(ids, min(probes, len(ids)))):
        delivered = await asyncio.to_thread(lmtp_deliver, dovecot.lmtp_port, users[mailbox_id], message(i))
        end = time.monotonic() + 30
        while time.monotonic() < end:
            async with services.database.connect() as conn:
                got = await list_after(
                    conn, tenant_id=tenant.id, after_seq=seq, limit=50, mailbox_id=mailbox_id
                )
            if any(e.type == "message.received" for e in got):
                latencies.append((time.perf_counter() - delivered) * 1000)
                break
            await services.events.wait(timeout=0.05)
    connected = sum(1 for w in orchestrator.watchers.values() if w.status.state == "connected")
    await orchestrator.stop()
    await services.aclose()
    return {
        "rss_mib": round((after - before) / 1024, 1),
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
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument("--probes", type=int, default=50)
    args = parser.parse_args()
    raise_open_files(20_000)
    with many_connections_dovecot("mailport-bench-watchers-", idle_check_interval="1 s") as (dovecot, root):
        result = asyncio.run(run(dovecot, root, args.mailboxes, args.idle_seconds, args.probes))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
