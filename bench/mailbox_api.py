"""Reading a mailbox live over HTTP: list, search, get, 100 concurrent lists, and the watcher's
new-mail latency while those 100 keep the mailbox's command pool busy.

A Dovecot of its own gets ``--messages`` (10,000) messages in INBOX by IMAP APPEND (not timed;
50 senders, ~2 KB each, one in ten with a small attachment). ``mailport serve`` runs in a
subprocess (uvicorn, SQLite, the watchers and the webhook dispatcher inside, as in production;
``--worker``: the watchers in a ``mailport worker`` process beside an API-only ``serve``);
the benchmark talks to it over HTTP only. It measures, sequentially, ``--rounds`` requests each:

* ``GET …/folders`` (the route that exists since folders; a sanity figure);
* ``GET …/messages?limit=50`` — the first page of INBOX, newest first;
* ``POST …/messages/search`` with ``{"from": <one of the 50 senders>}``;
* ``GET …/messages/{ref}`` — a parsed message, refs taken from the listing;

then ``--concurrent`` (100) list requests at once, ``--bursts`` times: how many were answered
200, 503 (the documented ``mailbox_busy``) or anything else, and their p50/p99.

Last, a load process (``--load``, a separate process so that it does not share this one's GIL
with the timing) keeps ``--concurrent`` clients requesting lists in a loop while
``--latency-messages`` messages are delivered by LMTP, ``--gap`` seconds apart, to the same
mailbox. Per message: LMTP delivery done → the signed webhook received here (``event_*``), and
→ the ``* N EXISTS`` a bare IDLE client of this process receives (Dovecot's own notification,
~500 ms hard-coded: the floor under any figure). ``overhead`` is their difference.

A route that answers 404/405 (not built yet on this branch) prints "not available"; everything
that depends on it too. Prints the figures with the issue's goals beside them, the machine's load,
and ends with one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import smtplib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from email.message import EmailMessage
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from tests.fixtures.webhook_receiver import WebhookReceiver
from tests.mailstack.dovecot import Dovecot, free_port

from mailport.crypto import generate_key
from mailport.imap import EventKind, ServerEvent

SENDERS = 50
# Below the server's keep-alive timeout (MAILPORT_KEEP_ALIVE_TIMEOUT, 5 s): a connection left
# unused longer is not reused, so the server closing it cannot race a request (httpx does not
# retry a request the server closed the connection under).
KEEPALIVE = 3.0
GOALS = {"list_p50_ms": 30.0, "get_p50_ms": 20.0, "overhead_p50_ms": 50.0}


# --------------------------------------------------------------------------- the mailbox


def message(i: int) -> bytes:
    msg = EmailMessage()
    sender = i % SENDERS
    msg["From"] = f"Sender {sender} <sender{sender}@example.test>"
    msg["To"] = "Bench Box <box@example.test>"
    msg["Subject"] = f"mailbox api {i} — grüße"
    msg["Date"] = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(1_700_000_000 + i * 60))
    msg["Message-ID"] = f"<mbxapi.{i}.{uuid.uuid4().hex[:8]}@example.test>"
    if i % 7:
        msg["In-Reply-To"] = f"<mbxapi.{i - 1}@example.test>"
    msg.set_content(f"Hello {i}, this is message {i} of the mailbox API benchmark. " * 25)
    if i % 10 == 0:
        msg.add_attachment(
            b"%PDF-1.4 bench " * 40, maintype="application", subtype="pdf", filename=f"r{i}.pdf"
        )
    return msg.as_bytes().replace(b"\n", b"\r\n")


async def fill(dovecot: Dovecot, user: str, password: str, count: int) -> None:
    client = await dovecot.client(user, password, command_timeout=300)
    try:
        for start in range(0, count, 500):
            await client.append_many("INBOX", [message(i) for i in range(start, min(start + 500, count))])
    finally:
        await client.logout()


def lmtp_deliver(port: int, rcpt: str, raw: bytes) -> float:
    with smtplib.LMTP("127.0.0.1", port) as lmtp:
        lmtp.sendmail("bench@example.test", [rcpt], raw)
        return time.perf_counter()


def new_mail(i: int) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "late@example.test", "box@example.test", f"during the load {i}"
    msg["Message-ID"] = f"<late.{i}.{time.time_ns()}@example.test>"
    msg.set_content("x" * 2000)
    return msg.as_bytes()


# --------------------------------------------------------------------------- the server


def service_env(root: Path, port: int, admin_key: str, *, watchers: bool) -> dict[str, str]:
    return {
        **os.environ,
        "MAILPORT_HOST": "127.0.0.1",
        "MAILPORT_PORT": str(port),
        "MAILPORT_DATA_DIR": str(root / "var"),
        "MAILPORT_DATABASE_URL": f"sqlite+aiosqlite:///{root / 'mailport.db'}",
        "MAILPORT_SECRET_KEYS": generate_key(),
        "MAILPORT_ADMIN_KEY": admin_key,
        "MAILPORT_ALLOW_PRIVATE_HOSTS": "true",  # Dovecot and the webhook receiver are on 127.0.0.1
        "MAILPORT_LOG_LEVEL": "WARNING",
        "MAILPORT_WATCHERS": "true" if watchers else "false",
    }


def start_server(root: Path, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    server = subprocess.Popen([sys.executable, "-m", "mailport", "serve"], env=env, cwd=root)
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("mailport serve did not start")
        time.sleep(0.1)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def figures(ms: list[float]) -> dict[str, float]:
    return {"p50_ms": round(statistics.median(ms), 1), "p99_ms": round(pct(ms, 0.99), 1)}


def missing(answer: httpx.Response) -> bool:
    """The route is not there (yet): 404 for an unknown path, 405 for a known path's other verb."""
    return answer.status_code == 405 or (
        answer.status_code == 404 and answer.json().get("error") == "not_found"
    )


