"""Sending throughput: 1,000 messages of 10 KB queued on one mailbox, until every one is accepted
by the SMTP server and has its Sent copy.

The messages are queued through :class:`~mailport.sending.service.SendService` (as ``POST
…/send`` does; timed apart). Then the send worker (:class:`mailport.sending.worker.SendWorker`,
as under ``mailport serve``) starts in this process and the clock runs until every row is
``sent`` with ``sent_copy = stored``: accepted by the submission server (the aiosmtpd bed of
``tests/mailstack/smtp.py``, STARTTLS and AUTH PLAIN, in a separate process so that it does not
compete for this process's GIL) and APPENDed to the mailbox's Sent folder in Dovecot over IMAP.
The submission server, Dovecot and mailport share the machine's two cores; the load average is
printed with the figure because other work on the machine changes it.

Run once on SQLite and once on PostgreSQL (``--postgres-url``, default the local server; a
database of its own is created and dropped). Prints one JSON line:
``{"messages_per_s_sqlite", "messages_per_s_postgres", ...}``. Goal (issue 16): >= 200 msg/s.

``--smtp PORT CERT KEY`` is the submission server process's own entry point.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._process import process_cpu
from bench._services import bench_services
from sqlalchemy import func, select
from tests.mailstack.dovecot import Dovecot, free_port

from mailport.crypto import Secret
from mailport.mailboxes.models import AuthMethod, NewMailbox, ProcessingSettings, Security, ServerSettings
from mailport.sending.models import SendingSettings, SendRequest, SentCopyMode
from mailport.sending.worker import SendWorker
from mailport.store.tables import outbound_messages

POSTGRES_ADMIN_URL = os.environ.get(
    "MAILPORT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
STALL_SECONDS = 60
BODY_LINE = "Hello, this is a benchmark message sent through the outbound queue. 0123456789\n"

# --------------------------------------------------------------------------- submission server


def run_smtp(port: int, cert: str, key: str) -> None:
    """The aiosmtpd submission bed on ``port`` (STARTTLS): any ``<x>@dyn.example.test`` with
    password ``pw-<x>``; nothing delivered further."""
    from tests.mailstack.smtp import SubmissionHandler, SubmissionServer

    server = SubmissionServer(SubmissionHandler(users={}), cert, key, port).start()
    print("ready", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.stop()


def start_smtp(dovecot: Dovecot) -> tuple[subprocess.Popen[str], int]:
    port = free_port()
    cert, key = str(dovecot.root / "ssl/cert.pem"), str(dovecot.root / "ssl/key.pem")
    process = subprocess.Popen(
        [sys.executable, __file__, "--smtp", str(port), cert, key], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    if process.stdout.readline().strip() != "ready":
        process.kill()
        raise SystemExit("the submission server did not start")
    return process, port


# --------------------------------------------------------------------------- one run


def body(size: int) -> str:
    return (BODY_LINE * (size // len(BODY_LINE) + 1))[:size]


async def counts(services: Any) -> tuple[int, int, int]:
    """(sent with its Sent copy stored, sent, failed)."""
    table = outbound_messages
    query = select(
        func.count().filter((table.c.state == "sent") & (table.c.sent_copy == "stored")),
        func.count().filter(table.c.state == "sent"),
        func.count().filter(table.c.state == "failed"),
    )
    async with services.database.connect() as conn:
        row = (await conn.execute(query)).one()
    return int(row[0]), int(row[1]), int(row[2])


async def run(
    dovecot: Dovecot, smtp: subprocess.Popen[str], database_url: str, data_dir: Path, args: argparse.Namespace
) -> dict[str, float]:
    smtp_port = int(args.smtp_port)
    total, size, connections = args.messages, args.size, args.connections
    services = await bench_services(
        database_url,
        data_dir,
        allow_private_hosts=True,
        mail_ca_file=dovecot.ca_file,
        send_connections=connections,
    )
    user, password = dovecot.dyn_user(f"s{uuid.uuid4().hex[:8]}")
    tenant, _ = await services.tenants.create_tenant("bench")
    mailbox = await services.mailboxes.create(
        tenant.id,
        NewMailbox(
            email=user,
            auth_method=AuthMethod.PASSWORD,
            imap=ServerSettings("127.0.0.1", dovecot.imap_port, Security.NONE),
            smtp=ServerSettings("127.0.0.1", smtp_port, Security.STARTTLS),
            password=Secret(password),
            settings=ProcessingSettings(
                from_name="Bench Desk",
                sending=SendingSettings(sent_copy=SentCopyMode.ALWAYS, rate_per_minute=0, rate_per_day=0),
            ),
        ),
    )
    text = body(size)
    started = time.perf_counter()
    for i in range(total):
        request = SendRequest(to=(f"customer{i % 50}@example.org",), subject=f"bench {i}", text=text)
        await services.sending.send(tenant.id, mailbox.id, request)
    queued_s = time.perf_counter() - started

    worker = SendWorker(services)
    cpu_started = time.process_time()
    smtp_cpu_started = process_cpu(smtp.pid)
    started = time.perf_counter()
    worker.start()
    try:
        progress = (-1, started)
        deadline = started + 900
        accepted_at: float | None = None
        while True:
            done, sent, failed = await counts(services)
            if accepted_at is None and sent + failed >= total:
                accepted_at = time.perf_counter()
            if done + failed >= total:
                break
            now = time.perf_counter()
            if now > deadline:
                raise SystemExit(f"only {done} of {total} sent and filed in 900 s")
            if done != progress[0]:
                progress = (done, now)
            elif now - progress[1] > STALL_SECONDS:
                raise SystemExit(f"stalled: {sent} sent, {done} filed, {failed} failed of {total}")
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        smtp_cpu = process_cpu(smtp.pid) - smtp_cpu_started
        load = os.getloadavg()
    finally:
        await worker.stop()
        await services.aclose()
    if failed:
        raise SystemExit(f"{failed} of {total} sends failed")
    return {
        "seconds": round(elapsed, 2),
        "accepted_s": round((accepted_at or time.perf_counter()) - started, 2),  # all accepted by SMTP
        "messages_per_s": round(total / elapsed, 1),
        "queued_per_s": round(total / queued_s, 1),
        "cpu_ms_per_message": round(cpu * 1000 / total, 2),  # this process (mailport) only
        "smtp_server_cpu_ms_per_message": round(smtp_cpu * 1000 / total, 2),  # the aiosmtpd bed
        "load_1min": round(load[0], 2),
    }


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--size", type=int, default=10 * 1024, help="body bytes per message")
    parser.add_argument("--connections", type=int, default=4, help="MAILPORT_SEND_CONNECTIONS")
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--smtp", nargs=3, metavar=("PORT", "CERT", "KEY"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.smtp:
        run_smtp(int(args.smtp[0]), args.smtp[1], args.smtp[2])
        return

    root = Path(tempfile.mkdtemp(prefix="mailport-bench-send-"))
    dovecot = Dovecot(root / "dovecot")
    dovecot.start()
    smtp, smtp_port = start_smtp(dovecot)
    args.smtp_port = smtp_port
    result: dict[str, Any] = {
        "messages": args.messages,
        "size_bytes": args.size,
        "connections": args.connections,
        "cpus": os.cpu_count(),
    }
    try:
        for database in args.databases.split(","):
            if database == "sqlite":
                url = f"sqlite+aiosqlite:///{root / 'send.db'}"
                figures = asyncio.run(run(dovecot, smtp, url, root / "var-sqlite", args))
            else:
                name, url = asyncio.run(create_pg())
                try:
                    figures = asyncio.run(run(dovecot, smtp, url, root / "var-pg", args))
                finally:
                    asyncio.run(drop_pg(name))
            for key, value in figures.items():
                result[f"{key}_{database}"] = value
            print(f"{database}: {figures}", file=sys.stderr, flush=True)
    finally:
        smtp.terminate()
        smtp.wait(10)
        dovecot.stop()
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
