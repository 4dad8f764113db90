"""Backlog throughput: 10,000 messages waiting in Dovecot, ingested, parsed and delivered by webhook.

The backlog (``--messages``, spread over ``--mailboxes`` mailboxes, ~2 KB text messages) is put
into a Dovecot of its own by IMAP APPEND before mailport starts (not timed). Then the mailbox
watchers (:class:`mailport.sync.Orchestrator`) and the webhook dispatcher
(:mod:`mailport.delivery`) start in this process, as under ``mailport serve``, and the clock
runs until a local webhook receiver — a separate process (uvicorn, bare ASGI), so it does not
compete for this process's GIL — has answered 2xx to every message's ``webhook-id``. Dovecot,
the receiver and mailport share the machine's two cores.

Run once on SQLite and once on PostgreSQL (``--postgres-url``, default the local server;
a database of its own is created and dropped). Prints one JSON line:
``{"messages_per_s_sqlite", "messages_per_s_postgres", ...}``.

``--connector pop3``: the same mailboxes read over Dovecot's POP3 listener (plain, like the IMAP
run) by the ``pop3`` connector (one RETR per message); the JSON line then carries
``"connector": "pop3"``. A POP3 mailbox's first sync takes at most the newest 100 messages as
new (``BASELINE_TOPS`` in connectors/pop3.py: POP3 has no arrival date to search by), so each
mailbox starts from the cursor of a poll that found the maildrop empty — the backlog arrived
after mailport had looked, which is what the IMAP run's first sync sees too.

``--no-webhook``: the watcher side alone. The webhook endpoint is still registered (so
ingestion sees the same tenant), but the dispatcher is not started and the clock stops when
every ``message.received`` event is committed; the JSON line then carries
``ingest_messages_per_s_sqlite`` / ``ingest_messages_per_s_postgres`` (and ``ingested_s_*``)
instead of the end-to-end keys.

``cpu_ms_per_message_*`` (``ingest_cpu_ms_per_message_*`` with ``--no-webhook``): this
process's CPU time (every thread: the event loop and the SQLite driver's) per message over the
timed phase; less sensitive than the rates to a machine shared with other work.

``--batch-size N``: the endpoint delivers up to N consecutive events of one mailbox per request
(docs/webhooks.md, "Batched delivery"); the receiver counts every event id inside a batch and
checks each mailbox's order (the run fails on an event out of order). Default 1: one event per
request, as before. ``requests_*`` is how many requests the receiver answered.

``--delivery-process``: the webhook dispatcher runs in a child process, as under ``mailport
serve`` with ``MAILPORT_DELIVERY_PROCESS=true`` (:class:`mailport.delivery.process.DeliveryProcess`:
a ``mailport worker`` with ``MAILPORT_WORKER_PARTS=delivery``, woken through a pipe at each of
this process's commits), started and ready before the clock; this process runs the watchers
alone, so ingestion and delivery each get a core. The JSON line then carries
``"delivery_process": true`` and ``delivery_cpu_ms_per_message_*`` (the child's CPU per message
over the same phase) beside ``cpu_ms_per_message_*`` (this process's). The two processes take
turns at SQLite's one writer.

``--receiver PORT`` is the receiver process's own entry point.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from email.message import EmailMessage
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from bench._process import process_cpu
from bench._services import bench_services, password_mailbox, start_delivery_process
from sqlalchemy import text
from tests.mailstack.dovecot import Dovecot, free_port

from mailport.clock import utc_now
from mailport.connectors.base import Cursor
from mailport.connectors.pop3_cursor import Remembered
from mailport.delivery import start_dispatcher
from mailport.delivery.schemas import WebhookCreate
from mailport.mailboxes.models import Security, ServerSettings
from mailport.sync import Orchestrator
from mailport.sync import repository as sync_repository

POSTGRES_ADMIN_URL = os.environ.get(
    "MAILPORT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


STALL_SECONDS = 60
_NEWEST_SEQ = text("SELECT coalesce(max(seq), 0) FROM events")
_RECEIVED = text("SELECT count(*) FROM events WHERE type = 'message.received'")


async def received_count(conn: Any, expected: int) -> int:
    """How many ``message.received`` events are committed, counted only once there can be
    ``expected`` of them. The count scans the whole events table (no index on ``type``): polled
    every 20 ms it was ~0.5 s of the SQLite thread per run (~20 % of the CPU the bench reports,
    on a core the watchers and Dovecot need). ``max(seq)`` reads the end of the primary key, and
    every event has its own positive ``seq``, so while ``max(seq) < expected`` fewer than
    ``expected`` events exist (the newest ``seq`` then serves as the progress figure)."""
    newest = int((await conn.execute(_NEWEST_SEQ)).scalar_one())
    if newest < expected:
        return newest
    return int((await conn.execute(_RECEIVED)).scalar_one())


# --------------------------------------------------------------------------- receiver process


def run_receiver(port: int) -> None:
    """Counts distinct event ids: a single delivery's ``webhook-id``, or each event inside a
    batch body (``--batch-size``), whose order per mailbox it checks (``order_errors``)."""
    import uvicorn

    unique: set[str] = set()
    last_seq: dict[str | None, int] = {}  # per mailbox, the newest seq a batch carried
    state: dict[str, Any] = {"requests": 0, "last_new": 0.0, "order_errors": 0}

    def count_batch(body: bytes) -> None:
        for event in json.loads(body)["events"]:
            if event["id"] in unique:
                continue  # a retried batch: already counted
            if event["seq"] <= last_seq.get(event["mailbox_id"], 0):
                state["order_errors"] += 1
            last_seq[event["mailbox_id"]] = event["seq"]
            unique.add(event["id"])
            state["last_new"] = time.time()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        if scope["method"] == "GET":
            stats = {
                "unique": len(unique),
                "requests": state["requests"],
                "last_new": state["last_new"],
                "order_errors": state["order_errors"],
            }
            payload = json.dumps(stats).encode()
        else:
            headers = dict(scope["headers"])
            event_id = headers.get(b"webhook-id", b"").decode()
            state["requests"] += 1
            if event_id.startswith("batch_"):
                count_batch(b"".join(chunks))
            elif event_id and event_id not in unique:
                unique.add(event_id)
                state["last_new"] = time.time()
            payload = b""
        length = str(len(payload)).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", length)]})
        await send({"type": "http.response.body", "body": payload})

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="off")


# --------------------------------------------------------------------------- backlog


def message(mailbox: int, i: int) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"] = "Bench Sender <bench@example.test>", f"box{mailbox}@example.test"
    msg["Subject"] = f"backlog {mailbox}/{i} — ünïcode"
    msg["Message-ID"] = f"<backlog.{mailbox}.{i}.{uuid.uuid4().hex[:8]}@example.test>"
    msg.set_content(("Hello, this is a backlog message. " * 55)[:1900])
    return msg.as_bytes().replace(b"\n", b"\r\n")


async def fill(dovecot: Dovecot, users: list[tuple[str, str]], per_mailbox: int) -> None:
    async def one(index: int, user: str, password: str) -> None:
        client = await dovecot.client(user, password, command_timeout=120)
        try:
            for start in range(0, per_mailbox, 100):
                await client.append_many(
                    "INBOX", [message(index, i) for i in range(start, min(start + 100, per_mailbox))]
                )
        finally:
            await client.logout()

    await asyncio.gather(*(one(i, u, p) for i, (u, p) in enumerate(users)))


# --------------------------------------------------------------------------- one run


def mark(what: str) -> None:
    """``BENCH_MARKS=1``: say on stderr when the timed phase starts and ends (for a profiler or a
    per-process CPU sampler that should see that phase only)."""
    if os.environ.get("BENCH_MARKS"):
        print(f"bench-mark {what}", file=sys.stderr, flush=True)


async def run(
    dovecot: Dovecot,
    database_url: str,
    data_dir: Path,
    total: int,
    mailboxes: int,
    receiver: str,
    connector: str = "imap",
    webhook: bool = True,
    batch_size: int = 1,
    delivery_process: bool = False,
) -> dict[str, float]:
    services = await bench_services(database_url, data_dir, allow_private_hosts=True)
    per_mailbox = total // mailboxes
    expected = per_mailbox * mailboxes
    users = [dovecot.dyn_user(f"b{uuid.uuid4().hex[:8]}") for _ in range(mailboxes)]
    tenant, _ = await services.tenants.create_tenant("bench")
    await services.webhooks.create(tenant.id, WebhookCreate(url=f"{receiver}/hook", batch_size=batch_size))
    async with httpx.AsyncClient(base_url=receiver) as client:
        before = (await client.get("/stats")).json()
        base, base_requests = before["unique"], before["requests"]
    pop3 = connector == "pop3"
    for user, password in users:
        port = dovecot.pop3_port if pop3 else dovecot.imap_port
        server = ServerSettings("127.0.0.1", port, Security.NONE)
        mailbox = await password_mailbox(services, tenant.id, user, password, server, pop3=pop3)
        if pop3:  # the cursor of a poll that found the maildrop empty (the module docstring)
            async with services.database.transaction() as conn:
                empty = Cursor("INBOX", "uidl", Remembered().encode())
                await sync_repository.save_cursor(conn, mailbox.id, empty, now=utc_now())
    # After the mailboxes exist: a first sync takes the mail that arrived since a mailbox was
    # added (with a minute of slack), and filling one mailbox with 10,000 messages takes longer
    # than that on a loaded machine (its first messages were then left out, and the run stalled).
    await fill(dovecot, users, per_mailbox)
    # made before the clock starts: its TLS context (the CA bundle) is ~90 ms of CPU
    client = httpx.AsyncClient(base_url=receiver)
    worker = await start_delivery_process(services) if delivery_process else None
    started_wall = time.time()
    started_cpu = time.process_time()
    worker_cpu = process_cpu(worker.pid) if worker is not None and worker.pid else 0.0
    mark("start")
    try:
        dispatcher = await start_dispatcher(services) if webhook and worker is None else None
        orchestrator = Orchestrator(services)
        await orchestrator.start()
    except BaseException:
        if worker is not None:  # never left behind
            await worker.stop()
        raise
    try:
        ingested_at = None
        ingested_cpu = 0.0
        count = 0
        progress = (-1, time.perf_counter())
        async with client:
            deadline = time.perf_counter() + 900
            while True:
                if ingested_at is None:
                    async with services.database.connect() as conn:
                        count = await received_count(conn, expected)
                    if count >= expected:
                        ingested_at = time.time()
                        ingested_cpu = time.process_time() - started_cpu
                        if not webhook:
                            break
                    elif not webhook:
                        if count != progress[0]:
                            progress = (count, time.perf_counter())
                        elif time.perf_counter() - progress[1] > STALL_SECONDS:
                            raise SystemExit(f"stalled: {count} of {total} ingested")
                        await asyncio.sleep(0.02)
                        continue
                stats = (await client.get("/stats")).json()
                if stats["unique"] - base >= per_mailbox * mailboxes:
                    break
                if time.perf_counter() > deadline:
                    raise SystemExit(f"only {stats['unique'] - base} of {total} delivered in 900 s")
                if stats["unique"] != progress[0]:
                    progress = (stats["unique"], time.perf_counter())
                elif time.perf_counter() - progress[1] > STALL_SECONDS:
                    raise SystemExit(
                        f"stalled: {stats['unique'] - base} of {total} delivered, "
                        f"{count if ingested_at is None else total} ingested, "
                        f"nothing new for {STALL_SECONDS} s"
                    )
                await asyncio.sleep(0.1)
        if worker is not None and worker.pid:
            worker_cpu = process_cpu(worker.pid) - worker_cpu
    finally:
        mark("end")
        await orchestrator.stop()
        if dispatcher is not None:
            await dispatcher.stop()
        if worker is not None:
            await worker.stop()
            if worker.returncode != 0 or worker.restarts:
                raise SystemExit("the delivery process did not run and stop cleanly")
        await services.aclose()
    if not webhook:
        assert ingested_at is not None
        ingest = ingested_at - started_wall
        return {
            "ingested_s": round(ingest, 2),
            "ingest_messages_per_s": round(expected / ingest, 1),
            "ingest_cpu_ms_per_message": round(ingested_cpu * 1000 / expected, 3),
        }
    if stats["order_errors"]:
        raise SystemExit(f"{stats['order_errors']} events arrived out of order in their mailbox")
    elapsed = stats["last_new"] - started_wall
    cpu = time.process_time() - started_cpu
    ingest = (ingested_at or stats["last_new"]) - started_wall
    figures = {
        "seconds": round(elapsed, 2),
        "messages_per_s": round(per_mailbox * mailboxes / elapsed, 1),
        "ingested_s": round(ingest, 2),
        "cpu_ms_per_message": round(cpu * 1000 / expected, 3),
        "requests": stats["requests"] - base_requests,
    }
    if worker is not None:
        figures["delivery_cpu_ms_per_message"] = round(worker_cpu * 1000 / expected, 3)
    return figures


async def create_pg() -> tuple[str, str]:
    import asyncpg

    name = f"mailport_bench_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(POSTGRES_ADMIN_URL)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return name, f"{base}/{name}"


async def drop_pg(name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(POSTGRES_ADMIN_URL)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def record(result: dict[str, Any], database: str, got: dict[str, float]) -> None:
    """The run's figures under the JSON line's keys (``<figure>_<database>``)."""
    for key, value in got.items():
        result[f"{key}_{database}"] = value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--mailboxes", type=int, default=10)
    parser.add_argument("--only", choices=["sqlite", "postgres"], default=None)
    parser.add_argument("--connector", choices=["imap", "pop3"], default="imap")
    parser.add_argument(
        "--no-webhook", action="store_true", help="ingestion alone: stop when every event is committed"
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=1,
        help="the endpoint's batch_size: up to N consecutive events of one mailbox per request",
    )
    parser.add_argument(
        "--delivery-process",
        action="store_true",
        help="the webhook dispatcher in a `mailport worker` of its own (MAILPORT_WORKER_PARTS=delivery)",
    )
    parser.add_argument("--receiver", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receiver is not None:
        run_receiver(args.receiver)
        return
    root = Path(tempfile.mkdtemp(prefix="mailport-bench-backlog-"))
    port = free_port()
    receiver = subprocess.Popen([sys.executable, __file__, "--receiver", str(port)])
    dovecot = Dovecot(root / "dovecot")
    dovecot.start()
    result: dict[str, Any] = {"messages": args.messages, "mailboxes": args.mailboxes}
    if args.connector != "imap":  # the IMAP run's line stays as it was
        result["connector"] = args.connector
    if args.batch_size != 1:  # likewise for the default of one event per request
        result["batch_size"] = args.batch_size
    if args.delivery_process:
        if args.no_webhook:
            parser.error("--delivery-process needs the webhook (drop --no-webhook)")
        result["delivery_process"] = True
    webhook = not args.no_webhook
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90  # a loaded machine starts uvicorn slowly
        while True:
            try:
                httpx.get(f"{url}/stats", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the receiver did not start"
                time.sleep(0.1)
        if args.only in (None, "sqlite"):
            sqlite_url = f"sqlite+aiosqlite:///{root / 'mailport.db'}"
            got = asyncio.run(
                run(
                    dovecot,
                    sqlite_url,
                    root / "var",
                    args.messages,
                    args.mailboxes,
                    url,
                    args.connector,
                    webhook,
                    args.batch_size,
                    args.delivery_process,
                )
            )
            record(result, "sqlite", got)
        if args.only in (None, "postgres"):
            name, pg_url = asyncio.run(create_pg())
            try:
                got = asyncio.run(
                    run(
                        dovecot,
                        pg_url,
                        root / "var-pg",
                        args.messages,
                        args.mailboxes,
                        url,
                        args.connector,
                        webhook,
                        args.batch_size,
                        args.delivery_process,
                    )
                )
            finally:
                asyncio.run(drop_pg(name))
            record(result, "postgres", got)
    finally:
        receiver.terminate()
        receiver.wait(10)
        dovecot.stop(timeout=60)
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