async def timed(
    client: httpx.AsyncClient, rounds: int, request: Any
) -> tuple[list[float], httpx.Response | None]:
    """``rounds`` sequential requests (after 3 unmeasured); None with the answer when the route is missing."""
    for _ in range(3):
        answer = await request(0)
        if missing(answer):
            return [], answer
        if answer.status_code != 200:
            raise SystemExit(
                f"{answer.request.method} {answer.request.url}: {answer.status_code} {answer.text}"
            )
    ms = []
    for n in range(rounds):
        started = time.perf_counter()
        answer = await request(n)
        ms.append((time.perf_counter() - started) * 1000)
        if answer.status_code != 200:
            raise SystemExit(
                f"{answer.request.method} {answer.request.url}: {answer.status_code} {answer.text}"
            )
    return ms, None


async def burst(client: httpx.AsyncClient, path: str, concurrent: int) -> tuple[dict[str, int], list[float]]:
    async def one() -> tuple[int, float]:
        started = time.perf_counter()
        answer = await client.get(path)
        ok = answer.status_code == 200 or (
            answer.status_code == 503
            and answer.json().get("error") == "mailbox_busy"
            and "retry-after" in answer.headers
        )
        if not ok:
            print(f"# a concurrent request answered {answer.status_code}: {answer.text[:200]}", flush=True)
        return (answer.status_code if ok else -answer.status_code), (time.perf_counter() - started) * 1000

    done = await asyncio.gather(*(one() for _ in range(concurrent)), return_exceptions=True)
    counts = {"200": 0, "503": 0, "other": 0}
    ms = []
    for item in done:
        if isinstance(item, BaseException):
            counts["other"] += 1
            print(f"# a concurrent request failed: {type(item).__name__}: {item}", flush=True)
            continue
        status, took = item
        ms.append(took)
        counts["200" if status == 200 else "503" if status == 503 else "other"] += 1
    return counts, ms


