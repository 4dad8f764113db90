"""Fetch throughput: mailport's IMAP client vs imaplib vs a raw socket reader (issue 3).

10,000 realistic ~5 KB messages are fetched with ``UID FETCH 1:* (UID FLAGS BODY.PEEK[])``
over implicit TLS

(a) from a Dovecot this script starts and loads itself (APPEND with MULTIAPPEND/LITERAL+);
(b) from a small replay server (a separate process) that answers with pre-rendered FETCH
    responses, so that the client rather than the server is the bottleneck;

each by mailport's client (parsed into per-message objects with UID, flags and raw bytes),
by the stdlib's ``imaplib`` (raw tuples, no parsing) and by a raw blocking TLS socket that
only looks for the tagged completion (the transport limit).

One timed run is ``--fetches`` back-to-back fetches of all the messages on one logged-in
connection (login and SELECT not timed): a single fetch from the replay server lasts only
50-80 ms, so one scheduler hiccup on the shared machine moved a ratio by ±25 %; 20 fetches
make every timed run last >= 1 s. Runs of the clients are interleaved (rotated, no position
bias), ``--repeat`` times; the median is reported, and the spread (min and max) beside it.
Around the timed fetches the client process's CPU time (``time.process_time``; the servers
are other processes) is taken as well, so every client's cost is also reported as CPU
microseconds per message, which the machine's load moves far less than msg/s. Prints one
JSON line::

    {"messages": N, "fetches": F, "dovecot": {"mailport", "imaplib", "raw"},
     "replay": {"mailport", "imaplib", "raw"}, "replay_ratio_vs_imaplib": ...,
     "dovecot_ratio_vs_raw": ..., "replay_ratio_vs_raw": ...,
     "replay_ratio_vs_raw_cpu": ..., "replay_ratio_vs_raw_runs": [...],
     "detail": {"replay": {client: {"msg_s": {median, min, max},
                                    "cpu_us_per_message": {median, min, max}}}, ...},
     "loadavg_start": [...], "loadavg_end": [...]}

``replay_ratio_vs_raw`` is issue 21's figure: mailport's rate over the raw blocking reader's on
the replay server (the goal is >= 0.85); ``replay_ratio_vs_raw_runs`` is that ratio for each
repeat (mailport's run over the raw run of the same repeat), ``replay_ratio_vs_raw_cpu`` the same
comparison in CPU terms (raw's median CPU per message over mailport's). ``--replay-only`` skips
the Dovecot runs (the replay server uses Dovecot's certificate, so Dovecot is started, but not
loaded).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import imaplib
import json
import multiprocessing
import os
import quopri
import random
import shutil
import socket
import ssl
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.mailstack.dovecot import Dovecot

from mailport.crypto import Secret
from mailport.imap import ImapClient, PasswordAuth

ITEMS = ("UID", "FLAGS", "BODY.PEEK[]")
FETCH_COMMAND = b"UID FETCH 1:* (UID FLAGS BODY.PEEK[])"
WORDS = (
    "invoice meeting project update quarterly report schedule review budget shipment order account "
    "customer support ticket release roadmap feedback welcome newsletter reminder contract"
).split()


# --------------------------------------------------------------------------- messages


def make_messages(count: int, seed: int = 3) -> list[bytes]:
    """Single-part text messages of ~5 KB with realistic headers (DKIM, Received x3, RFC 2047, QP)."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        sender = f"{rng.choice(WORDS)}.{rng.choice(WORDS)}@sender{rng.randint(1, 50)}.example"
        subject_text = f"Re: {rng.choice(WORDS)} {rng.choice(WORDS)} für Ärger #{i}"
        subject = "=?utf-8?b?" + base64.b64encode(subject_text.encode()).decode() + "?="
        body_lines = []
        while sum(len(x) for x in body_lines) < 2700:
            body_lines.append(" ".join(rng.choice(WORDS) for _ in range(12)) + " – grüße €")
        body = quopri.encodestring("\n".join(body_lines).encode()).replace(b"\n", b"\r\n")
        bh = base64.b64encode(hashlib.sha256(body).digest()).decode()
        sig = base64.b64encode(rng.randbytes(256)).decode()
        received = "".join(
            f"Received: from mx{h}.sender.example (mx{h}.sender.example [192.0.2.{h}])\r\n"
            f"\tby mx.example.test (Postfix) with ESMTPS id {rng.getrandbits(40):X}\r\n"
            f"\tfor <rcpt@example.test>; Mon, 4 Mar 2024 10:{h:02d}:00 +0000 (UTC)\r\n"
            for h in (1, 2, 3)
        )
        headers = (
            f"Return-Path: <{sender}>\r\n{received}"
            f"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=sender.example; s=sel1;\r\n"
            f"\th=from:to:subject:date:message-id; bh={bh};\r\n\tb={sig}\r\n"
            f"From: =?utf-8?q?J=C3=BCrgen_M=C3=BCller?= <{sender}>\r\nTo: rcpt@example.test\r\n"
            f"Subject: {subject}\r\nDate: Mon, 4 Mar 2024 10:04:{i % 60:02d} +0000\r\n"
            f"Message-ID: <{i}.{rng.getrandbits(48):x}@sender.example>\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        )
        out.append(headers.encode() + body)
    return out


# --------------------------------------------------------------------------- replay server


def render_fetch(messages: list[bytes]) -> bytes:
    parts = []
    for i, raw in enumerate(messages, 1):
        parts.append(b"* %d FETCH (UID %d FLAGS (\\Seen) BODY[] {%d}\r\n%s)\r\n" % (i, i, len(raw), raw))
    return b"".join(parts)


def replay_server(port_out: multiprocessing.Queue, cert: str, key: str, count: int) -> None:  # type: ignore[type-arg]
    """A threaded TLS server that answers every UID FETCH with the same pre-rendered bytes."""
    rendered = render_fetch(make_messages(count))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    caps = b"IMAP4rev1 LITERAL+ SASL-IR IDLE UIDPLUS AUTH=PLAIN"
    listener = socket.create_server(("127.0.0.1", 0))
    port_out.put(listener.getsockname()[1])

    def serve(raw_sock: socket.socket) -> None:
        try:
            with context.wrap_socket(raw_sock, server_side=True) as sock:
                sock.sendall(b"* OK [CAPABILITY " + caps + b"] replay ready\r\n")
                stream = sock.makefile("rb")
                while line := stream.readline():
                    tag, _, rest = line.rstrip(b"\r\n").partition(b" ")
                    verb = rest.split(b" ", 1)[0].upper()
                    if verb == b"CAPABILITY":
                        sock.sendall(b"* CAPABILITY " + caps + b"\r\n" + tag + b" OK done\r\n")
                    elif verb in (b"SELECT", b"EXAMINE"):
                        sock.sendall(
                            b"* %d EXISTS\r\n* OK [UIDVALIDITY 1] ok\r\n* OK [UIDNEXT %d] ok\r\n"
                            % (count, count + 1)
                            + tag
                            + b" OK [READ-WRITE] done\r\n"
                        )
                    elif verb == b"UID":
                        # two sends: joining the tag onto ~50 MB copied them first, 60-80 ms inside
                        # every client's timed window that were the server's, not the client's
                        sock.sendall(rendered)
                        sock.sendall(tag + b" OK fetch done\r\n")
                    elif verb == b"LOGOUT":
                        sock.sendall(b"* BYE bye\r\n" + tag + b" OK done\r\n")
                        return
                    else:
                        sock.sendall(tag + b" OK done\r\n")
        except (OSError, ssl.SSLError):
            pass

    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


# --------------------------------------------------------------------------- clients


@dataclass
class Window:
    """The timed part of a run: ``fetches`` back-to-back fetches of all the messages on one
    logged-in connection (login, SELECT and LOGOUT outside). Keeps the wall-clock and the client
    process's CPU seconds (the servers are other processes) of every window it timed."""

    fetches: int = 1
    seconds: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def __enter__(self) -> Window:
        self._used = time.process_time()
        self._started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds.append(time.perf_counter() - self._started)
        self.cpu.append(time.process_time() - self._used)


async def fetch_mailport(
    port: int, ca_file: str, user: str, password: str, expect: int, window: Window | None = None
) -> float:
    """mailport's client: messages parsed into objects with UID, flags and raw bytes."""
    window = window or Window()
    client = await ImapClient.open(
        "127.0.0.1", port, ca_file=ca_file, command_timeout=300, auth=PasswordAuth(user, Secret(password))
    )
    await client.select("INBOX")
    with window:
        for _ in range(window.fetches):
            messages = await client.fetch("1:*", ITEMS)
            last = messages[-1]
            assert len(messages) == expect and last.raw and last.uid and last.flags is not None
            del messages, last  # as the other clients: one fetch's data alive at a time
    await client.logout()
    return window.seconds[-1]


def fetch_imaplib(
    port: int, ca_file: str, user: str, password: str, expect: int, window: Window | None = None
) -> float:
    """The stdlib's imaplib: raw tuples, no parsing."""
    window = window or Window()
    client = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=ssl.create_default_context(cafile=ca_file))
    client.login(user, password)
    client.select("INBOX")
    with window:
        for _ in range(window.fetches):
            status, data = client.uid("FETCH", "1:*", "(UID FLAGS BODY.PEEK[])")
            assert status == "OK" and sum(1 for d in data if isinstance(d, tuple)) == expect
            del data
    client.logout()
    return window.seconds[-1]


