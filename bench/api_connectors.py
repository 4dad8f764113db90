"""The mail API connectors (``gmail_api``, ``graph``) against the local fakes: push latency, initial
sync throughput and requests per ingested message.

For each connector, in this process, as under ``mailport serve``: the service graph on SQLite, its
app under uvicorn on a loopback port (the public URL the fakes notify: Gmail through the fake's
Pub/Sub push subscription to ``/v1/push/gmail_api/<channel>``, Graph through its subscription's
``notificationUrl``), the watchers and the webhook dispatcher, a local webhook receiver, and the
local authorization server for the tokens. Both fakes run in this machine's two cores with it.

* **Initial sync** — ``--sync-messages`` (10,000) ~2 KB messages wait in a new mailbox's inbox
  before mailport starts; the clock runs from the server's start to the last
  ``message.received`` committed (``sync_messages_per_s``). The fakes count the HTTP requests
  mailport made meanwhile (``requests_per_message``; a batch is one request, its parts are
  counted apart as ``api_calls_per_message``).
* **Push latency** — ``--messages`` (100) messages arrive one at a time, ``--gap`` seconds apart,
  in a pushed mailbox; for each, the fake's own delivery time (message added → its notification
  POST reaching mailport's route, measured by a marker around the app) and mailport's part
  (that POST → the signed webhook received): ``push_to_webhook_p50_ms`` / ``_p99_ms`` (the goal:
  p50 ≤ 50 ms), ``fake_delivery_p50_ms``, the whole ``add_to_webhook_p50_ms``, and the API calls
  each pushed message cost (``api_calls_per_pushed_message``).

Prints one JSON line per connector, ``{"connector": …, …}``. ``--only gmail_api|graph`` runs one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import uvicorn
from pydantic import SecretStr
from sqlalchemy import func, select
from tests.fakes.gmail import GmailFake
from tests.fakes.graph import GraphFake
from tests.fixtures.gmail import connect_gmail_mailbox, gmail_provider_overrides
from tests.fixtures.graph import GRAPH_SCOPES, connect_graph_mailbox
from tests.fixtures.webhook_receiver import WebhookReceiver
from tests.mailstack.idp import MockIdP

from mailport.api.app import create_app
from mailport.bootstrap import Services, build
from mailport.config import Settings
from mailport.crypto import generate_key
from mailport.delivery.schemas import WebhookCreate
from mailport.mailboxes.models import Mailbox, ProcessingSettings
from mailport.push.shared import SharedChannels
from mailport.store.tables import events

QUIET = ProcessingSettings(check_interval=3600)  # no poll gets in the way: push (or the first sync) does


def message(i: int, to: str) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "bench@example.test", to, f"api bench {i}"
    msg["Message-ID"] = f"<api.{i}.{time.time_ns()}@example.test>"
    msg.set_content("x" * 2000)
    return msg.as_bytes()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


class Arrivals:
    """Wraps the app: when each notification POST reached mailport's push route."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.times: list[float] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/v1/push/"):
            self.times.append(time.monotonic())
        await self.app(scope, receive, send)


@dataclass
class Bed:
    services: Services
    url: str
    arrivals: Arrivals
    server: uvicorn.Server | None = None
    task: asyncio.Task[None] | None = None
    started_at: float = 0.0


def settings_for(root: Path, providers: dict[str, Any], port: int) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=f"sqlite+aiosqlite:///{root / 'mailport.db'}",
        data_dir=root / "var",
        secret_keys=SecretStr(generate_key()),
        log_level="WARNING",
        public_url=f"http://127.0.0.1:{port}",
        oauth_providers_file=_write(root / "providers.json", providers),
        google_client_id="test-client",
        google_client_secret=SecretStr("test-secret"),
        microsoft_client_id="test-client",
        microsoft_client_secret=SecretStr("test-secret"),
        allow_private_hosts=True,  # the fakes, the IdP and the webhook receiver are on loopback
        api_poll_seconds=300.0,
    )