def scrape(text: str) -> dict[str, float]:
    """The samples of a Prometheus text page (labels kept in the name)."""
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def server_figures(before: dict[str, float], after: dict[str, float]) -> dict[str, float | None]:
    """What the serving process itself saw during the latency run: the mean time from Dovecot's
    notification to the event appended (the watcher), from the event to the webhook accepted
    (the dispatcher), the mean wait for a command connection and the mailbox_busy refusals."""

    def delta(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    def mean_ms(metric: str) -> float | None:
        count = delta(f"{metric}_count")
        return round(delta(f"{metric}_sum") / count * 1000, 1) if count else None

    return {
        "ingest_mean_ms": mean_ms("mailport_ingest_latency_seconds"),
        "delivery_mean_ms": mean_ms("mailport_delivery_latency_seconds"),
        "pool_wait_mean_ms": mean_ms("mailport_command_wait_seconds"),
        "busy_refusals": delta("mailport_command_busy_total"),
    }


# --------------------------------------------------------------------------- the load process


def run_load(url: str, key: str, path: str, concurrent: int) -> None:
    """``--load``: ``concurrent`` clients request ``path`` in a loop until stdin closes; prints
    the counts as one JSON line."""
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    counts = {"200": 0, "503": 0, "other": 0, "transport": 0}
    others: dict[str, int] = {}
    ms: list[float] = []

    async def worker(client: httpx.AsyncClient) -> None:
        while not stop.is_set():
            started = time.perf_counter()
            try:
                answer = await client.get(path)
            except httpx.TransportError as exc:  # not an answer of the server
                counts["transport"] += 1
                others[type(exc).__name__] = others.get(type(exc).__name__, 0) + 1
                continue
            ms.append((time.perf_counter() - started) * 1000)
            if answer.status_code == 200:
                counts["200"] += 1
            elif answer.status_code == 503 and answer.json().get("error") == "mailbox_busy":
                counts["503"] += 1
            else:
                counts["other"] += 1
                what = f"{answer.status_code} {answer.json().get('error')}"
                others[what] = others.get(what, 0) + 1

    async def main() -> None:
        limits = httpx.Limits(
            max_connections=concurrent, max_keepalive_connections=concurrent, keepalive_expiry=KEEPALIVE
        )
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=60) as client:
            await asyncio.gather(*(worker(client) for _ in range(concurrent)))

    asyncio.run(main())
    print(json.dumps({**counts, "others": others, **(figures(ms) if ms else {})}), flush=True)


# --------------------------------------------------------------------------- one run


async def run(dovecot: Dovecot, root: Path, args: argparse.Namespace) -> dict[str, Any]:
    user, password = dovecot.dyn_user(f"mbxapi{uuid.uuid4().hex[:6]}")
    started = time.perf_counter()
    await fill(dovecot, user, password, args.messages)
    print(
        f"# {args.messages:,} messages in INBOX (filled in {time.perf_counter() - started:.1f} s)", flush=True
    )

    port, admin_key = free_port(), "mp_admin_" + secrets.token_hex(16)
    env = service_env(root, port, admin_key, watchers=not args.worker)
    server = await asyncio.to_thread(start_server, root, port, env)
    # --worker: the watchers in a `mailport worker` process of their own (the API process serves only)
    worker = (
        subprocess.Popen([sys.executable, "-m", "mailport", "worker"], env=env, cwd=root)
        if args.worker
        else None
    )
    url = f"http://127.0.0.1:{port}"
    receiver = WebhookReceiver().start()
    result: dict[str, Any] = {
        "messages": args.messages,
        "bursts": args.bursts,
        "watchers": "worker process" if args.worker else "in serve",
    }
    try:
        async with httpx.AsyncClient(base_url=url, timeout=60) as admin:
            made = await admin.post(
                "/v1/tenants", json={"name": "bench"}, headers={"Authorization": f"Bearer {admin_key}"}
            )
            key = made.json()["api_key"]
        limits = httpx.Limits(
            max_connections=args.concurrent + 10,
            max_keepalive_connections=args.concurrent,
            keepalive_expiry=KEEPALIVE,
        )
        async with httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {key}"}, limits=limits, timeout=60
        ) as client:
            added = await client.post(
                "/v1/mailboxes",
                json={
                    "email": user,
                    "auth_method": "password",
                    "password": password,
                    "imap": {"host": "127.0.0.1", "port": dovecot.imap_port, "security": "none"},
                },
            )
            assert added.status_code == 201, added.text
            mailbox = added.json()["id"]
            hook = await client.post(
                "/v1/webhooks", json={"url": receiver.url, "events": ["message.received"]}
            )
            assert hook.status_code == 201, hook.text
            base = f"/v1/mailboxes/{mailbox}"
            result.update(await sequential(client, base, args))
            list_path = f"{base}/messages?folder=INBOX&limit=50" if result.get("list") else f"{base}/folders"
            result["concurrent_path"] = "messages" if result.get("list") else "folders"
            counts = {"200": 0, "503": 0, "other": 0}
            burst_ms: list[float] = []
            for _ in range(args.bursts):
                got, ms = await burst(client, list_path, args.concurrent)
                counts = {k: counts[k] + got[k] for k in counts}
                burst_ms += ms
            result["concurrent"] = {**counts, **figures(burst_ms)}
            while (await client.get(f"{base}/health")).json().get("watcher") != "connected":
                await asyncio.sleep(0.1)
            before = scrape((await client.get("/metrics")).text)
            result["latency"] = await latency_under_load(
                dovecot, user, password, url, key, list_path, receiver, args
            )
            result["server"] = server_figures(before, scrape((await client.get("/metrics")).text))
    finally:
        receiver.stop()
        for process in (server, worker):
            if process is None:
                continue
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
    return result


