"""``mailport.net.connect.http_client``: every connection vetted, redirects and proxies included.

A real HTTP server on loopback; the guard allows exactly one name for it (through the local DNS
server), so the same server reached by any other name or address is a private host.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest

from mailport.errors import HostNotAllowedError
from mailport.net.connect import http_client
from mailport.net.guard import HostGuard
from mailport.net.resolve import DnsResolver
from tests.fixtures.dns import LocalDNSServer


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so the client's pool is exercised
    paths: list[str]

    def do_GET(self) -> None:
        self.paths.append(self.path)
        if self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", self.path.split("to=", 1)[1])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = b"hello"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def web() -> Iterator[tuple[int, list[str]]]:
    paths: list[str] = []
    handler = type("Handler", (_Handler,), {"paths": paths})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], paths
    finally:
        server.shutdown()
        server.server_close()


def guard(dns: LocalDNSServer) -> HostGuard:
    dns.add("web.allowed.test.", "A", "127.0.0.1")
    dns.add("web.inside.test.", "A", "127.0.0.1")
    return HostGuard(resolver=DnsResolver([dns.nameserver], timeout=3), allowed_hosts=["web.allowed.test"])


async def test_an_allowed_name_is_reached_and_other_names_of_the_same_address_are_not(
    dns_server: LocalDNSServer, web: tuple[int, list[str]]
) -> None:
    port, paths = web
    async with http_client(guard(dns_server)) as client:
        for _ in range(2):  # the second request reuses the pooled connection
            response = await client.get(f"http://web.allowed.test:{port}/ok")
            assert response.status_code == 200 and response.text == "hello"
        for url in (
            f"http://web.inside.test:{port}/no",
            f"http://127.0.0.1:{port}/no",
            f"http://localhost:{port}/",
        ):
            with pytest.raises(HostNotAllowedError):
                await client.get(url)
    assert paths == ["/ok", "/ok"]
    assert dns_server.lookups("web.allowed.test").count("A") == 1  # one connection, one lookup


async def test_a_redirect_to_a_private_host_is_vetted_like_the_first_request(
    dns_server: LocalDNSServer, web: tuple[int, list[str]]
) -> None:
    port, paths = web
    async with http_client(guard(dns_server), follow_redirects=True) as client:
        with pytest.raises(HostNotAllowedError):
            await client.get(f"http://web.allowed.test:{port}/redirect?to=http://127.0.0.1:{port}/secret")
    assert paths == [f"/redirect?to=http://127.0.0.1:{port}/secret"]


async def test_environment_proxies_are_ignored(
    dns_server: LocalDNSServer, web: tuple[int, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A proxy would connect somewhere the guard never saw: the client always connects itself."""
    port, paths = web
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("ALL_PROXY", "http://proxy.invalid:3128")
    async with http_client(guard(dns_server)) as client:
        response = await client.get(f"http://web.allowed.test:{port}/direct")
    assert response.status_code == 200 and paths == ["/direct"]