def _write(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


@contextlib.asynccontextmanager
async def bed(settings: Settings, sock: socket.socket) -> AsyncIterator[Bed]:
    services = await build(settings, migrate=True)
    app = create_app(services=services)
    app.state.serve = True  # what `mailport serve` sets: watchers and delivery beside the API
    made = Bed(services, settings.public_url, Arrivals(app))
    try:
        yield made
    finally:
        if made.server is not None and made.task is not None:
            made.server.should_exit = True
            await asyncio.wait_for(made.task, 30)
        sock.close()
        await services.aclose()


async def serve(made: Bed, sock: socket.socket) -> None:
    """Start the app (and so the watchers and the dispatcher); returns once it answers."""
    made.server = uvicorn.Server(
        uvicorn.Config(made.arrivals, host="127.0.0.1", log_config=None, access_log=False, lifespan="on")
    )
    made.started_at = time.monotonic()
    made.task = asyncio.create_task(made.server.serve(sockets=[sock]))
    while not made.server.started:
        await asyncio.sleep(0.01)


async def wait_until(check: Callable[[], Awaitable[Any]], *, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = await check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:g} s")
        await asyncio.sleep(0.02)


async def received(services: Services, mailbox_id: str) -> int:
    query = select(func.count()).where(events.c.mailbox_id == mailbox_id, events.c.type == "message.received")
    async with services.database.connect() as conn:
        return int((await conn.execute(query)).scalar_one())


@dataclass
class Connector:
    """What differs between the two: making a mailbox, adding mail, the fake's request count."""

    key: str
    make: Callable[[Bed, str], Awaitable[tuple[Mailbox, Any]]]
    add: Callable[[Any, bytes], str]
    pushed: Callable[[Bed, Mailbox, Any], Awaitable[bool]]
    requests: Callable[[], tuple[int, int]]  # (HTTP requests, API calls incl. batch parts)


async def sync_phase(made: Bed, sock: socket.socket, connector: Connector, count: int) -> dict[str, float]:
    tenant, _ = await made.services.tenants.create_tenant(f"sync-{uuid.uuid4().hex[:6]}")
    mailbox, account = await connector.make(made, tenant.id)
    for i in range(count):  # waiting before mailport starts (not timed)
        connector.add(account, message(i, mailbox.email))
    before = connector.requests()
    await serve(made, sock)
    await wait_until(
        lambda: _at_least(made.services, mailbox.id, count),
        timeout=max(120.0, count / 20),
        what="initial sync",
    )
    elapsed = time.monotonic() - made.started_at
    after = connector.requests()
    return {
        "sync_messages": count,
        "sync_seconds": round(elapsed, 2),
        "sync_messages_per_s": round(count / elapsed, 1),
        "requests_per_message": round((after[0] - before[0]) / count, 3),
        "api_calls_per_message": round((after[1] - before[1]) / count, 3),
    }


async def _at_least(services: Services, mailbox_id: str, count: int) -> bool:
    return await received(services, mailbox_id) >= count


async def latency_phase(made: Bed, connector: Connector, count: int, gap: float) -> dict[str, float]:
    tenant, _ = await made.services.tenants.create_tenant(f"push-{uuid.uuid4().hex[:6]}")
    receiver = WebhookReceiver().start()
    try:
        await made.services.webhooks.create(
            tenant.id, WebhookCreate(url=receiver.url, events=["message.received"])
        )
        mailbox, account = await connector.make(made, tenant.id)
        await wait_until(
            lambda: connector.pushed(made, mailbox, account), timeout=30, what="the push subscription"
        )
        await asyncio.sleep(0.5)
        before = connector.requests()
        fake_ms: list[float] = []
        ours_ms: list[float] = []
        whole_ms: list[float] = []
        for i in range(count):
            hooks, arrived = len(receiver.requests), len(made.arrivals.times)
            added = time.monotonic()
            connector.add(account, message(i, mailbox.email))
            deadline = time.monotonic() + 20
            while len(receiver.requests) <= hooks and time.monotonic() < deadline:
                await asyncio.sleep(0.001)
            if len(receiver.requests) > hooks and len(made.arrivals.times) > arrived:
                hook_at = receiver.requests[hooks].at
                push_at = made.arrivals.times[arrived]
                fake_ms.append((push_at - added) * 1000)
                ours_ms.append((hook_at - push_at) * 1000)
                whole_ms.append((hook_at - added) * 1000)
            await asyncio.sleep(gap)
        after = connector.requests()
    finally:
        receiver.stop()
    return {
        "push_to_webhook_p50_ms": round(statistics.median(ours_ms), 1),
        "push_to_webhook_p99_ms": round(pct(ours_ms, 0.99), 1),
        "fake_delivery_p50_ms": round(statistics.median(fake_ms), 1),
        "add_to_webhook_p50_ms": round(statistics.median(whole_ms), 1),
        "add_to_webhook_p99_ms": round(pct(whole_ms, 0.99), 1),
        "latency_messages": len(ours_ms),
        "api_calls_per_pushed_message": round((after[1] - before[1]) / max(1, count), 2),
    }


def gmail_connector(idp: MockIdP, fake: GmailFake) -> Connector:
    async def make(made: Bed, tenant_id: str) -> tuple[Mailbox, Any]:
        # the tenant's push channel on a topic of its own, which the fake pushes to mailport
        topic = fake.pubsub.create_topic(f"projects/mailport-bench/topics/t{uuid.uuid4().hex[:10]}")
        channel = await SharedChannels(made.services.push.channels, public_url=made.url).create(
            tenant_id, "gmail_api", topic=topic
        )
        fake.pubsub.create_subscription(
            f"projects/mailport-bench/subscriptions/s{uuid.uuid4().hex[:10]}",
            topic,
            push_endpoint=channel.push_endpoint,
        )
        return await connect_gmail_mailbox(made.services, idp, fake, tenant_id=tenant_id, settings=QUIET)

    async def pushed(made: Bed, mailbox: Mailbox, account: Any) -> bool:
        return account.watch is not None

    def requests() -> tuple[int, int]:
        calls = [e for e in list(fake.requests) if e.service in ("gmail", "pubsub", "token")]
        return len([e for e in calls if e.kind != "batch_item"]), len([e for e in calls if e.kind != "batch"])

    return Connector(
        "gmail_api",
        make,
        lambda account, raw: account.add_message(raw, ("INBOX", "UNREAD")),
        pushed,
        requests,
    )


def graph_connector(idp: MockIdP, fake: GraphFake) -> Connector:
    async def make(made: Bed, tenant_id: str) -> tuple[Mailbox, Any]:
        connected = await connect_graph_mailbox(made.services, fake, idp, tenant_id=tenant_id, settings=QUIET)
        return connected.mailbox, connected.account

    async def pushed(made: Bed, mailbox: Mailbox, account: Any) -> bool:
        rows = await made.services.subscriptions.for_mailbox(mailbox.id)
        return bool(rows) and all(r.remote_id in fake.subscriptions for r in rows)

    def requests() -> tuple[int, int]:
        recorded = list(fake.requests)
        return len([e for e in recorded if not e.batch_item]), len(
            [e for e in recorded if e.batch_item or e.path != "/v1.0/$batch"]
        )

    return Connector("graph", make, lambda account, raw: account.add(raw), pushed, requests)


async def run_one(key: str, idp: MockIdP, args: argparse.Namespace) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix=f"mailport-bench-{key}-"))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    try:
        with _fake(key, idp) as fake:
            providers = _providers(key, idp, fake)
            connector = gmail_connector(idp, fake) if key == "gmail_api" else graph_connector(idp, fake)
            async with bed(settings_for(root, providers, port), sock) as made:
                result: dict[str, Any] = {"connector": key}
                result |= await sync_phase(made, sock, connector, args.sync_messages)
                result |= await latency_phase(made, connector, args.messages, args.gap)
                return result
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def _fake(key: str, idp: MockIdP) -> Any:
    if key == "gmail_api":
        gmail = GmailFake(public_pem=idp.state.public_pem())
        with gmail:
            yield gmail
    else:
        with GraphFake(idp.state.public_pem()) as graph:
            graph.record = True
            yield graph


def _providers(key: str, idp: MockIdP, fake: Any) -> dict[str, Any]:
    if key == "gmail_api":
        return gmail_provider_overrides(idp, fake)
    from tests.mailstack.idp import idp_overrides

    overrides: dict[str, Any] = idp_overrides(idp)
    overrides["microsoft"]["apis"] = {"graph": {"base_url": fake.url, "scopes": list(GRAPH_SCOPES)}}
    return overrides


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sync-messages", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=100, help="messages for the push latency")
    parser.add_argument("--gap", type=float, default=0.2, help="seconds between pushed messages")
    parser.add_argument("--only", choices=("gmail_api", "graph"))
    args = parser.parse_args()
    with MockIdP() as idp:
        for key in ("gmail_api", "graph"):
            if args.only in (None, key):
                print(json.dumps(asyncio.run(run_one(key, idp, args))), flush=True)


if __name__ == "__main__":
    main()
