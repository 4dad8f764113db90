"""Fixtures for the network-safety tests: a real local DNS server with the guard's names."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fixtures.dns import LocalDNSServer

RECORDS = {
    "public.guard.test": ["93.184.215.14", "2606:4700::6810:84e5"],
    "private.guard.test": ["10.20.30.40"],
    "loopback.guard.test": ["127.0.0.1"],
    "mixed.guard.test": ["93.184.215.14", "192.168.0.7"],
    "mapped.guard.test": ["::ffff:10.0.0.1"],
    "v6loop.guard.test": ["::1"],
    "nat64.guard.test": ["64:ff9b::a9fe:a9fe"],
    "metadata.guard.test": ["169.254.169.254"],
    "ula.guard.test": ["fd12:3456:789a::1"],
    "empty.guard.test": [],
    "rebind.guard.test": ["127.0.0.1"],
}


@pytest.fixture
def dns_guard_server() -> Iterator[LocalDNSServer]:
    with LocalDNSServer() as server:
        for name, addresses in RECORDS.items():
            server.add(name, "A", *(a for a in addresses if ":" not in a))
            server.add(name, "AAAA", *(a for a in addresses if ":" in a))
        yield server
