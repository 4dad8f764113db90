"""A small HTTP/1.1 POST client for webhooks: h11 over asyncio streams, keep-alive, vetted addresses.

Why not httpx (used everywhere else): a webhook backlog is thousands of tiny POSTs to one host,
and httpx + httpcore + anyio cost ~2 ms of CPU per request on this machine (measured with
cProfile: connection-pool bookkeeping, anyio wrappers), more than the rest of a delivery
together; h11 directly costs a fraction of that. h11 does the protocol (framing, chunked
bodies, keep-alive rules); this module only opens connections and pools them.

Connections go to the addresses the SSRF guard vetted (:func:`mailport.net.connect.open_stream`),
TLS verifies the URL's host name. A pooled connection the server closed meanwhile fails before
any response byte arrives; such a request is sent once more on a fresh connection (a duplicate
is harmless: the receiver deduplicates on ``webhook-id``).
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass

import h11

from mailport.net.connect import open_stream
from mailport.net.guard import VettedHost

MAX_RESPONSE_BODY = 4096  # enough for an error message; the rest is read and dropped
READ_CHUNK = 65536


class StaleConnectionError(Exception):
    """A pooled connection failed before the server answered anything."""


@dataclass(frozen=True)
class Response:
    status: int
    reason: str
    body: bytes


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.h11 = h11.Connection(h11.CLIENT)

    def close(self) -> None:
        self.writer.close()

    async def request(self, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes) -> Response:
        conn = self.h11
        data = conn.send(h11.Request(method="POST", target=target, headers=headers)) or b""
        data += conn.send(h11.Data(data=body)) or b""
        data += conn.send(h11.EndOfMessage()) or b""
        self.writer.write(data)
        await self.writer.drain()
        status, reason, chunks, size = 0, "", [], 0
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                received = await self.reader.read(READ_CHUNK)
                conn.receive_data(received)
                continue
            if isinstance(event, h11.Response):
                status, reason = event.status_code, event.reason.decode("latin-1")
            elif isinstance(event, h11.Data):
                if size < MAX_RESPONSE_BODY:
                    chunks.append(bytes(event.data[: MAX_RESPONSE_BODY - size]))
                size += len(event.data)
            elif isinstance(event, h11.EndOfMessage):
                return Response(status, reason, b"".join(chunks))
            elif isinstance(event, h11.ConnectionClosed):
                raise h11.RemoteProtocolError("the server closed the connection without answering")

    @property
    def reusable(self) -> bool:
        if self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE:
            self.h11.start_next_cycle()
            return True
        return False


class Http1Pool:
    """Keep-alive connections to one vetted host (at most ``max_idle`` kept)."""

    def __init__(self, *, connect_timeout: float, max_idle: int = 16) -> None:
        self._connect_timeout = connect_timeout
        self._max_idle = max_idle
        self._idle: list[_Connection] = []
        self._key: tuple[str, int, tuple[str, ...], bool] | None = None
        self._tls = ssl.create_default_context()

    async def _open(self, vetted: VettedHost, tls: bool) -> _Connection:
        reader, writer = await open_stream(
            vetted, timeout=self._connect_timeout, ssl_context=self._tls if tls else None, limit=READ_CHUNK
        )
        return _Connection(reader, writer)

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
        key = (vetted.server_hostname, vetted.port, tuple(str(a) for a in vetted.addresses), tls)
        if key != self._key:  # the URL or its addresses changed: drop the old connections
            self.close()
            self._key = key
        all_headers = [(b"host", host_header), (b"content-length", str(len(body)).encode()), *headers]
        for attempt in (1, 2):
            pooled = bool(self._idle)
            connection = self._idle.pop() if pooled else await self._open(vetted, tls)
            try:
                response = await connection.request(target, all_headers, body)
            except (OSError, h11.ProtocolError, asyncio.IncompleteReadError) as exc:
                connection.close()
                if pooled and attempt == 1 and connection.h11.their_state is h11.SEND_RESPONSE:
                    continue  # a stale keep-alive connection: once more on a fresh one
                raise exc
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
