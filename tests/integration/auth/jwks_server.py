"""A local JWKS server: a real HTTP server on a free loopback port serving a key set the test
controls (keys added and removed between requests, a chosen ``Cache-Control``, a switch that
makes it fail), counting the requests it answers.

Written here rather than reusing ``tests.fixtures.http.AutoconfigServer``: that server serves
fixed bodies with fixed headers; a JWKS test rotates keys while the server runs and counts its
requests to show that unknown kids do not hammer it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

JWKS_PATH = "/.well-known/jwks.json"


@dataclass
class HostKey:
    """A private key, its kid and algorithm; ``sign`` makes a token a host application would."""

    kid: str
    alg: str
    private: Any

    @classmethod
    def rsa(cls, kid: str, alg: str = "RS256") -> HostKey:
        return cls(kid, alg, rsa.generate_private_key(public_exponent=65537, key_size=2048))

    @classmethod
    def ec(cls, kid: str, alg: str = "ES256") -> HostKey:
        return cls(kid, alg, ec.generate_private_key(ec.SECP256R1()))

    def jwk(self, *, declare_alg: bool = True) -> dict[str, Any]:
        algorithm = jwt.get_algorithm_by_name(self.alg)
        data: dict[str, Any] = json.loads(algorithm.to_jwk(self.private.public_key()))
        data.update(kid=self.kid, use="sig")
        if declare_alg:
            data["alg"] = self.alg
        return data

    def sign(self, claims: dict[str, Any], *, kid: str | None = ..., **header: Any) -> str:  # type: ignore[assignment]
        headers = {"kid": self.kid if kid is ... else kid, **header}
        if headers["kid"] is None:
            del headers["kid"]
        return jwt.encode(claims, self.private, algorithm=self.alg, headers=headers)


@dataclass
class JwksServer:
    url: str
    keys: list[dict[str, Any]] = field(default_factory=list)
    cache_control: str | None = "max-age=300"
    status: int = 200
    requests: int = 0

    def publish(self, *keys: HostKey) -> None:
        """Serve exactly these keys from now on."""
        self.keys = [k.jwk() for k in keys]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        state = self.server.state
        state.requests += 1
        body = json.dumps({"keys": state.keys}).encode() if self.path == JWKS_PATH else b"{}"
        self.send_response(state.status if self.path == JWKS_PATH else 404)
        self.send_header("Content-Type", "application/json")
        if state.cache_control:
            self.send_header("Cache-Control", state.cache_control)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: JwksServer


@contextmanager
def serve_jwks() -> Iterator[JwksServer]:
    """A JWKS server on a free loopback port (its state is what it serves) while the block runs."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.state = JwksServer(url=f"http://127.0.0.1:{server.server_address[1]}{JWKS_PATH}")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def jwks_server() -> Iterator[JwksServer]:
    with serve_jwks() as state:
        yield state
