"""Memory per idle connection: N TLS connections logged in and idling on Dovecot, one process.

Starts its own Dovecot with raised process/client limits (PERF-NOTES: 1,000+ connections
need them), opens ``--connections`` implicit-TLS connections with mailport's client -- the
same client settings as ``bench/imap_fetch.py`` (defaults: 16 KiB TLS read buffer, shared
SSL context) -- logs each in, SELECTs INBOX and starts IDLE. No task is kept per connection:
events would be delivered through ``on_event``. RSS is read from /proc before the
connections (after one warm-up connection) and after; prints one JSON line::

    {"connections": N, "rss_per_connection_kib": ...}
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._dovecot import many_connections_dovecot
from bench._process import raise_open_files, rss_kib
from tests.mailstack.dovecot import Dovecot

from mailport.crypto import Secret
from mailport.imap import ImapClient, PasswordAuth, ServerEvent


async def open_idle(
    port: int, ca_file: str, user: str, password: str, events: list[ServerEvent]
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
    await client.idle_start()
    return client


async def run(dovecot: Dovecot, count: int, parallel: int) -> dict[str, float]:
    user, password = dovecot.dyn_user("idle")
    events: list[ServerEvent] = []
    warm = await open_idle(dovecot.imaps_port, dovecot.ca_file, user, password, events)
    await warm.logout()
    gc.collect()
    await asyncio.sleep(0.2)
    before = rss_kib()
    clients: list[ImapClient] = []
    gate = asyncio.Semaphore(parallel)

    async def one() -> None:
        async with gate:
            clients.append(await open_idle(dovecot.imaps_port, dovecot.ca_file, user, password, events))

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(count)))
    opened = time.perf_counter() - started
    await asyncio.sleep(1.0)  # let handshakes' temporary buffers go
    gc.collect()
    after = rss_kib()
    alive = sum(1 for c in clients if c.connected)
    for client in clients:
        client.close()
    await asyncio.sleep(0.2)
    return {"before": before, "after": after, "opened_s": opened, "alive": alive}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--parallel", type=int, default=50, help="logins in flight at once")
    args = parser.parse_args()
    limit = raise_open_files(20_000)
    with many_connections_dovecot("mailport-bench-idle-", idle_check_interval="30 s") as (dovecot, _):
        result = asyncio.run(run(dovecot, args.connections, args.parallel))
    per = (result["after"] - result["before"]) / args.connections
    print(
        f"# open-files limit {limit}; {int(result['alive'])}/{args.connections} alive; opened in "
        f"{result['opened_s']:.1f} s; RSS {result['before']} -> {result['after']} KiB",
        file=sys.stderr,
    )
    print(json.dumps({"connections": args.connections, "rss_per_connection_kib": round(per, 1)}))


if __name__ == "__main__":
    main()
