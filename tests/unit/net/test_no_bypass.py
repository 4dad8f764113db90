"""No client opens a connection around the SSRF guard.

Every outbound connection of mailport must go through :mod:`mailport.net.connect` (vet the
host with the guard, connect to exactly the vetted address). This scans the source tree's
syntax and fails on any other way to open a socket or an HTTP client outside ``mailport.net``:
a name-based ``asyncio.open_connection(host, port)``, ``loop.create_connection(…, host, port)``,
``socket.create_connection``, a raw ``socket.socket``, ``sock_connect``, ``getaddrinfo``, an
``httpx.AsyncClient``/transport/pool built directly, ``aiosmtplib.SMTP`` allowed to connect by
itself, and the stdlib network clients. A new client must use ``open_socket``,
``open_stream`` or ``http_client``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[3] / "src" / "mailport"
ALLOWED_PACKAGE = SRC / "net"

FORBIDDEN_IMPORTS = {
    "urllib.request",
    "http.client",
    "requests",
    "urllib3",
    "aiohttp",
    "smtplib",
    "imaplib",
    "poplib",
    "ftplib",
    "telnetlib",
    "aioimaplib",
    "trio",
}
# Called as attribute of anything (``loop.sock_connect``, ``socket.getaddrinfo`` …).
FORBIDDEN_METHODS = {
    "sock_connect",
    "getaddrinfo",
    "create_connection",  # allowed only with sock= (checked below)
    "open_connection",  # idem
    "create_unix_connection",
    "open_unix_connection",
    "create_datagram_connection",
    "connect_unix",
}
# module.attribute calls that build a client or socket.
FORBIDDEN_CALLS = {
    ("socket", "socket"),
    ("socket", "create_connection"),
    ("socket", "socketpair"),
    ("httpx", "AsyncClient"),
    ("httpx", "Client"),
    ("httpx", "AsyncHTTPTransport"),
    ("httpx", "HTTPTransport"),
    ("httpx", "get"),
    ("httpx", "post"),
    ("httpx", "request"),
    ("httpx", "stream"),
    ("httpcore", "AsyncConnectionPool"),
    ("httpcore", "ConnectionPool"),
    ("httpcore", "AnyIOBackend"),
    ("httpcore", "AsyncHTTPProxy"),
    ("aiosmtplib", "send"),
    ("anyio", "connect_tcp"),
    ("imapclient", "IMAPClient"),
}


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return "?"


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def violations(source: str, where: str = "<src>") -> list[str]:
    """Every way ``source`` opens a connection other than through mailport.net."""
    tree = ast.parse(source)
    found: list[str] = []
    imported: dict[str, str] = {}  # local name -> module.attr for `from x import y`
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in FORBIDDEN_IMPORTS or alias.name.split(".")[0] in FORBIDDEN_IMPORTS:
                    found.append(f"{where}:{node.lineno}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module in FORBIDDEN_IMPORTS or node.module.split(".")[0] in FORBIDDEN_IMPORTS:
                found.append(f"{where}:{node.lineno}: from {node.module} import …")
            for alias in node.names:
                imported[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = _dotted(func)
        if isinstance(func, ast.Name) and func.id in imported:
            name = imported[func.id]
        parts = name.split(".")
        tail = parts[-1]
        pair = (parts[-2], tail) if len(parts) >= 2 else ("", tail)
        at = f"{where}:{node.lineno}: {name}(…)"
        if pair in FORBIDDEN_CALLS:
            found.append(at)
        elif pair == ("aiosmtplib", "SMTP") or name.endswith("aiosmtplib.SMTP"):
            port = _keyword(node, "port")
            if not (isinstance(port, ast.Constant) and port.value is None) or _keyword(node, "sock"):
                found.append(f"{at} must be SMTP(port=None) and be handed a vetted socket at connect")
        elif tail in ("create_connection", "open_connection"):
            # allowed only on an already connected (vetted) socket: sock=…, no host or port
            positional = len(node.args) - (1 if tail == "create_connection" else 0)
            named = {k.arg for k in node.keywords}
            if _keyword(node, "sock") is None or positional > 0 or named & {"host", "port"}:
                found.append(f"{at} without sock= (connects by name, around the guard)")
        elif tail in FORBIDDEN_METHODS:
            found.append(at)
    return found


def test_no_module_outside_mailport_net_opens_a_connection_around_the_guard() -> None:
    problems: list[str] = []
    for path in sorted(SRC.rglob("*.py")):
        if ALLOWED_PACKAGE in path.parents:
            continue
        problems += violations(path.read_text(encoding="utf-8"), str(path.relative_to(SRC.parent)))
    assert not problems, "connections around mailport.net.connect:\n" + "\n".join(problems)


def test_the_scan_covers_every_client_in_the_tree() -> None:
    """The scan sees the real clients' calls (a moved or renamed client must still be scanned)."""

    def source(name: str) -> str:
        return (SRC / name).read_text(encoding="utf-8")

    assert "create_connection(self._make_layer, sock=sock)" in source("imap/session.py")
    assert "open_socket(" in source("imap/session.py") and "open_socket(" in source("smtp/client.py")
    assert "http_client(" in source("detect/detector.py") and "http_client(" in source("oauth/client.py")
    assert "open_stream(" in source("delivery/http1.py") and "open_stream(" in source("detect/probe.py")


@pytest.mark.parametrize(
    "snippet",
    [
        "import asyncio\nasync def f():\n    await asyncio.open_connection('10.0.0.1', 25)",
        "import asyncio\nasync def f():\n    await asyncio.open_connection(host='h', port=1)",
        "from asyncio import open_connection\nasync def f():\n    await open_connection('h', 1)",
        "async def f(loop, p):\n    await loop.create_connection(p, 'h', 993)",
        "async def f(loop, p, s):\n    await loop.create_connection(p, host='h', port=1, sock=s)",
        "async def f(loop, s):\n    await loop.sock_connect(s, ('h', 1))",
        "async def f(loop):\n    await loop.getaddrinfo('h', None)",
        "import socket\nsocket.create_connection(('h', 1))",
        "import socket\ns = socket.socket()",
        "import httpx\nc = httpx.AsyncClient()",
        "import httpx\nc = httpx.AsyncClient(transport=httpx.AsyncHTTPTransport())",
        "import httpx\nhttpx.get('http://169.254.169.254/')",
        "from httpx import AsyncClient\nc = AsyncClient()",
        "import aiosmtplib\nc = aiosmtplib.SMTP(hostname='h', port=25)",
        "import aiosmtplib\nc = aiosmtplib.SMTP(hostname='h')",
        "import urllib.request\nurllib.request.urlopen('http://h/')",
        "from http.client import HTTPConnection",
        "import smtplib",
        "import anyio\nasync def f():\n    await anyio.connect_tcp('h', 1)",
    ],
)
def test_the_scan_catches_each_way_around_the_guard(snippet: str) -> None:
    assert violations(snippet), snippet


@pytest.mark.parametrize(
    "snippet",
    [
        "import asyncio\nasync def f(s):\n    await asyncio.open_connection(sock=s, ssl=None)",
        "async def f(loop, p, s):\n    await loop.create_connection(p, sock=s)",
        "import aiosmtplib\nc = aiosmtplib.SMTP(hostname='h', port=None)",
        "from mailport.net.connect import http_client\nc = http_client(guard)",
    ],
)
def test_the_scan_allows_connecting_a_vetted_socket(snippet: str) -> None:
    assert violations(snippet) == []
