"""Side by side: mailport's IMAP client, the stdlib ``imaplib`` and Node's imapflow (EmailEngine's
IMAP client), against the same Dovecot and the same messages, in one run (issue 21's anchor).

* **fetch** — ``UID FETCH 1:* (UID FLAGS BODY.PEEK[])`` of ``--messages`` (10,000) realistic ~5 KB
  messages over implicit TLS, timed from the command to the last message (login and SELECT not
  timed): (a) from the Dovecot this script starts and loads, (b) from ``bench/imap_fetch.py``'s
  in-memory replay server (pre-rendered responses, a separate process), where the client rather
  than Dovecot is the bottleneck. Messages per second, median of ``--repeat`` runs.
* **idle memory** — ``--connections`` (1,000) TLS connections logged in, INBOX selected, IDLE;
  KiB of RSS per connection (after all minus after one warm-up connection), each client in a
  process of its own so the RSS is its own; median of ``--idle-repeat`` runs. mailport's side is
  ``bench/imap_idle_memory.py``'s measurement; imaplib has no IDLE before Python 3.14, so the
  command is written on its socket; imapflow runs with ``disableAutoIdle`` and ``idle()``.

The order of the clients rotates between repetitions (no client always runs first, or right
after the Dovecot load). imapflow is installed by this script from ``bench/node/package-lock.json``
(``npm ci``) when ``bench/node/node_modules`` is missing; ``bench/node/imapflow.mjs`` runs one
measurement per Node process. The messages, the loader, the replay server, mailport's and
imaplib's fetch and the rotation are ``bench/imap_fetch.py``'s; the Dovecot (with the limits for
1,000+ connections, for both parts) is ``bench/_dovecot.py``'s.

Progress on stderr; one JSON line on stdout::

    {"messages", "connections", "fetch_dovecot": {client: msg/s}, "fetch_replay": {…},
     "idle_kib": {client: KiB}, "ratios": {"fetch_dovecot_vs_imapflow", …,
     "idle_kib_vs_imapflow", "idle_kib_vs_imaplib"}, "loadavg_start", "loadavg_end", …}

Ratios are mailport / other: above 1 is better for fetch, below 1 is better for memory.

    .venv/bin/python bench/compare.py [--messages 10000] [--repeat 3] [--connections 1000]
                                      [--parts fetch,idle]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import imaplib
import json
import multiprocessing
import os
import ssl
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import imap_fetch, imap_idle_memory
from bench._dovecot import many_connections_dovecot
from bench._process import raise_open_files, rss_kib
from tests.mailstack.dovecot import Dovecot

NODE_DIR = Path(__file__).resolve().parent / "node"
NODE_SCRIPT = NODE_DIR / "imapflow.mjs"
CLIENTS = ("mailport", "imaplib", "imapflow")


def log(message: str) -> None:
    print(f"# {message} (load {loadavg()})", file=sys.stderr, flush=True)


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# --------------------------------------------------------------------------- imapflow (Node)


def ensure_imapflow() -> str:
    """Install the locked imapflow into bench/node/node_modules if it is not there; its version."""
    package = NODE_DIR / "node_modules" / "imapflow" / "package.json"
    if not package.exists():
        log("installing imapflow: npm ci --prefix bench/node")
        subprocess.run(
            ["npm", "ci", "--prefix", str(NODE_DIR), "--no-audit", "--no-fund"],
            check=True,
            stdout=sys.stderr,
        )
    return str(json.loads(package.read_text())["version"])


def node(mode: str, options: dict[str, object], *flags: str) -> dict[str, float]:
    done = subprocess.run(
        ["node", *flags, str(NODE_SCRIPT), mode, json.dumps(options)],
        check=True,
        capture_output=True,
        text=True,
        timeout=900,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def fetch_imapflow(port: int, ca_file: str, user: str, password: str, expect: int) -> tuple[float, float]:
    """Seconds of the fetch and the Node process's CPU seconds during it."""
    options = {"port": port, "ca": ca_file, "user": user, "password": password, "expect": expect}
    result = node("fetch", options)
    return float(result["elapsed"]), float(result["cpu_s"])


# --------------------------------------------------------------------------- idle memory, a process each


@dataclass(frozen=True)
class DovecotAt:
    """What ``imap_idle_memory.run`` reads of its Dovecot, for a child process that did not start it."""

    imaps_port: int
    ca_file: str
    dyn_user = staticmethod(Dovecot.dyn_user)


