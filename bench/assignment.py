"""CPU time of the fleet's mailbox → worker assignment, cold, warm (nothing changed) and on a join.

Every worker recomputes the assignment whenever the fleet or the mailbox list changes, so the warm
and join figures bound what a membership round costs. Prints the figures and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import time

from mailport.fleet.assignment import Assigner


def _timed(assigner: Assigner, ids: list[str], workers: dict[str, float]) -> float:
    started = time.process_time()
    assigner.assign(ids, workers)
    return (time.process_time() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mailboxes", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    ids = [f"mbx_{i:06d}" for i in range(args.mailboxes)]
    workers = {f"host-{i}:1:{i}": 1.0 for i in range(args.workers)}
    joined = {**workers, "host-new:1:0": 1.0}
    cold, warm, join = [], [], []
    for _ in range(args.rounds):
        assigner = Assigner()
        cold.append(_timed(assigner, ids, workers))
        warm.append(_timed(assigner, ids, workers))
        join.append(_timed(assigner, ids, joined))
    figures = {
        "mailboxes": args.mailboxes,
        "workers": args.workers,
        "cold_ms": round(min(cold), 1),
        "warm_ms": round(min(warm), 1),
        "join_ms": round(min(join), 1),
        "loadavg": round(os.getloadavg()[0], 2),
    }
    for key, value in figures.items():
        print(f"{key:>10}: {value}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
