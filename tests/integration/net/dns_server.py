"""A tiny authoritative DNS server for the SSRF-guard tests (dnspython, UDP, a thread).

Serves A and AAAA records from a dict on a free loopback port, answers NXDOMAIN for unknown
names, and can change a name's answer after the first query (a DNS-rebinding attacker). It
records every query so tests can prove a name was looked up once.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset


class DNSServer:
    def __init__(self, records: dict[str, list[str]]) -> None:
        self.records = {k.lower().rstrip("."): list(v) for k, v in records.items()}
        self.rebind: dict[str, list[str]] = {}  # name -> answers after the first A query
        self.queries: list[tuple[str, str]] = []
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.settimeout(1.0)
        self.port: int = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="dns-guard", daemon=True)
        self._lock = threading.Lock()

    @property
    def nameserver(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> DNSServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as wake:  # unblock recvfrom now
            wake.sendto(b"", ("127.0.0.1", self.port))
        self._thread.join(timeout=5)
        self._sock.close()

    def _answers(self, name: str, rdtype: int) -> list[str] | None:
        with self._lock:
            values = self.records.get(name)
            if values is None:
                return None
            if rdtype == dns.rdatatype.A and name in self.rebind:
                seen = sum(1 for n, t in self.queries if n == name and t == "A")
                if seen > 1:
                    values = self.rebind[name]
        want_v6 = rdtype == dns.rdatatype.AAAA
        return [v for v in values if (":" in v) == want_v6]

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                wire, peer = self._sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                query = dns.message.from_wire(wire)
            except Exception:
                continue
            response = dns.message.make_response(query)
            response.flags |= dns.flags.AA
            question = query.question[0]
            name = question.name.to_text().lower().rstrip(".")
            with self._lock:
                self.queries.append((name, dns.rdatatype.to_text(question.rdtype)))
            answers = self._answers(name, question.rdtype)
            if answers is None:
                response.set_rcode(dns.rcode.NXDOMAIN)
            elif answers:
                response.answer.append(
                    dns.rrset.from_text_list(question.name, 60, "IN", question.rdtype, answers)
                )
            self._sock.sendto(response.to_wire(), peer)

    def lookups(self, name: str) -> list[str]:
        with self._lock:
            return [t for n, t in self.queries if n == name]


@contextmanager
def running(records: dict[str, list[str]]) -> Iterator[DNSServer]:
    server = DNSServer(records).start()
    try:
        yield server
    finally:
        server.stop()
