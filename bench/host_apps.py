"""Issue 19's host-app features: what a JWT costs per request, POP3 ingestion against IMAP, and
``mailport apply`` of a 200-mailbox file.

Everything runs in this process on SQLite (the service graph of :mod:`bench._services`), beside a
Dovecot of its own (tests/mailstack, its POP3 and IMAP listeners, plain on loopback):

* **Authentication** — the app (``create_app``) over ``httpx.ASGITransport``, no network: ``GET
  /v1/mailboxes`` ``--requests`` (2,000) times each with a tenant API key, an HS256 host-app JWT
  and an RS256 JWT whose key set a local JWKS server publishes (both verifiers set through ``PUT
  /v1/tenants/{id}/jwt``); the callers take turns in blocks of 100 so that the machine's load
  falls on all alike. Then ``GET /v1/mailboxes/{id}`` (a JWT caller's path mailbox adds the owner
  check's query). Each tenant holds 20 mailboxes, all the JWT user's (the same page for every
  caller). Also the authentication call alone (``TenantService.authenticate_tenant`` / ``authenticate_jwt``).
* **POP3 ingestion** — ``--messages`` (2,000) ~3 KB messages in one INBOX (IMAP APPEND, not
  timed); then a ``pop3`` mailbox's connector reads them all (``restart`` cursor → ``fetch_since``:
  UIDL+LIST at login, one RETR each) and, on the same messages, the ``imap`` connector (``UID
  FETCH`` in chunks of 200), alternately ``--repeat`` times: messages/s and MB/s of raw mail
  (no parsing, no database). And how many messages the POP3 *baseline* cursor (a mailbox's first
  sync, ``since`` before the messages arrived) leaves to fetch. The watcher pipeline end to end:
  ``bench/ingest_backlog.py --connector pop3``.
* **apply** — a file with 1 tenant, 200 password mailboxes and 5 webhooks (secrets by ``env:``
  reference), applied twice through :mod:`mailport.declare` as ``mailport apply`` does (load,
  read the state, plan, preflight, execute): the first creates everything, the second changes
  nothing (checked).

``--quick``: 300 requests, 500 messages, 50 mailboxes. Prints readable lines, the machine's load,
and ends with one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import jwt
import yaml
from bench._services import bench_services
from tests.integration.auth.jwks_server import HostKey, serve_jwks
from tests.mailstack.dovecot import Dovecot

from mailport.api.app import create_app
from mailport.bootstrap import Services
from mailport.connectors.pop3_cursor import Remembered
from mailport.crypto import Secret
from mailport.declare.execute import execute, preflight
from mailport.declare.load import load_file
from mailport.declare.plan import Context, build_plan
from mailport.declare.state import read_state
from mailport.mailboxes.models import AuthMethod, NewMailbox, ProcessingSettings, Security, ServerSettings

BASE_URL = "http://mailport.bench"
BLOCK = 100  # requests per caller before the next caller's turn
OWNER = "user-1"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def figures(ms: list[float]) -> dict[str, float]:
    return {"p50_ms": round(statistics.median(ms), 3), "p99_ms": round(pct(ms, 0.99), 3)}


# --------------------------------------------------------------------------- 1. authentication


async def owned_mailboxes(services: Services, tenant_id: str, imap: ServerSettings) -> str:
    """20 mailboxes, all :data:`OWNER`'s (the key and the JWT list the same page, so that the
    difference is the authentication's); the id of one of them."""
    mine = ""
    for i in range(20):
        owner = OWNER
        made = await services.mailboxes.create(
            tenant_id,
            NewMailbox(
                email=f"box{i}@{tenant_id[:8]}.example.test",
                auth_method=AuthMethod.PASSWORD,
                imap=imap,
                password=Secret("not-used"),
                owner=owner,
            ),
        )
        mine = mine or made.id
    return mine


