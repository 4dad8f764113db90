"""What recognising bounces costs ingestion per ordinary message.

Ingestion (``mailport.sync.pipeline._parse``) parses every message with
:func:`mailport.messages.parse_message`, then runs :func:`mailport.messages.bounces.
worth_classifying` on the header fields that parse has already split; only a message that
passes (a ``multipart/report``, or mail from a mail system) is parsed again by
:func:`~mailport.messages.bounces.classify`. This script times, on one core (CPU time, best of
``--repeat``), over the realistic ~5 KB corpus of ``bench/parse.py``:

* ``parse_us``: ``parse_message`` per message (the cost the check is compared with);
* ``check_us``: ``worth_classifying(message.headers)`` per message, and its share of the parse;
* ``classify_raw_us``: ``classify(raw)`` on the same ordinary mail (its own header look from the
  raw bytes), for comparison;
* ``report_us``: the full ``classify`` of the bounce corpus (tests/data/bounces), paid only by
  reports.

    .venv/bin/python bench/bounce_check.py [--messages 5000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.parse import corpus

from mailport.messages import parse_message
from mailport.messages.bounces import classify, worth_classifying

BOUNCES = Path(__file__).resolve().parent.parent / "tests" / "data" / "bounces"


def per_item_us(fn: Callable[[Any], object], items: Sequence[Any], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        for item in items:
            fn(item)
        best = min(best, time.process_time() - t0)
    return best / len(items) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    result: dict[str, Any] = {"messages": args.messages}
    for name, share in (("text", 0.0), ("mixed", 0.2)):
        raws = corpus(args.messages, share, seed=11)
        parsed = [parse_message(raw, mailbox_id="mb", folder="INBOX") for raw in raws]
        assert not any(worth_classifying(m.headers) for m in parsed), "ordinary mail passed the check"
        parse_us = per_item_us(
            lambda raw: parse_message(raw, mailbox_id="mb", folder="INBOX"), raws, args.repeat
        )
        check_us = per_item_us(lambda m: worth_classifying(m.headers), parsed, args.repeat)
        result[name] = {
            "avg_bytes": sum(map(len, raws)) // len(raws),
            "parse_us": round(parse_us, 1),
            "check_us": round(check_us, 2),
            "check_share_of_parse_pct": round(100 * check_us / parse_us, 2),
            "classify_raw_us": round(per_item_us(classify, raws, args.repeat), 1),
        }
    reports = [p.read_bytes() for p in sorted(BOUNCES.glob("*.eml"))]
    result["report_us"] = round(per_item_us(classify, reports, args.repeat * 20), 1)
    result["report_messages"] = len(reports)
    result["cpu_time"] = "time.process_time, best of --repeat; one core"
    print(json.dumps(result))


if __name__ == "__main__":
    main()
