"""The webhook HTTP/1.1 client (:mod:`mailport.delivery.http1`) against a real TCP server.

The server answers with scripted bytes (chunked bodies, 1xx answers, bodies ending at EOF,
connections closed under the pool) and parses every request with h11, an independent HTTP/1.1
implementation: the hand-written requests must be exactly what the h11 client used to send.
"""

from __future__ import annotations

import asyncio
import gc
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import h11
import pytest

from mailport.delivery.http1 import CONSTANT_HEADERS, Http1Pool, ProtocolError, Response, _Answer
from mailport.net.guard import HostGuard, VettedHost
from tests.fixtures.tls import Pem


@dataclass
class ScriptedServer:
    """Answers the n-th request with ``answers[n]`` and closes after the requests in ``close_after``."""

    answers: list[bytes]
    close_after: set[int] = field(default_factory=set)
    requests: list[tuple[h11.Request, bytes]] = field(default_factory=list)
    connections: int = 0
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                parsed = h11.Connection(h11.SERVER)
                request, body = None, b""
                while True:
                    event = parsed.next_event()
                    if event is h11.NEED_DATA:
                        data = await reader.read(65536)
                        if not data:
                            return
                        parsed.receive_data(data)
                    elif isinstance(event, h11.Request):
                        request = event
                    elif isinstance(event, h11.Data):
                        body += event.data
                    elif isinstance(event, h11.EndOfMessage):
                        break
                assert request is not None
                index = len(self.requests)
                self.requests.append((request, body))
                writer.write(self.answers[index])
                await writer.drain()
                if index in self.close_after:
                    return
        finally:
            writer.close()


async def serve(script: ScriptedServer, tls: Pem | None = None) -> AsyncIterator[VettedHost]:
    context = None
    if tls is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(tls.cert, tls.key)
    server = await asyncio.start_server(script.handle, "127.0.0.1", 0, ssl=context)
    script.port = server.sockets[0].getsockname()[1]
    try:
        yield await HostGuard(allow_private=True).vet("127.0.0.1", script.port)
    finally:
        server.close()


async def post(
    pool: Http1Pool, host: VettedHost, body: bytes = b'{"a":1}', *, tls: bool = False, **headers: bytes
) -> Response:
    extra = [(name.replace("_", "-").encode(), value) for name, value in headers.items()]
    return await pool.post(
        host,
        tls=tls,
        target=b"/hook?x=1",
        host_header=f"127.0.0.1:{host.port}".encode(),
        headers=[(b"webhook-id", b"evt_1"), *extra],
        body=body,
    )


OK = b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n"


async def test_requests_parse_as_http11_and_one_connection_is_kept_alive() -> None:
    script = ScriptedServer([OK, OK])
    async for host in serve(script):
        pool = Http1Pool(connect_timeout=5)
        first = await post(pool, host, b'{"x":"\xc3\xbc"}')
        second = await post(pool, host, b"{}")
        pool.close()
    assert first == Response(204, "No Content", b"") and second.status == 204
    assert script.connections == 1
    (request, body), (_, second_body) = script.requests
    assert request.method == b"POST" and request.target == b"/hook?x=1" and request.http_version == b"1.1"
    assert dict(request.headers) == {
        b"host": f"127.0.0.1:{script.port}".encode(),
        **dict(CONSTANT_HEADERS),
        b"content-length": str(len(body)).encode(),
        b"webhook-id": b"evt_1",
    }
    assert body == b'{"x":"\xc3\xbc"}' and second_body == b"{}"


async def test_a_chunked_error_answer_is_read_whole_its_body_capped_and_the_connection_kept() -> None:
    big = b"e" * 10_000
    chunked = b"HTTP/1.1 500 Oops\r\ntransfer-encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (
        len(big),
        big,
    )
    script = ScriptedServer([chunked, OK])
    async for host in serve(script):
        pool = Http1Pool(connect_timeout=5)
        failed = await post(pool, host)
        after = await post(pool, host)
        pool.close()
    assert (failed.status, failed.reason, failed.body) == (500, "Oops", big[:4096])
    assert after.status == 204 and script.connections == 1