def idle_mailport(port: int, ca_file: str, count: int, parallel: int) -> dict[str, float]:
    result = asyncio.run(imap_idle_memory.run(DovecotAt(port, ca_file), count, parallel))  # type: ignore[arg-type]
    return {k: float(v) for k, v in result.items()}


def idle_imaplib(port: int, ca_file: str, count: int, parallel: int) -> dict[str, float]:
    """imaplib connections idling: one shared SSL context (as mailport's), IDLE written by hand."""
    user, password = Dovecot.dyn_user("idle")
    context = ssl.create_default_context(cafile=ca_file)

    def open_idle() -> imaplib.IMAP4_SSL:
        client = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=context, timeout=60)
        client.login(user, password)
        client.select("INBOX")
        tag = client._new_tag()  # private, but imaplib has no IDLE before 3.14
        client.send(tag + b" IDLE\r\n")
        continuation = client.readline()
        assert continuation.startswith(b"+"), continuation
        client.sock.settimeout(None)
        return client

    warm = open_idle()
    warm.shutdown()
    gc.collect()
    time.sleep(0.2)
    before = rss_kib()
    started = time.perf_counter()
    # Few threads: each leaves a cached stack and a malloc arena behind, which are not the connection's.
    with ThreadPoolExecutor(max_workers=min(parallel, 8)) as pool:
        clients = list(pool.map(lambda _: open_idle(), range(count)))
    opened = time.perf_counter() - started
    time.sleep(1.0)
    gc.collect()
    after = rss_kib()
    alive = sum(1 for c in clients if c.sock.fileno() != -1)
    for client in clients:
        client.shutdown()
    return {"before": before, "after": after, "opened_s": opened, "alive": alive}


def idle_child(client: str, options: dict[str, int | str]) -> None:
    """Entry point of a child process (``--idle-child``): one client's idle run, one JSON line."""
    raise_open_files(20_000)
    port, ca_file = int(options["port"]), str(options["ca"])
    count, parallel = int(options["connections"]), int(options["parallel"])
    measure = idle_mailport if client == "mailport" else idle_imaplib
    print(json.dumps(measure(port, ca_file, count, parallel)), flush=True)


def idle_run(client: str, dovecot: Dovecot, count: int, parallel: int) -> dict[str, float]:
    options: dict[str, object] = {
        "port": dovecot.imaps_port,
        "ca": dovecot.ca_file,
        "connections": count,
        "parallel": parallel,
    }
    if client == "imapflow":
        user, password = Dovecot.dyn_user("idle")
        result = node("idle", {**options, "user": user, "password": password}, "--expose-gc")
    else:
        done = subprocess.run(
            [sys.executable, __file__, "--idle-child", client, json.dumps(options)],
            check=True,
            capture_output=True,
            text=True,
            timeout=900,
        )
        result = json.loads(done.stdout.strip().splitlines()[-1])
    per = (result["after"] - result["before"]) / count
    log(
        f"idle {client}: {per:.1f} KiB/connection ({int(result['alive'])}/{count} alive, "
        f"opened in {result['opened_s']:.1f} s, RSS {result['before']} -> {result['after']} KiB)"
    )
    if result["alive"] < count:
        raise RuntimeError(f"{client}: only {result['alive']} of {count} connections idling")
    return {**result, "kib_per_connection": per}


def measure_idle(dovecot: Dovecot, count: int, parallel: int, repeat: int) -> dict[str, float]:
    per: dict[str, list[float]] = {name: [] for name in CLIENTS}
    for i in range(repeat):
        for name in CLIENTS[i % len(CLIENTS) :] + CLIENTS[: i % len(CLIENTS)]:  # rotate
            per[name].append(idle_run(name, dovecot, count, parallel)["kib_per_connection"])
            time.sleep(2.0)  # let Dovecot's imap processes of the last run exit
    return {name: round(statistics.median(values), 1) for name, values in per.items()}


# --------------------------------------------------------------------------- fetch


