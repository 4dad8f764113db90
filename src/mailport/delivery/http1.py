"""A small HTTP/1.1 POST client for webhooks: httptools over asyncio streams, keep-alive, vetted addresses.

Why not httpx (used everywhere else): a webhook backlog is thousands of tiny POSTs to one host,
and httpx + httpcore + anyio cost ~2 ms of CPU per request on this machine (measured with
cProfile: connection-pool bookkeeping, anyio wrappers), more than the rest of a delivery
together. Why not h11 (used until issue 21's fourth round): its pure-Python state machine and
header validation were ~45 % of a delivery's CPU on the event loop (py-spy, bench/delivery_throughput.py).
Now the response is parsed by httptools (llhttp, in C: status line, framing, chunked bodies,
keep-alive rules) and the request is written by hand: it is always the same POST, so its
start line and constant headers are built once per URL and each request adds only its
``content-length`` and the signature headers (checked for CR/LF/NUL, which could split a header).

Connections go to the addresses the SSRF guard vetted (:func:`mailport.net.connect.open_stream`),
TLS verifies the URL's host name. A pooled connection the server closed meanwhile fails before
any response byte arrives; such a request is sent once more on a fresh connection (a duplicate
is harmless: the receiver deduplicates on ``webhook-id``).
"""

from __future__ import annotations

import asyncio
import re
import ssl
from dataclasses import dataclass

import httptools

from mailport.net.connect import open_stream
from mailport.net.guard import VettedHost

MAX_RESPONSE_BODY = 4096  # enough for an error message; the rest is read and dropped
READ_CHUNK = 65536
CONSTANT_HEADERS = ((b"content-type", b"application/json"), (b"user-agent", b"mailport-webhooks"))
_UNSAFE = re.compile(rb"[\r\n\0]")  # would end a header line early (request splitting)


class ProtocolError(Exception):
    """The server's answer is not HTTP/1.1 we can read (or a header we were given is unsafe)."""


class StaleConnectionError(ProtocolError):
    """A pooled connection failed before the server answered anything."""


@dataclass(frozen=True)
class Response:
    status: int
    reason: str
    body: bytes


def _checked(value: bytes) -> bytes:
    if _UNSAFE.search(value):
        raise ProtocolError("a header name or value holds CR, LF or NUL")
    return value


def request_head(target: bytes, host_header: bytes) -> bytes:
    """The request's start line and constant headers (built once per URL)."""
    lines = [b"POST " + _checked(target) + b" HTTP/1.1", b"host: " + _checked(host_header)]
    lines += [name + b": " + value for name, value in CONSTANT_HEADERS]
    return b"\r\n".join(lines) + b"\r\n"


class _Answer:
    """httptools' callbacks for one response (and its framing, for a body that ends at EOF)."""

    __slots__ = (
        "parser",
        "begun",
        "complete",
        "headers_done",
        "framed",
        "keep_alive",
        "status",
        "reason",
        "chunks",
        "size",
    )

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.begun = self.complete = self.headers_done = self.framed = self.keep_alive = False
        self.status = 0
        self.reason = b""
        self.chunks: list[bytes] = []
        self.size = 0

    def on_message_begin(self) -> None:  # a 1xx answer came first: start over
        self.begun, self.complete, self.headers_done, self.framed = True, False, False, False
        self.reason, self.chunks, self.size = b"", [], 0

    def on_status(self, reason: bytes) -> None:
        self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() in (b"content-length", b"transfer-encoding"):
            self.framed = True

    def on_headers_complete(self) -> None:
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        if self.size < MAX_RESPONSE_BODY:
            self.chunks.append(body[: MAX_RESPONSE_BODY - self.size])
        self.size += len(body)

    def on_message_complete(self) -> None:
        # read here: once feed_data() returns, the parser has reset and says "no keep-alive"
        self.complete = True
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.reusable = False
        self.answered = False  # any byte of this request's answer arrived (else a failure: stale)

    def close(self) -> None:
        self.writer.close()

    async def request(self, head: bytes, headers: list[tuple[bytes, bytes]], body: bytes) -> Response:
        """Send one request, read its whole response; raises :class:`StaleConnectionError` when
        the connection ends before any byte of an answer."""
        lines = b"".join(b"%s: %s\r\n" % pair for pair in headers)
        n = len(headers)  # one CR LF per header, no other CR, LF or NUL (checked in one go)
        if lines.count(b"\r") != n or lines.count(b"\n") != n or b"\0" in lines:
            raise ProtocolError("a header name or value holds CR, LF or NUL")
        parts = [head, b"content-length: %d\r\n" % len(body), lines, b"\r\n", body]
        self.reusable = self.answered = False
        self.writer.write(b"".join(parts))
        await self.writer.drain()
        answer = _Answer()
        parser = answer.parser
        try:
            while True:
                received = await self.reader.read(READ_CHUNK)
                self.answered = self.answered or bool(received)
                if not received:
                    if not answer.begun:
                        raise StaleConnectionError("the server closed the connection without answering")
                    if answer.headers_done and not answer.framed and not answer.complete:
                        break  # a body that ends with the connection (no length, not chunked)
                    raise ProtocolError("the server closed the connection in the middle of its answer")
                try:
                    parser.feed_data(received)
                except httptools.HttpParserError as exc:
                    raise ProtocolError(f"unreadable HTTP answer: {exc}") from exc
                if answer.complete and not 100 <= answer.status < 200:
                    self.reusable = answer.keep_alive and not self.reader.at_eof()
                    break
            status = answer.status or parser.get_status_code()
        finally:
            # the parser holds the answer's bound methods: a reference cycle per request, 9
            # objects left to the cyclic collector (most of its work in a backlog) unless cut here
            del answer.parser
        return Response(status, answer.reason.decode("latin-1"), b"".join(answer.chunks))


