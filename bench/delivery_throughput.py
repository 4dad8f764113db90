"""Webhook delivery throughput alone: committed events -> 2xx at a receiver, nothing else running.

The delivery half of ``ingest_backlog.py``: ``--events`` ``message.received`` events (a payload
the size of the backlog's ~2 KB messages), spread over ``--mailboxes`` mailboxes, are appended
to the event log before the dispatcher starts (not timed); then the dispatcher
(:mod:`mailport.delivery`) starts and the clock runs until the receiver — the same separate
uvicorn process as ``ingest_backlog.py`` (``--receiver PORT``) — has answered 2xx to every
event's ``webhook-id``. No watcher, no Dovecot: what is left is fan-out, reading the queue,
signing, HTTP and recording the results.

Runs on SQLite and on PostgreSQL (a database of its own on ``MAILPORT_TEST_POSTGRES_URL``,
default the local server, created and dropped); ``--only`` picks one. Prints one JSON line:
``{"deliveries_per_s_sqlite", "deliveries_per_s_postgres", "cpu_ms_per_1k_sqlite", ...}``
(``cpu_ms_per_1k``: this process's CPU time per 1,000 deliveries, less load-dependent than the
rate on a shared machine). ``--batch-size N``: the endpoint's ``batch_size`` (default 1, one
event per request); the receiver counts each event inside a batch and checks order per mailbox.
``--event-loop uvloop``: the dispatcher runs on uvloop, as in a delivery-only worker (serve's
delivery child, :mod:`mailport.event_loop`); the JSON line then carries ``"event_loop"``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from bench._services import bench_services
from bench.ingest_backlog import create_pg, drop_pg, mark
from tests.mailstack.dovecot import free_port

from mailport.delivery import start_dispatcher
from mailport.delivery.schemas import WebhookCreate
from mailport.event_loop import worker_loop
from mailport.events import NewEvent, append_many

BODY = ("Hello, this is a backlog message. " * 55)[:1900]


def payload(mailbox: int, i: int) -> dict[str, Any]:
    """Roughly what ``message.received`` carries for one of the backlog's messages."""
    return {
        "message_id": f"<backlog.{mailbox}.{i}@example.test>",
        "subject": f"backlog {mailbox}/{i} — ünïcode",
        "from": [{"name": "Bench Sender", "address": "bench@example.test"}],
        "to": [{"name": None, "address": f"box{mailbox}@example.test"}],
        "date": "2026-01-01T00:00:00+00:00",
        "text": BODY,
        "html": None,
        "attachments": [],
        "headers": {"x-mailer": "bench"},
        "oversized": False,
    }


async def run(
    database_url: str, data_dir: Path, total: int, mailboxes: int, receiver: str, batch_size: int = 1
) -> dict[str, float]:
    services = await bench_services(database_url, data_dir, allow_private_hosts=True)
    try:
        tenant, _ = await services.tenants.create_tenant("bench")
        await services.webhooks.create(
            tenant.id, WebhookCreate(url=f"{receiver}/hook", batch_size=batch_size)
        )
        ids = [f"mbx_bench{m:04d}" for m in range(mailboxes)]
        items = [
            NewEvent(
                tenant.id, ids[i % mailboxes], "message.received", payload(i % mailboxes, i), f"bench:{i}"
            )
            for i in range(total)
        ]
        for start in range(0, total, 1000):
            async with services.database.transaction() as conn:
                await append_many(conn, items[start : start + 1000])
        async with httpx.AsyncClient(base_url=receiver) as client:
            before = (await client.get("/stats")).json()
            base, base_requests = before["unique"], before["requests"]
            started_wall, cpu = time.time(), time.process_time()
            mark("start")
            dispatcher = await start_dispatcher(services)
            try:
                deadline = time.perf_counter() + 600
                while True:
                    await asyncio.sleep(0.05)
                    stats = (await client.get("/stats")).json()
                    if stats["unique"] - base >= total:
                        break
                    if time.perf_counter() > deadline:
                        raise SystemExit(f"only {stats['unique'] - base} of {total} delivered in 600 s")
                cpu = time.process_time() - cpu
            finally:
                mark("end")
                await dispatcher.stop()
        if stats["order_errors"]:
            raise SystemExit(f"{stats['order_errors']} events arrived out of order in their mailbox")
        elapsed = stats["last_new"] - started_wall
        return {
            "seconds": round(elapsed, 2),
            "deliveries_per_s": round(total / elapsed, 1),
            "cpu_ms_per_1k": round(cpu * 1000 / total * 1000, 1),
            "requests": stats["requests"] - base_requests,
        }
    finally:
        await services.aclose()


def wait_until_up(url: str, timeout: float = 20.0) -> None:
    """Wait for the receiver process to answer ``GET /stats``."""
    for _ in range(int(timeout / 0.1)):
        try:
            httpx.get(f"{url}/stats", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit("the receiver did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--mailboxes", type=int, default=10)
    parser.add_argument("--only", choices=["sqlite", "postgres"], default=None)
    parser.add_argument(
        "--batch-size",
        type=int,
        default=1,
        help="the endpoint's batch_size: up to N consecutive events of one mailbox per request",
    )
    parser.add_argument(
        "--event-loop",
        choices=["asyncio", "uvloop"],
        default="asyncio",
        help="the dispatcher's event loop (uvloop: as in a delivery-only worker)",
    )
    args = parser.parse_args()
    loop_factory = worker_loop("auto", ["delivery"]) if args.event_loop == "uvloop" else None
    if args.event_loop == "uvloop" and loop_factory is None:  # never a line that names the wrong loop
        raise SystemExit("--event-loop uvloop: uvloop cannot be imported here")

    def measure(database_url: str, data_dir: Path, url: str) -> dict[str, Any]:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            return runner.run(run(database_url, data_dir, args.events, args.mailboxes, url, args.batch_size))

    root = Path(tempfile.mkdtemp(prefix="mailport-bench-delivery-"))
    port = free_port()
    backlog = Path(__file__).resolve().parent / "ingest_backlog.py"
    receiver = subprocess.Popen([sys.executable, str(backlog), "--receiver", str(port)])
    result: dict[str, Any] = {"events": args.events, "mailboxes": args.mailboxes}
    if args.batch_size != 1:  # the default line stays as it was
        result["batch_size"] = args.batch_size
    if args.event_loop != "asyncio":
        result["event_loop"] = args.event_loop
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_up(url)
        runs: list[tuple[str, str]] = []
        if args.only in (None, "sqlite"):
            runs.append(("sqlite", f"sqlite+aiosqlite:///{root / 'mailport.db'}"))
        for name, database_url in runs:
            got = measure(database_url, root / name, url)
            result.update({f"{key}_{name}": value for key, value in got.items()})
        if args.only in (None, "postgres"):
            db, pg_url = asyncio.run(create_pg())
            try:
                got = measure(pg_url, root / "pg", url)
            finally:
                asyncio.run(drop_pg(db))
            result.update({f"{key}_postgres": value for key, value in got.items()})
        result["loadavg"] = Path("/proc/loadavg").read_text().split()[:3]
    finally:
        receiver.terminate()
        receiver.wait(10)
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
