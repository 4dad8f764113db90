"""Detection speed: known domains in-process, and an unknown custom domain over local DNS.

* ``known_p99_ms`` — ``Detector.detect()`` for 10,000 addresses at domains of the provider
  database (cycling through all ~1,100 known domains), one call at a time: address
  validation, index lookup and rendering. Goal: p99 < 1 ms.
* ``unknown_ms`` — the median wall time of ``detect()`` for a custom domain nobody knows,
  with probing off and the cache off, against a local DNS server (the test fixture's):
  MX, four SRV names, autoconfig names (NXDOMAIN) and the bare domain's HTTPS/HTTP
  (connection refused on loopback). Goal: < 200 ms.

Usage: ``.venv/bin/python bench/detect.py`` (prints one JSON line at the end).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fixtures.dns import LocalDNSServer
from tests.mailstack.dovecot import free_port

from mailport.detect import DetectOptions, Detector, default_database, make_resolver

KNOWN_LOOKUPS = 10_000
UNKNOWN_RUNS = 25


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def known() -> dict[str, float]:
    database = default_database()
    domains = [
        d
        for d in database.domains()
        if "*" not in d and "." in d and (p := database.by_domain(d)) is not None and (p.imap or p.smtp)
    ]
    detector = Detector(options=DetectOptions(probe=False))
    for domain in domains[:50]:  # warm-up
        await detector.detect(f"warm@{domain}")
    timings = []
    for i in range(KNOWN_LOOKUPS):
        address = f"user{i}@{domains[i % len(domains)]}"
        started = time.perf_counter()
        result = await detector.detect(address)
        timings.append((time.perf_counter() - started) * 1000)
        assert result.source == "database", address
    return {
        "known_p50_ms": round(statistics.median(timings), 4),
        "known_p99_ms": round(percentile(timings, 0.99), 4),
        "known_domains": len(domains),
    }


async def unknown(server: LocalDNSServer) -> dict[str, float]:
    server.add("customer-support-firm.example.", "MX", "10 mx1.small-hoster.example.net.")
    server.add("customer-support-firm.example.", "A", "127.0.0.1")
    options = DetectOptions(
        probe=False,
        cache_ttl=0,
        allow_private_hosts=True,
        https_port=free_port(),  # nothing listens: refused, as a domain without a web server
        http_port=free_port(),
    )
    detector = Detector(options=options, resolver=make_resolver([server.nameserver], timeout=2))
    await detector.detect("warm@customer-support-firm.example")
    timings = []
    for i in range(UNKNOWN_RUNS):
        started = time.perf_counter()
        result = await detector.detect(f"desk{i}@customer-support-firm.example")
        timings.append((time.perf_counter() - started) * 1000)
        assert result.source == "none"
    return {
        "unknown_ms": round(statistics.median(timings), 2),
        "unknown_max_ms": round(max(timings), 2),
        "unknown_runs": UNKNOWN_RUNS,
    }


def main() -> None:
    figures: dict[str, float] = {}
    figures.update(asyncio.run(known()))
    with LocalDNSServer() as server:
        figures.update(asyncio.run(unknown(server)))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