class Http1Pool:
    """Keep-alive connections to one vetted host (at most ``max_idle`` kept)."""

    def __init__(
        self, *, connect_timeout: float, max_idle: int = 16, tls_context: ssl.SSLContext | None = None
    ) -> None:
        self._connect_timeout = connect_timeout
        self._max_idle = max_idle
        self._idle: list[_Connection] = []
        self._key: tuple[str, int, tuple[str, ...], bool] | None = None
        self._vetted: VettedHost | None = None  # the host self._key was made of
        self._tls_on = False
        self._head: tuple[bytes, bytes, bytes] | None = None  # target, host header, request_head()
        # made at the first https connection (loads the system's CAs) unless given
        self._tls: ssl.SSLContext | None = tls_context

    async def _open(self, vetted: VettedHost, tls: bool) -> _Connection:
        reader, writer = await open_stream(
            vetted,
            timeout=self._connect_timeout,
            ssl_context=self._context() if tls else None,
            limit=READ_CHUNK,
        )
        return _Connection(reader, writer)

    def _context(self) -> ssl.SSLContext:
        """The pool's TLS context, made on first use: loading the system's CA certificates
        takes tens of milliseconds, paid by every endpoint's pool even when it is plain HTTP."""
        if self._tls is None:
            self._tls = ssl.create_default_context()
        return self._tls

    def _request_head(self, target: bytes, host_header: bytes) -> bytes:
        if self._head is None or self._head[0] != target or self._head[1] != host_header:
            self._head = (target, host_header, request_head(target, host_header))
        return self._head[2]

    async def post(
        self,
        vetted: VettedHost,
        *,
        tls: bool,
        target: bytes,
        host_header: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
    ) -> Response:
        """POST ``body`` (JSON) with ``headers`` besides host, content-type, user-agent and
        content-length."""
        if vetted is not self._vetted or tls != self._tls_on:  # vetted again (cached for a while)
            key = (vetted.server_hostname, vetted.port, tuple(str(a) for a in vetted.addresses), tls)
            if key != self._key:  # the URL or its addresses changed: drop the old connections
                self.close()
                self._key = key
            self._vetted, self._tls_on = vetted, tls
        head = self._request_head(target, host_header)
        for attempt in (1, 2):
            pooled = bool(self._idle)
            connection = self._idle.pop() if pooled else await self._open(vetted, tls)
            try:
                response = await connection.request(head, headers, body)
            except (OSError, ProtocolError):
                connection.close()
                if pooled and attempt == 1 and not connection.answered:
                    continue  # a stale keep-alive connection: once more on a fresh one
                raise
            except BaseException:
                connection.close()
                raise
            if connection.reusable and len(self._idle) < self._max_idle:
                self._idle.append(connection)
            else:
                connection.close()
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        for connection in self._idle:
            connection.close()
        self._idle.clear()
