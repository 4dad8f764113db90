"""Contact harvest rate (issue 18): messages/s over a 50,000-message mailbox, headers only.

Generates realistic header blocks (~1.8 KB: bench/parse.py's trace fields; RFC 2047 names, an
IDNA domain, Gmail dot/plus variants) for a mailbox ``me@example.com``: 70 % personal mail
received, 12 % sent, and list, bulk, auto-reply, no-reply and bounce mail for the rest. It then
times, on one core:

- ``harvest``: :func:`mailport.contacts.harvest` alone (the goal: ≥ 5,000 messages/s);
- ``harvest_aggregate``: harvest + :meth:`Contacts.add_message`, then :meth:`Contacts.ranked`
  (the time to the first usable contact list, from headers already fetched);
- ``fields_only``: splitting out the fields the harvest reads (:func:`harvest.fields_of`), against
  ``stdlib_fields_only``: the stdlib's compat32 ``BytesHeaderParser`` reading the same fields,
  which shows why the harvest does not build an ``email.message``.

    .venv/bin/python bench/contacts.py [--messages 50000] [--repeat 3] [--dovecot [--no-postgres]]

``--dovecot`` adds the same messages as a real mailbox on a Dovecot the script starts, fetched
through the IMAP connector's ``header_blocks``, harvested and recorded into fresh SQLite and
PostgreSQL databases (``bench/_harvest_imap.py`` says what each figure is).

Prints one JSON line, with the machine's load (``os.getloadavg``) before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email import policy
from email.parser import BytesHeaderParser
from email.utils import format_datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.parse import _ew
from bench.parse import _headers as trace_headers

from mailport.contacts import Contacts, Direction, Identity, harvest
from mailport.contacts.harvest import fields_of
from mailport.contacts.rules import FIELDS

FIRST = ["Anna", "Jörg", "François", "Zoë", "José", "Ingrid", "Łukasz", "Søren", "Paul", "Mia", "Omar", "Li"]
LAST = ["Müller", "Dupont", "García", "Novák", "Smith", "Øster", "Kowalski", "Chen", "Okafor", "Brown"]
DOMAINS = ["example.com", "example.org", "mail.example.net", "exämple.de", "corp.example", "gmail.com"]
ME = Identity.of(["me@example.com"], aliases=["me@alias.example"])
NOW = datetime(2026, 12, 1, tzinfo=UTC)
_OWN_FIELDS = (
    "From:",
    "To:",
    "Cc:",
    "Subject:",
    "Date:",
    "Message-ID:",
    "List-Unsubscribe:",
    "MIME-Version:",
)


def _people(rng: random.Random, n: int) -> list[tuple[str, str]]:
    out = []
    for i in range(n):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        local = f"{first}.{last}{i}".encode("ascii", "ignore").decode().lower()
        out.append((f"{first} {last}", f"{local}@{rng.choice(DOMAINS)}"))
    return out


def _person(rng: random.Random, people: list[tuple[str, str]]) -> str:
    name, address = people[min(int(rng.paretovariate(0.5)) - 1, len(people) - 1)]  # a few matter most
    roll = rng.random()
    if roll < 0.1:
        address = address.upper()
    elif roll < 0.15 and address.endswith("@gmail.com"):
        address = address.replace("@", "+news@")
    return f"{_ew(name, rng)} <{address}>" if rng.random() < 0.85 else address


def _block(rng: random.Random, i: int, people: list[tuple[str, str]]) -> tuple[bytes, Direction]:
    when = NOW - timedelta(minutes=i * 7)
    # bench/parse.py's trace fields (Return-Path, Received ×3, DKIM, …); their own address fields
    # are left out: this mailbox's are made below
    lines = [line for line in trace_headers(rng, i, when) if not line.startswith(_OWN_FIELDS)]
    lines += [
        f"X-Spam-Status: No, score=-{rng.randrange(10)}.{rng.randrange(10)} required=5.0",
        "X-Priority: 3",
    ]
    kind = rng.random()
    direction: Direction = "received"
    sender = _person(rng, people)
    to = ["Me <me@example.com>"] + [_person(rng, people) for _ in range(rng.randrange(0, 3))]
    cc = [_person(rng, people) for _ in range(rng.choice((0, 0, 0, 1, 2)))]
    if kind < 0.12:
        direction = "sent"
        sender, to = "Me <me@example.com>", [_person(rng, people) for _ in range(rng.randrange(1, 4))]
    elif kind < 0.20:
        lines += ["List-Id: Team <team.lists.example>", "List-Unsubscribe: <mailto:leave@lists.example>"]
        to = ["team@lists.example"]
    elif kind < 0.25:
        lines.append("Precedence: bulk")
        sender = f"News {i % 50} <news{i % 50}@letters.example>"
    elif kind < 0.28:
        lines.append("Auto-Submitted: auto-replied")
    elif kind < 0.30:
        lines += ["Return-Path: <>", "Content-Type: multipart/report; report-type=delivery-status; b=x"]
        sender = "Mail Delivery System <MAILER-DAEMON@mx.example.net>"
    elif kind < 0.33:
        sender = f"Service <no-reply@service{i % 20}.example>"
    lines += [
        f"From: {sender}",
        "To: " + ",\r\n\t".join(to),
        *(["Cc: " + ", ".join(cc)] if cc else []),
        f"Subject: {_ew('Grüße zum Projekt', rng)} #{i}",
        f"Date: {format_datetime(when)}",
        f"Message-ID: <{rng.randrange(16**16):016x}@example.org>",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8" if kind >= 0.30 or kind < 0.28 else "X-Mailer: bench",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8"), direction


def _best(repeat: int, run: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def _sqlite(root: Path) -> Callable[[], tuple[str, Callable[[], None]]]:
    def make() -> tuple[str, Callable[[], None]]:
        path = root / f"contacts-{time.monotonic_ns()}.db"
        return f"sqlite+aiosqlite:///{path}", lambda: path.unlink(missing_ok=True)

    return make


def _postgres() -> tuple[str, Callable[[], None]]:
    from bench.ingest_backlog import create_pg, drop_pg

    name, url = asyncio.run(create_pg())
    return url, lambda: asyncio.run(drop_pg(name))


def _dovecot_run(corpus: list[tuple[bytes, Direction]], args: argparse.Namespace) -> dict[str, object]:
    from bench._harvest_imap import run

    root = Path(tempfile.mkdtemp(prefix="mailport-bench-contacts-db-"))
    databases: list[tuple[str, Callable[[], tuple[str, Callable[[], None]]]]] = [("sqlite", _sqlite(root))]
    if not args.no_postgres:
        databases.append(("postgres", _postgres))
    try:
        return run([block for block, _ in corpus], ME, repeat=args.repeat, databases=databases)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dovecot", action="store_true", help="also the Dovecot run (fetch, record)")
    parser.add_argument("--no-postgres", action="store_true", help="the Dovecot run on SQLite only")
    args = parser.parse_args()
    rng = random.Random(18)
    people = _people(rng, 2_000)
    corpus = [_block(rng, i, people) for i in range(args.messages)]
    dates = [NOW - timedelta(minutes=i * 7) for i in range(args.messages)]
    load_before = os.getloadavg()

    def harvest_only() -> None:
        for (block, direction), at in zip(corpus, dates, strict=True):
            harvest(block, direction, at, identity=ME, fold=True)

    result: dict[str, Contacts] = {}

    def harvest_aggregate() -> None:
        contacts = Contacts()
        for (block, direction), at in zip(corpus, dates, strict=True):
            contacts.add_message(harvest(block, direction, at, identity=ME, fold=True))
        contacts.ranked(NOW)
        result["contacts"] = contacts

    header_parser = BytesHeaderParser(policy=policy.compat32)

    def stdlib_header_parse() -> None:
        for block, _direction in corpus:
            message = header_parser.parsebytes(block)
            {name: message[name] for name in FIELDS if name in message}

    def mailport_fields() -> None:
        for block, _direction in corpus:
            fields_of(block)

    t_harvest = _best(args.repeat, harvest_only)
    t_total = _best(args.repeat, harvest_aggregate)
    t_stdlib = _best(args.repeat, stdlib_header_parse)
    t_fields = _best(args.repeat, mailport_fields)
    contacts = result["contacts"]
    n = args.messages
    dovecot = _dovecot_run(corpus, args) if args.dovecot else None
    print(
        json.dumps(
            {
                "messages": n,
                "mean_block_bytes": round(sum(len(b) for b, _ in corpus) / n),
                "harvest_msgs_per_s": round(n / t_harvest),
                "harvest_aggregate_msgs_per_s": round(n / t_total),
                "first_contact_list_s": round(t_total, 3),
                "fields_only_msgs_per_s": round(n / t_fields),
                "stdlib_fields_only_msgs_per_s": round(n / t_stdlib),
                "contacts": len(contacts.contacts),
                "excluded_addresses": len(contacts.excluded.keys() - contacts.contacts.keys()),
                "goal_msgs_per_s": 5_000,
                **({"dovecot": dovecot} if dovecot is not None else {}),
                "loadavg_before": load_before,
                "loadavg_after": os.getloadavg(),
            }
        )
    )


if __name__ == "__main__":
    main()