async def auth_bench(services: Services, imap: ServerSettings, requests: int) -> dict[str, Any]:
    app = create_app(services=services)
    hs_tenant, hs_key = await services.tenants.create_tenant("bench-hs256")
    rs_tenant, rs_key = await services.tenants.create_tenant("bench-rs256")
    hs_box = await owned_mailboxes(services, hs_tenant.id, imap)
    rs_box = await owned_mailboxes(services, rs_tenant.id, imap)
    secret = "hs-" + uuid.uuid4().hex * 2
    now = int(time.time())
    claims = {"sub": OWNER, "iat": now, "exp": now + 3600}
    host_key = HostKey.rsa("bench-1")
    transport = httpx.ASGITransport(app=app)

    def client(token: str) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"}
        return httpx.AsyncClient(transport=transport, base_url=BASE_URL, headers=headers)

    with serve_jwks() as jwks:
        jwks.publish(host_key)
        async with client(hs_key.reveal()) as hs_admin, client(rs_key.reveal()) as rs_admin:
            body = {"kind": "hs256", "secret": secret, "issuer": "https://crm.bench"}
            put = await hs_admin.put(f"/v1/tenants/{hs_tenant.id}/jwt", json=body)
            assert put.status_code == 200, put.text
            body = {"kind": "jwks", "jwks_url": jwks.url, "issuer": "https://idp.bench"}
            put = await rs_admin.put(f"/v1/tenants/{rs_tenant.id}/jwt", json=body)
            assert put.status_code == 200, put.text
        tokens = {
            "key": (hs_key.reveal(), hs_box),
            "hs256": (jwt.encode({**claims, "iss": "https://crm.bench"}, secret, algorithm="HS256"), hs_box),
            "rs256": (host_key.sign({**claims, "iss": "https://idp.bench"}), rs_box),
        }
        clients = {name: client(token) for name, (token, _) in tokens.items()}
        try:
            listed = await timed_routes(clients, lambda name: "/v1/mailboxes", requests)
            paths = {name: f"/v1/mailboxes/{box}" for name, (_, box) in tokens.items()}
            one = await timed_routes(clients, lambda name: paths[name], requests)
            seen = {}
            for name, c in clients.items():
                seen[name] = len((await c.get("/v1/mailboxes")).json()["items"])
        finally:
            for c in clients.values():
                await c.aclose()
        alone = await auth_alone(services, {name: token for name, (token, _) in tokens.items()}, requests)
        jwks_fetches = jwks.requests
    return {
        "requests": requests,
        "list": listed,
        "get_mailbox": one,
        "auth_only": alone,
        "mailboxes_seen": seen,
        "jwks_fetches": jwks_fetches,
    }


async def timed_routes(
    clients: dict[str, httpx.AsyncClient], path: Callable[[str], str], requests: int
) -> dict[str, dict[str, float]]:
    """Each caller's latencies for ``path``, the callers taking turns in blocks of :data:`BLOCK`."""
    ms: dict[str, list[float]] = {name: [] for name in clients}
    for name, c in clients.items():  # warm-up: caches, the JWKS fetch, first-request imports
        for _ in range(50):
            answer = await c.get(path(name))
            assert answer.status_code == 200, f"{name}: {answer.status_code} {answer.text}"
    for _ in range(0, requests, BLOCK):
        for name, c in clients.items():
            for _ in range(BLOCK):
                started = time.perf_counter()
                answer = await c.get(path(name))
                ms[name].append((time.perf_counter() - started) * 1000)
                assert answer.status_code == 200, f"{name}: {answer.status_code} {answer.text}"
    out = {name: figures(values) for name, values in ms.items()}
    for name in out:
        out[name]["vs_key_p50_ms"] = round(out[name]["p50_ms"] - out["key"]["p50_ms"], 3)
    return out