def fetch_raw(
    port: int, ca_file: str, user: str, password: str, expect: int, window: Window | None = None
) -> float:
    """A raw blocking TLS socket that only looks for the tagged completion (the floor)."""
    window = window or Window()
    context = ssl.create_default_context(cafile=ca_file)
    sock = context.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="127.0.0.1")

    def until(tag: bytes) -> int:
        marker = b"\r\n" + tag + b" "
        tail = b"\r\n"
        total = 0
        while True:
            chunk = sock.recv(262144)
            if not chunk:
                raise ConnectionError("closed")
            total += len(chunk)
            seen = tail + chunk
            if marker in seen[-4096:] or seen.startswith(marker[2:]):
                return total
            tail = seen[-64:]

    sock.recv(4096)
    sock.sendall(b"a LOGIN " + user.encode() + b" " + password.encode() + b"\r\n")
    until(b"a")
    sock.sendall(b"b SELECT INBOX\r\n")
    until(b"b")
    with window:
        for i in range(window.fetches):
            tag = b"c%d" % i
            sock.sendall(tag + b" " + FETCH_COMMAND + b"\r\n")
            assert until(tag) > expect * 4000
    sock.sendall(b"d LOGOUT\r\n")
    sock.close()
    return window.seconds[-1]


@dataclass
class Runs:
    """Per client: the wall-clock seconds and client CPU seconds of every timed run, in order."""

    seconds: dict[str, list[float]] = field(default_factory=dict)
    cpu: dict[str, list[float]] = field(default_factory=dict)

    def rates(self, messages: int) -> dict[str, float]:
        """Median messages per second per client (``messages`` fetched per timed run)."""
        return {name: round(messages / statistics.median(v)) for name, v in self.seconds.items()}

    def detail(self, messages: int) -> dict[str, dict[str, dict[str, float]]]:
        """Median and spread of the rate and of the CPU per message, per client."""
        out: dict[str, dict[str, dict[str, float]]] = {}
        for name, seconds in self.seconds.items():
            rates = [messages / s for s in seconds]
            entry = {"msg_s": _spread(rates, 0)}
            if self.cpu.get(name):
                entry["cpu_us_per_message"] = _spread([c / messages * 1e6 for c in self.cpu[name]], 2)
            out[name] = entry
        return out

    def paired_ratios(self, a: str, b: str) -> list[float]:
        """``a``'s rate over ``b``'s, repeat by repeat."""
        return [round(tb / ta, 2) for ta, tb in zip(self.seconds[a], self.seconds[b], strict=True)]

    def cpu_ratio(self, a: str, b: str) -> float | None:
        """``b``'s median CPU per message over ``a``'s: ``a``'s efficiency against ``b``'s."""
        if not self.cpu.get(a) or not self.cpu.get(b):
            return None
        return round(statistics.median(self.cpu[b]) / statistics.median(self.cpu[a]), 2)