def measure_fetch(
    dovecot: Dovecot, count: int, repeat: int
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """Messages/s per client from Dovecot and from the replay server; and the client CPU seconds."""
    user, password = Dovecot.dyn_user("compare")
    messages = imap_fetch.make_messages(count)
    load_s = asyncio.run(imap_fetch.load(dovecot.imaps_port, dovecot.ca_file, user, password, messages))
    log(f"loaded {count} messages (avg {sum(map(len, messages)) // count} bytes) in {load_s:.1f} s")
    ctx = multiprocessing.get_context("spawn")
    ports: multiprocessing.Queue = ctx.Queue()  # type: ignore[type-arg]
    cert, key = str(dovecot.root / "ssl/cert.pem"), str(dovecot.root / "ssl/key.pem")
    replay = ctx.Process(target=imap_fetch.replay_server, args=(ports, cert, key, count), daemon=True)
    replay.start()
    try:
        replay_port = ports.get(timeout=120)
        ca = dovecot.ca_file

        def runs(port: int, cpu: dict[str, list[float]]) -> dict[str, Callable[[], float]]:
            def python(name: str, fetch: Callable[[], float]) -> Callable[[], float]:
                def run() -> float:
                    used = time.process_time()
                    elapsed = fetch()
                    return note(name, elapsed, time.process_time() - used)

                return run

            def imapflow() -> float:
                return note("imapflow", *fetch_imapflow(port, ca, user, password, count))

            def note(name: str, elapsed: float, cpu_s: float) -> float:
                cpu.setdefault(name, []).append(cpu_s)
                log(f"fetch {name} port {port}: {count / elapsed:,.0f} msg/s, client CPU {cpu_s:.2f} s")
                return elapsed

            return {
                "mailport": python(
                    "mailport",
                    lambda: asyncio.run(imap_fetch.fetch_mailport(port, ca, user, password, count)),
                ),
                "imaplib": python(
                    "imaplib", lambda: imap_fetch.fetch_imaplib(port, ca, user, password, count)
                ),
                "imapflow": imapflow,
            }

        cpu_dovecot: dict[str, list[float]] = {}
        cpu_replay: dict[str, list[float]] = {}
        rates = {
            "fetch_dovecot": imap_fetch.measure(runs(dovecot.imaps_port, cpu_dovecot), repeat, count),
            "fetch_replay": imap_fetch.measure(runs(replay_port, cpu_replay), repeat, count),
        }
    finally:
        replay.kill()
    cpu = {"dovecot": cpu_dovecot, "replay": cpu_replay}
    return rates, {
        f"fetch_{server}_cpu_s": {name: round(statistics.median(v), 3) for name, v in per.items()}
        for server, per in cpu.items()
    }


# --------------------------------------------------------------------------- main


def ratios(prefix: str, figures: dict[str, float]) -> dict[str, float]:
    return {
        f"{prefix}_vs_{other}": round(figures["mailport"] / figures[other], 2)
        for other in ("imapflow", "imaplib")
        if figures.get(other)
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3, help="fetch runs per client and server")
    parser.add_argument("--connections", type=int, default=1000, help="idle connections per client")
    parser.add_argument("--idle-repeat", type=int, default=None, help="idle runs per client (--repeat)")
    parser.add_argument("--parallel", type=int, default=50, help="logins in flight at once")
    parser.add_argument("--parts", default="fetch,idle", help="fetch, idle or both")
    parser.add_argument("--idle-child", nargs=2, metavar=("CLIENT", "JSON"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.idle_child:
        idle_child(args.idle_child[0], json.loads(args.idle_child[1]))
        return
    parts = {p.strip() for p in args.parts.split(",")}
    result: dict[str, object] = {
        "messages": args.messages,
        "connections": args.connections,
        "repeat": args.repeat,
        "loadavg_start": loadavg(),
    }
    version = ensure_imapflow()
    node_version = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    result.update(
        {"imapflow_version": version, "node_version": node_version, "python": sys.version.split()[0]}
    )
    limit = raise_open_files(20_000)
    log(f"imapflow {version} on Node {node_version}; open-files limit {limit}")
    all_ratios: dict[str, float] = {}
    with many_connections_dovecot("mailport-bench-compare-", idle_check_interval="30 s") as (dovecot, _):
        if "fetch" in parts:
            rates, cpu = measure_fetch(dovecot, args.messages, args.repeat)
            result |= rates | cpu
            for key, figures in (rates | cpu).items():
                all_ratios |= ratios(key, figures)
            log(f"fetch medians: {rates}; client CPU seconds: {cpu}")
        if "idle" in parts:
            idle = measure_idle(dovecot, args.connections, args.parallel, args.idle_repeat or args.repeat)
            result["idle_kib"] = idle
            all_ratios |= ratios("idle_kib", idle)
            log(f"idle medians (KiB per connection): {idle}")
    result["ratios"] = all_ratios
    result["loadavg_end"] = loadavg()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