async def test_an_informational_answer_is_skipped_for_the_final_one() -> None:
    script = ScriptedServer([b"HTTP/1.1 100 Continue\r\n\r\n" + OK])
    async for host in serve(script):
        pool = Http1Pool(connect_timeout=5)
        response = await post(pool, host)
        pool.close()
    assert response.status == 204


async def test_a_body_ending_with_the_connection_is_read_and_the_next_request_opens_another() -> None:
    until_eof = b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nbye"
    script = ScriptedServer([until_eof, OK], close_after={0})
    async for host in serve(script):
        pool = Http1Pool(connect_timeout=5)
        first = await post(pool, host)
        second = await post(pool, host)
        pool.close()
    assert (first.status, first.body) == (200, b"bye") and second.status == 204
    assert script.connections == 2


async def test_a_request_leaves_no_reference_cycle_for_the_collector() -> None:
    """httptools' parser holds its callbacks (the answer's bound methods): cut after each
    request, so a backlog's answers are freed at once instead of by the cyclic collector."""
    error = b"HTTP/1.1 500 Oops\r\ncontent-length: 3\r\n\r\nbad"
    script = ScriptedServer([OK, error, OK] * 5)
    async for host in serve(script):
        pool = Http1Pool(connect_timeout=5)
        gc.collect()
        gc.disable()
        try:
            statuses = [(await post(pool, host)).status for _ in range(15)]
            answers_alive = sum(type(o) is _Answer for o in gc.get_objects())
        finally:
            gc.enable()
        pool.close()
    assert statuses == [204, 500, 204] * 5
    assert answers_alive == 0


async def test_a_pooled_connection_the_server_closed_is_retried_once_on_a_fresh_one() -> None:
    script = ScriptedServer([OK, OK], close_after={0})  # closes without saying so
    async for host in serve(script):
        pool = Http1Pool(connect_timeout=5)
        await post(pool, host)
        await asyncio.sleep(0.05)  # the close reaches the pooled connection
        second = await post(pool, host, body=b'{"n":2}')
        pool.close()
    assert second.status == 204 and script.connections == 2
    assert [body for _, body in script.requests] == [b'{"a":1}', b'{"n":2}']


async def test_an_answer_cut_short_is_an_error_not_a_success() -> None:
    script = ScriptedServer([b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc"], close_after={0})
    async for host in serve(script):
        pool = Http1Pool(connect_timeout=5)
        with pytest.raises(ProtocolError):
            await post(pool, host)
        pool.close()


@pytest.mark.parametrize("value", [b"a\r\nx-injected: 1", b"a\rb", b"a\nb", b"a\0b"])
async def test_a_header_that_could_split_the_request_is_refused_before_sending(value: bytes) -> None:
    script = ScriptedServer([OK])
    async for host in serve(script):
        pool = Http1Pool(connect_timeout=5)
        with pytest.raises(ProtocolError):
            await post(pool, host, webhook_x=value)
        response = await post(pool, host, webhook_x=b"fine")
        pool.close()
    assert response.status == 204 and len(script.requests) == 1


async def test_https_verifies_the_servers_certificate_and_keeps_the_connection(pki: dict[str, Pem]) -> None:
    trusted = ssl.create_default_context(cafile=str(pki["ca"].cert))
    script = ScriptedServer([OK, OK])
    async for host in serve(script, tls=pki["good"]):
        pool = Http1Pool(connect_timeout=5, tls_context=trusted)
        answers = [await post(pool, host, b"{}", tls=True), await post(pool, host, b"[]", tls=True)]
        pool.close()
    assert [a.status for a in answers] == [204, 204] and script.connections == 1
    assert [body for _request, body in script.requests] == [b"{}", b"[]"]

    refused = ScriptedServer([OK])
    async for host in serve(refused, tls=pki["self_signed"]):
        pool = Http1Pool(connect_timeout=5, tls_context=trusted)
        with pytest.raises(ssl.SSLCertVerificationError):
            await post(pool, host, tls=True)
        pool.close()
    assert refused.requests == []