def _spread(values: list[float], digits: int) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
    }


def run_all(runs: dict[str, Callable[[], float]], repeat: int) -> dict[str, list[float]]:
    """Every client ``repeat`` times, rotating the order each repeat (no position bias)."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    for i in range(repeat):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            times[name].append(runs[name]())
    return times


def measure(runs: dict[str, Callable[[], float]], repeat: int, count: int) -> dict[str, float]:
    """Median messages per second per client (``count`` messages per timed run)."""
    return Runs(run_all(runs, repeat)).rates(count)


# --------------------------------------------------------------------------- main


async def load(port: int, ca_file: str, user: str, password: str, messages: list[bytes]) -> float:
    client = await ImapClient.open(
        "127.0.0.1",
        port,
        ca_file=ca_file,
        command_timeout=600,
        auth=PasswordAuth(user, Secret(password)),
    )
    started = time.perf_counter()
    for i in range(0, len(messages), 1000):
        await client.append_many("INBOX", messages[i : i + 1000], flags=["\\Seen"])
    elapsed = time.perf_counter() - started
    assert (await client.status("INBOX"))["MESSAGES"] == len(messages)
    await client.logout()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--fetches",
        type=int,
        default=20,
        help="fetches of all the messages per timed run (>= 1 s)",
    )
    parser.add_argument("--replay-only", action="store_true", help="skip the Dovecot measurements")
    args = parser.parse_args()
    count = args.messages
    per_run = count * args.fetches
    loadavg_start = [round(x, 2) for x in os.getloadavg()]

    root = Path(tempfile.mkdtemp(prefix="mailport-bench-fetch-"))
    dovecot = Dovecot(root / "dovecot")
    dovecot.start()
    ctx = multiprocessing.get_context("spawn")
    ports: multiprocessing.Queue = ctx.Queue()  # type: ignore[type-arg]
    replay = ctx.Process(
        target=replay_server,
        args=(
            ports,
            str(dovecot.root / "ssl/cert.pem"),
            str(dovecot.root / "ssl/key.pem"),
            count,
        ),
        daemon=True,
    )
    replay.start()
    try:
        user, password = dovecot.dyn_user("bench")
        messages = make_messages(count)
        load_seconds = (
            0.0
            if args.replay_only
            else asyncio.run(load(dovecot.imaps_port, dovecot.ca_file, user, password, messages))
        )
        replay_port = ports.get(timeout=120)
        ca = dovecot.ca_file

        def measured(port: int) -> Runs:
            windows = {name: Window(args.fetches) for name in ("mailport", "imaplib", "raw")}
            runs: dict[str, Callable[[], float]] = {
                "mailport": lambda: asyncio.run(
                    fetch_mailport(port, ca, user, password, count, windows["mailport"])
                ),
                "imaplib": lambda: fetch_imaplib(port, ca, user, password, count, windows["imaplib"]),
                "raw": lambda: fetch_raw(port, ca, user, password, count, windows["raw"]),
            }
            return Runs(run_all(runs, args.repeat), {name: w.cpu for name, w in windows.items()})

        on_dovecot = None if args.replay_only else measured(dovecot.imaps_port)
        on_replay = measured(replay_port)
    finally:
        replay.kill()
        dovecot.stop()
        shutil.rmtree(root, ignore_errors=True)
    print(
        f"# loaded {count} messages (avg {sum(map(len, messages)) // count} bytes) in {load_seconds:.1f} s "
        f"({count / max(load_seconds, 1e-9):.0f} msg/s); medians of {args.repeat} runs of "
        f"{args.fetches} fetches",
        file=sys.stderr,
    )
    dovecot_rates = on_dovecot.rates(per_run) if on_dovecot else {}
    replay_rates = on_replay.rates(per_run)
    print(
        json.dumps(
            {
                "messages": count,
                "fetches": args.fetches,
                "dovecot": dovecot_rates,
                "replay": replay_rates,
                "replay_ratio_vs_imaplib": round(replay_rates["mailport"] / replay_rates["imaplib"], 2),
                "dovecot_ratio_vs_raw": (
                    round(dovecot_rates["mailport"] / dovecot_rates["raw"], 2) if dovecot_rates else None
                ),
                "replay_ratio_vs_raw": round(replay_rates["mailport"] / replay_rates["raw"], 2),
                "replay_ratio_vs_raw_cpu": on_replay.cpu_ratio("mailport", "raw"),
                "replay_ratio_vs_raw_runs": on_replay.paired_ratios("mailport", "raw"),
                "detail": {
                    "replay": on_replay.detail(per_run),
                    **({"dovecot": on_dovecot.detail(per_run)} if on_dovecot else {}),
                },
                "loadavg_start": loadavg_start,
                "loadavg_end": [round(x, 2) for x in os.getloadavg()],
            }
        )
    )


if __name__ == "__main__":
    main()