async def auth_alone(services: Services, tokens: dict[str, str], requests: int) -> dict[str, float]:
    """The authentication call alone: microseconds per call (median of blocks of 100)."""
    calls: dict[str, Callable[[], Awaitable[object]]] = {
        "key": lambda: services.tenants.authenticate_tenant(tokens["key"]),
        "hs256": lambda: services.tenants.authenticate_jwt(tokens["hs256"]),
        "rs256": lambda: services.tenants.authenticate_jwt(tokens["rs256"]),
    }
    out = {}
    for name, call in calls.items():
        blocks = []
        for _ in range(max(1, requests // BLOCK)):
            started = time.perf_counter()
            for _ in range(BLOCK):
                await call()
            blocks.append((time.perf_counter() - started) / BLOCK * 1e6)
        out[f"{name}_us"] = round(statistics.median(blocks), 1)
    return out


# --------------------------------------------------------------------------- 2. POP3 ingestion


def message(i: int) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"] = "Bench Sender <bench@example.test>", "pop3@example.test"
    msg["Subject"] = f"pop3 bench {i} — ünïcode"
    msg["Message-ID"] = f"<pop3bench.{i}.{uuid.uuid4().hex[:8]}@example.test>"
    msg.set_content(("POP3 or IMAP, this message is read the same. " * 64)[:2800])
    return msg.as_bytes().replace(b"\n", b"\r\n")


async def fill(dovecot: Dovecot, user: str, password: str, count: int) -> int:
    client = await dovecot.client(user, password, command_timeout=300)
    size = 0
    try:
        for start in range(0, count, 200):
            batch = [message(i) for i in range(start, min(start + 200, count))]
            size += sum(len(m) for m in batch)
            await client.append_many("INBOX", batch)
    finally:
        await client.logout()
    return size


async def read_all(
    services: Services, mailbox: Any, *, baseline_since: float | None = None
) -> dict[str, Any]:
    """Connect, open INBOX and fetch every message after the ``restart`` cursor (the baseline's
    when ``baseline_since`` is given); messages and bytes read, seconds."""
    from datetime import UTC, datetime

    connector = services.connector(mailbox)
    started = time.perf_counter()
    await connector.connect()
    state = await connector.open("INBOX")
    if baseline_since is None:
        cursor = await connector.restart(state)
    else:
        cursor = await connector.baseline(state, since=datetime.fromtimestamp(baseline_since, UTC))
    count = size = 0
    try:
        async for batch in connector.fetch_since(cursor):
            count += len(batch.messages)
            size += sum(len(m.raw or b"") for m in batch.messages)
    finally:
        await connector.disconnect()
    seconds = time.perf_counter() - started
    return {"messages": count, "bytes": size, "seconds": seconds}


async def pop3_bench(services: Services, dovecot: Dovecot, count: int, repeat: int) -> dict[str, Any]:
    """The same user's INBOX as a ``pop3`` and an ``imap`` mailbox (of two tenants: one address
    is one mailbox per tenant)."""
    user, password = dovecot.dyn_user(f"pop{uuid.uuid4().hex[:8]}")
    before = time.time() - 1
    started = time.perf_counter()
    size = await fill(dovecot, user, password, count)
    print(
        f"# {count:,} messages ({size / count / 1024:.1f} KB each) in INBOX, "
        f"filled in {time.perf_counter() - started:.1f} s",
        flush=True,
    )
    common: dict[str, Any] = {
        "email": user,
        "auth_method": AuthMethod.PASSWORD,
        "password": Secret(password),
        "settings": ProcessingSettings(check_interval=3600),
    }
    plain = Security.NONE
    boxes = {
        "pop3": await services.mailboxes.create(
            (await services.tenants.create_tenant("bench-pop3"))[0].id,
            NewMailbox(
                imap=None,
                connector="pop3",
                pop3=ServerSettings("127.0.0.1", dovecot.pop3_port, plain),
                **common,
            ),
        ),
        "imap": await services.mailboxes.create(
            (await services.tenants.create_tenant("bench-imap"))[0].id,
            NewMailbox(imap=ServerSettings("127.0.0.1", dovecot.imap_port, plain), **common),
        ),
    }
    runs: dict[str, list[dict[str, Any]]] = {"pop3": [], "imap": []}
    for _ in range(repeat):
        for name, mailbox in boxes.items():
            got = await read_all(services, mailbox)
            assert got["messages"] == count, f"{name}: read {got['messages']} of {count}"
            runs[name].append(got)
    out: dict[str, Any] = {"messages": count, "message_bytes": round(size / count)}
    for name, done in runs.items():
        rates = [r["messages"] / r["seconds"] for r in done]
        best = max(done, key=lambda r: r["messages"] / r["seconds"])
        out[name] = {
            "messages_per_s": [round(r, 1) for r in rates],
            "mb_per_s": [round(r["bytes"] / r["seconds"] / 1e6, 2) for r in done],
            "best_seconds": round(best["seconds"], 3),
        }
    first = await read_all(services, boxes["pop3"], baseline_since=before)
    out["pop3_baseline_new"] = first["messages"]
    out["pop3_cursor_bytes"] = len(Remembered(tuple(f"{i:016X}" for i in range(count))).encode())
    return out


# --------------------------------------------------------------------------- 3. apply


def accounts_file(dovecot: Dovecot, mailboxes: int, webhooks: int) -> dict[str, Any]:
    imap = {"host": "127.0.0.1", "port": dovecot.imap_port, "security": "none"}
    return {
        "version": 1,
        "tenants": [
            {
                "name": "bench-apply",
                "webhooks": [
                    {
                        "url": f"http://127.0.0.1:9/hooks/{i}",
                        "events": ["message.received"],
                        "secret": "env:BENCH_HOOK_SECRET",
                    }
                    for i in range(webhooks)
                ],
                "mailboxes": [
                    {
                        "email": f"applied{i}@example.test",
                        "auth": "password",
                        "password": "env:BENCH_MAILBOX_PASSWORD",
                        "label": f"Box {i}",
                        "owner": f"user-{i % 17}",
                        "imap": imap,
                        "settings": {"check_interval": 300},
                    }
                    for i in range(mailboxes)
                ],
            }
        ],
    }


async def apply_once(services: Services, path: Path, environ: dict[str, str]) -> tuple[float, int]:
    """``mailport apply path`` as the CLI does it (cli/declare.py), in this process: seconds and changes."""
    started = time.perf_counter()
    declared = load_file(path)
    snapshot = await read_state(services)
    context = Context(
        base_dir=path.parent,
        registry=services.oauth.oauth.registry,
        api_providers=services.mailboxes.api_providers,
        environ=environ,
    )
    plan = build_plan(declared, snapshot, context)
    await preflight(services, plan)
    outcome = await execute(services, plan, {name: t.tenant.id for name, t in snapshot.tenants.items()})
    if outcome.error is not None:
        raise outcome.error
    return time.perf_counter() - started, len(plan.changes)


async def apply_bench(services: Services, dovecot: Dovecot, root: Path, mailboxes: int) -> dict[str, Any]:
    path = root / "accounts.yaml"
    path.write_text(yaml.safe_dump(accounts_file(dovecot, mailboxes, 5), sort_keys=False), encoding="utf-8")
    environ = {
        "BENCH_MAILBOX_PASSWORD": "pw-" + uuid.uuid4().hex,
        "BENCH_HOOK_SECRET": "whsec_" + base64.b64encode(os.urandom(24)).decode(),
    }
    first, made = await apply_once(services, path, environ)
    second, changed = await apply_once(services, path, environ)
    assert made == 1 + mailboxes + 5, f"the first apply made {made} changes"
    assert changed == 0, f"the second apply changed {changed} things"
    return {
        "mailboxes": mailboxes,
        "webhooks": 5,
        "first_s": round(first, 2),
        "first_changes": made,
        "second_s": round(second, 3),
        "second_changes": changed,
    }


# --------------------------------------------------------------------------- run and report


async def run(dovecot: Dovecot, root: Path, args: argparse.Namespace) -> dict[str, Any]:
    services = await bench_services(
        f"sqlite+aiosqlite:///{root / 'mailport.db'}", root / "var", allow_private_hosts=True
    )
    try:
        imap = ServerSettings("127.0.0.1", dovecot.imap_port, Security.NONE)
        started = time.perf_counter()
        auth = await auth_bench(services, imap, args.requests)
        auth["seconds"] = round(time.perf_counter() - started, 1)
        report_auth(auth)
        started = time.perf_counter()
        pop3 = await pop3_bench(services, dovecot, args.messages, args.repeat)
        pop3["seconds"] = round(time.perf_counter() - started, 1)
        report_pop3(pop3)
        applied = await apply_bench(services, dovecot, root, args.mailboxes)
        report_apply(applied)
    finally:
        await services.aclose()
    return {"auth": auth, "pop3": pop3, "apply": applied}


def report_auth(auth: dict[str, Any]) -> None:
    print(f"# authentication: {auth['requests']:,} requests per caller, in process (ASGI), SQLite")
    for route, title in (("list", "GET /v1/mailboxes"), ("get_mailbox", "GET /v1/mailboxes/{id}")):
        for name, got in auth[route].items():
            extra = "" if name == "key" else f"   {got['vs_key_p50_ms']:+.2f} ms vs the key"
            print(
                f"{title + ' ' + name:<32} p50 {got['p50_ms']:6.2f} ms   p99 {got['p99_ms']:6.2f} ms{extra}"
            )
    alone = auth["auth_only"]
    print(
        f"{'authentication call alone':<32} key {alone['key_us']:.0f} µs, HS256 {alone['hs256_us']:.0f} µs, "
        f"RS256 {alone['rs256_us']:.0f} µs   (JWKS fetched {auth['jwks_fetches']} time(s); "
        f"mailboxes listed: {auth['mailboxes_seen']})"
    )


def report_pop3(pop3: dict[str, Any]) -> None:
    print(
        f"# ingestion: {pop3['messages']:,} messages of {pop3['message_bytes']:,} bytes, "
        "raw reads (no parse, no DB)"
    )
    for name in ("pop3", "imap"):
        got = pop3[name]
        print(
            f"{name + ' fetch_since, all':<32} "
            f"{' / '.join(f'{r:,.0f}' for r in got['messages_per_s'])} messages/s"
            f"   {' / '.join(f'{r:.1f}' for r in got['mb_per_s'])} MB/s   (best {got['best_seconds']:.2f} s)"
        )
    print(
        f"{'pop3 first-sync baseline':<32} leaves {pop3['pop3_baseline_new']} of {pop3['messages']:,} "
        f"messages new (all arrived after `since`); a {pop3['messages']:,}-id cursor is "
        f"{pop3['pop3_cursor_bytes']:,} bytes"
    )


def report_apply(applied: dict[str, Any]) -> None:
    print(
        f"{'mailport apply (in process)':<32} first {applied['first_s']:.2f} s "
        f"({applied['first_changes']} changes), second {applied['second_s']:.3f} s "
        f"({applied['second_changes']} changes)   1 tenant, {applied['mailboxes']} mailboxes, "
        f"{applied['webhooks']} webhooks"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="a smaller run (300 requests, 500 messages, 50 mailboxes)"
    )
    parser.add_argument(
        "--requests", type=int, default=None, help="timed requests per caller and route (2,000)"
    )
    parser.add_argument("--messages", type=int, default=None, help="messages in the POP3/IMAP INBOX (2,000)")
    parser.add_argument("--mailboxes", type=int, default=None, help="mailboxes in the applied file (200)")
    parser.add_argument("--repeat", type=int, default=3, help="reads of the INBOX per connector")
    args = parser.parse_args()
    quick = {"requests": 300, "messages": 500, "mailboxes": 50}
    full = {"requests": 2000, "messages": 2000, "mailboxes": 200}
    for name, value in (quick if args.quick else full).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.requests = max(BLOCK, args.requests // BLOCK * BLOCK)
    root = Path(tempfile.mkdtemp(prefix="mailport-bench-host-apps-"))
    dovecot = Dovecot(root / "dovecot")
    dovecot.start()
    started = time.perf_counter()
    try:
        result = asyncio.run(run(dovecot, root, args))
    finally:
        dovecot.stop(timeout=30)
        shutil.rmtree(root, ignore_errors=True)
    load1, load5, _ = os.getloadavg()
    print(
        f"# machine: {os.cpu_count()} cores, load average {load1:.1f} (1 min), {load5:.1f} (5 min); "
        f"{time.perf_counter() - started:.0f} s in all"
    )
    result["loadavg"] = [round(load1, 2), round(load5, 2)]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