async def sequential(client: httpx.AsyncClient, base: str, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    ms, _ = await timed(client, args.rounds, lambda n: client.get(base))
    out["mailbox"] = figures(ms)  # the floor: key check, tenant check, database; no mail server
    ms, _ = await timed(client, args.rounds, lambda n: client.get(f"{base}/folders"))
    out["folders"] = figures(ms)
    ms, gone = await timed(
        client, args.rounds, lambda n: client.get(f"{base}/messages?folder=INBOX&limit=50")
    )
    out["list"] = figures(ms) if gone is None else None
    refs: list[str] = []
    if gone is None:
        page = (await client.get(f"{base}/messages?folder=INBOX&limit=50")).json()
        refs = [item["ref"] for item in page["data"]]
    ms, gone = await timed(
        client,
        args.rounds,
        lambda n: client.post(f"{base}/messages/search", json={"from": f"sender{n % SENDERS}@example.test"}),
    )
    out["search"] = figures(ms) if gone is None else None
    if refs:
        ms, gone = await timed(
            client, args.rounds, lambda n: client.get(f"{base}/messages/{refs[n % len(refs)]}")
        )
        out["get"] = figures(ms) if gone is None else None
    else:
        out["get"] = None
    return out


async def latency_under_load(
    dovecot: Dovecot,
    user: str,
    password: str,
    url: str,
    key: str,
    path: str,
    receiver: WebhookReceiver,
    args: argparse.Namespace,
) -> dict[str, Any]:
    notified: list[float] = []

    def on_event(event: ServerEvent) -> None:
        if event.kind is EventKind.EXISTS:
            notified.append(time.perf_counter())

    bare = await dovecot.client(user, password, on_event=on_event)
    await bare.select("INBOX")
    await bare.idle_start()
    load = subprocess.Popen(
        [sys.executable, __file__, "--load", url, key, path, str(args.concurrent)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    event_ms: list[float] = []
    notify_ms: list[float] = []
    try:
        await asyncio.sleep(2.0)  # the load is on
        for i in range(args.latency_messages):
            before_notes, before_hooks = len(notified), len(receiver.requests)
            delivered = await asyncio.to_thread(lmtp_deliver, dovecot.lmtp_port, user, new_mail(i))
            delivered_mono = time.monotonic() - (time.perf_counter() - delivered)
            deadline = time.perf_counter() + 30
            while len(receiver.requests) <= before_hooks and time.perf_counter() < deadline:
                await asyncio.sleep(0.002)
            if len(receiver.requests) > before_hooks:
                event_ms.append((receiver.requests[before_hooks].at - delivered_mono) * 1000)
            deadline = time.perf_counter() + 5
            while len(notified) <= before_notes and time.perf_counter() < deadline:
                await asyncio.sleep(0.005)
            if len(notified) > before_notes:
                notify_ms.append((notified[before_notes] - delivered) * 1000)
            await asyncio.sleep(args.gap)  # the watcher idles again before the next message
    finally:
        bare.close()
        out, _ = await asyncio.to_thread(load.communicate, b"", 120)
    counts = json.loads(out.decode().strip().splitlines()[-1])
    result: dict[str, Any] = {"messages": len(event_ms), "load": counts}
    if event_ms:
        result["event"] = figures(event_ms)
    if notify_ms:
        result["notify"] = figures(notify_ms)
    if event_ms and notify_ms:
        result["overhead_p50_ms"] = round(statistics.median(event_ms) - statistics.median(notify_ms), 1)
    return result


# --------------------------------------------------------------------------- report


def args_concurrent(result: dict[str, Any]) -> int:
    burst = result["concurrent"]
    return int(burst["200"] + burst["503"] + burst["other"]) // max(1, int(result.get("bursts", 1)))


def report(result: dict[str, Any]) -> None:
    def line(name: str, got: dict[str, float] | None, goal: str = "") -> None:
        if got is None:
            print(f"{name:<28} not available (the route answers 404/405 on this build)")
        else:
            print(f"{name:<28} p50 {got['p50_ms']:7.1f} ms   p99 {got['p99_ms']:7.1f} ms   {goal}")

    def verdict(value: float, goal: float) -> str:
        return "ok" if value <= goal else "MISSED"

    listed, got = result.get("list"), result.get("get")
    line("GET mailbox (no mail server)", result["mailbox"], "the API's floor")
    line("folders", result["folders"])
    line(
        "list 50 envelopes",
        listed,
        listed
        and f"goal p50 <= {GOALS['list_p50_ms']:g} ms: {verdict(listed['p50_ms'], GOALS['list_p50_ms'])}"
        or "",
    )
    line("search by sender", result.get("search"))
    line(
        "get a parsed message",
        got,
        got
        and f"goal p50 <= {GOALS['get_p50_ms']:g} ms: {verdict(got['p50_ms'], GOALS['get_p50_ms'])}"
        or "",
    )
    burst = result["concurrent"]
    only = "ok" if burst["other"] == 0 else "MISSED"
    line(
        f"{args_concurrent(result)} concurrent {result['concurrent_path']}",
        burst,
        f"200: {burst['200']}, 503: {burst['503']}, other: {burst['other']}; goal only 200/503: {only}",
    )
    latency = result["latency"]
    load = latency["load"]
    print(
        f"{'load during the latency run':<28} 200: {load['200']}, 503: {load['503']}, "
        f"other: {load['other']}, "
        f"connection errors: {load['transport']}"
        + (f" {load['others']}" if load.get("others") else "")
        + (f"   p50 {load['p50_ms']} ms, p99 {load['p99_ms']} ms" if "p50_ms" in load else "")
    )
    if "event" in latency and "notify" in latency:
        overhead = latency["overhead_p50_ms"]
        line(
            "new mail → webhook",
            latency["event"],
            f"Dovecot's notification p50 {latency['notify']['p50_ms']:.1f} ms; overhead {overhead:+.1f} ms, "
            f"goal <= {GOALS['overhead_p50_ms']:g} ms: {verdict(overhead, GOALS['overhead_p50_ms'])}",
        )
    else:
        print(f"{'new mail → webhook':<28} not measured ({latency['messages']} events received)")
    server = result.get("server", {})
    if server.get("ingest_mean_ms") is not None:
        print(
            f"{'  inside the server (means)':<28} notification → event {server['ingest_mean_ms']} ms, "
            f"event → webhook {server['delivery_mean_ms']} ms; command connection wait "
            f"{server['pool_wait_mean_ms']} ms; mailbox_busy {server['busy_refusals']:.0f}"
        )
    elif server:
        print(
            f"{'  inside the API process':<28} command connection wait {server['pool_wait_mean_ms']} ms "
            f"(mean); mailbox_busy {server['busy_refusals']:.0f} (the watcher's figures are the worker's)"
        )
    print(f"# watchers: {result['watchers']}")
    load1, load5, _ = os.getloadavg()
    print(f"# machine: {os.cpu_count()} cores, load average {load1:.1f} (1 min), {load5:.1f} (5 min)")
    result["loadavg"] = [round(load1, 2), round(load5, 2)]


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--load":
        run_load(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=200, help="sequential requests per figure")
    parser.add_argument("--concurrent", type=int, default=100)
    parser.add_argument("--bursts", type=int, default=5, help="rounds of concurrent requests")
    parser.add_argument("--latency-messages", type=int, default=20)
    parser.add_argument("--gap", type=float, default=0.6, help="seconds between new messages")
    parser.add_argument(
        "--worker", action="store_true", help="run the watchers in `mailport worker`, not inside serve"
    )
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="mailport-bench-mailbox-api-"))
    dovecot = Dovecot(root / "dovecot")
    dovecot.start()
    try:
        result = asyncio.run(run(dovecot, root, args))
    finally:
        dovecot.stop(timeout=30)
        shutil.rmtree(root, ignore_errors=True)
    report(result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
