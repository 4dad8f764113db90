"""Memory per idle connection: N TLS connections logged in and idling on Dovecot, one process.

Starts its own Dovecot with raised process/client limits (PERF-NOTES: 1,000+ connections
need them), opens ``--connections`` implicit-TLS connections with mailport's client -- the
same client settings as ``bench/imap_fetch.py`` (defaults; shared SSL context) -- logs each
in, SELECTs INBOX and starts IDLE. No task is kept per connection: events would be delivered
through ``on_event``. RSS is read from /proc before the connections (after one warm-up
connection) and after; prints one JSON line::

    {"connections": N, "rss_per_connection_kib": ..., "python": "3.11"}

``--fetch-kib K``: each connection first fetches one K KiB message (what a watcher keeps after
new mail: OpenSSL's memory BIOs never shrink). ``--tracemalloc``: also the Python part per
connection (``python_kib_per_connection``) and its top allocation sites on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._dovecot import many_connections_dovecot
from bench._process import raise_open_files, rss_kib
from tests.mailstack.dovecot import Dovecot

from mailport.crypto import Secret
from mailport.imap import ImapClient, PasswordAuth, ServerEvent


async def open_idle(
    port: int, ca_file: str, user: str, password: str, events: list[ServerEvent], fetch: bool = False
) -> ImapClient:
    client = await ImapClient.open(
        "127.0.0.1",
        port,
        ca_file=ca_file,
        connect_timeout=60,
        command_timeout=60,
        on_event=events.append,
        auth=PasswordAuth(user, Secret(password)),
    )
    await client.select("INBOX")
    if fetch:
        await client.fetch("1:*")
    await client.idle_start()
    return client


def top_sites(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, count: int) -> str:
    """The allocation sites that grew, per connection (what an idle connection owns in Python)."""
    lines = []
    for stat in after.compare_to(before, "lineno")[:15]:
        frame = stat.traceback[0]
        lines.append(
            f"#  {stat.size_diff / count:8.0f} B {stat.count_diff / count:6.2f} blocks  "
            f"{frame.filename.split('/site-packages/')[-1].split('/lib/python')[-1]}:{frame.lineno}"
        )
    return "\n".join(lines)


def message_of(kib: int) -> bytes:
    """A plain message of about ``kib`` KiB (what a watcher fetches when new mail arrives)."""
    line = b"x" * 76 + b"\r\n"
    head = b"From: a@example.test\r\nTo: b@example.test\r\nSubject: size\r\n\r\n"
    return head + line * max(1, kib * 1024 // len(line))


async def run(
    dovecot: Dovecot, count: int, parallel: int, trace: bool = False, fetch_kib: int = 0
) -> dict[str, float]:
    user, password = dovecot.dyn_user(f"idle{fetch_kib}")
    events: list[ServerEvent] = []
    warm = await open_idle(dovecot.imaps_port, dovecot.ca_file, user, password, events)
    if fetch_kib:
        await warm.idle_done()
        await warm.append("INBOX", message_of(fetch_kib))
    await warm.logout()
    gc.collect()
    await asyncio.sleep(0.2)
    before = rss_kib()
    snap_before = tracemalloc.take_snapshot() if trace else None
    traced_before = tracemalloc.get_traced_memory()[0] if trace else 0
    clients: list[ImapClient] = []
    gate = asyncio.Semaphore(parallel)

    async def one() -> None:
        async with gate:
            clients.append(
                await open_idle(
                    dovecot.imaps_port, dovecot.ca_file, user, password, events, fetch=fetch_kib > 0
                )
            )

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(count)))
    opened = time.perf_counter() - started
    await asyncio.sleep(1.0)  # let handshakes' temporary buffers go
    gc.collect()
    after = rss_kib()
    python_kib = 0.0
    if snap_before is not None:
        python_kib = (tracemalloc.get_traced_memory()[0] - traced_before) / 1024 / count
        print("# Python allocations per connection (tracemalloc), top sites:", file=sys.stderr)
        print(top_sites(snap_before, tracemalloc.take_snapshot(), count), file=sys.stderr)
    alive = sum(1 for c in clients if c.connected)
    for client in clients:
        client.close()
    await asyncio.sleep(0.2)
    return {"before": before, "after": after, "opened_s": opened, "alive": alive, "python_kib": python_kib}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--parallel", type=int, default=50, help="logins in flight at once")
    parser.add_argument(
        "--tracemalloc",
        action="store_true",
        help="also trace Python allocations (slower; RSS then includes tracemalloc's own cost): "
        "prints the top sites per connection and adds python_kib_per_connection",
    )
    parser.add_argument(
        "--fetch-kib",
        type=int,
        default=0,
        help="each connection first FETCHes one message of this size (KiB) before IDLE: what a "
        "watcher keeps after new mail (0: none, the issue's figure)",
    )
    args = parser.parse_args()
    if args.tracemalloc:
        tracemalloc.start(1)
    limit = raise_open_files(20_000)
    with many_connections_dovecot("mailport-bench-idle-", idle_check_interval="30 s") as (dovecot, _):
        result = asyncio.run(run(dovecot, args.connections, args.parallel, args.tracemalloc, args.fetch_kib))
    per = (result["after"] - result["before"]) / args.connections
    print(
        f"# open-files limit {limit}; {int(result['alive'])}/{args.connections} alive; opened in "
        f"{result['opened_s']:.1f} s; RSS {result['before']} -> {result['after']} KiB",
        file=sys.stderr,
    )
    line: dict[str, object] = {"connections": args.connections, "rss_per_connection_kib": round(per, 1)}
    if args.fetch_kib:
        line["fetch_kib"] = args.fetch_kib
    if args.tracemalloc:
        line["python_kib_per_connection"] = round(result["python_kib"], 1)
    line["python"] = ".".join(map(str, sys.version_info[:2]))
    print(json.dumps(line))


if __name__ == "__main__":
    main()
