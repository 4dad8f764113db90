"""mailport's own TLS layer (:mod:`mailport.net.tls_layer`) against real TLS servers.

A raw TLS server here (a server-side ``ssl.SSLObject`` over a TCP socket) decides exactly how
its ciphertext is cut into TCP writes and TLS records, so the layer's record framing is
tested at every byte boundary, with 1-byte records, with records split across reads, with and
without close_notify. Dovecot covers implicit TLS, STARTTLS, pins and large literals.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import pytest

from mailport.crypto import Secret
from mailport.errors import CertificateChangedError, ConnectionLostError, TLSError
from mailport.imap import ImapClient, PasswordAuth
from mailport.net.tls_layer import MAX_RECORD_PLAINTEXT, PLAIN_BUFFER, TLSLayer, TLSTruncatedError
from mailport.net.trust import Certificate, MailTrust
from tests.integration.imap.conftest import make_message
from tests.mailstack.dovecot import Dovecot


@dataclass
class Plan:
    """What the raw server sends after the handshake, and how it cuts it."""

    payload: bytes
    record: int = 16 * 1024  # plaintext bytes per TLS record
    cuts: Sequence[int] = ()  # offsets in the post-handshake ciphertext where a TCP write ends
    dribble: int = 0  # > 0: send everything (handshake too) in writes of this many bytes
    close_notify: bool = True
    tickets: int = 2


@dataclass
class RawTLSServer:
    """A TLS server that writes its ciphertext exactly as :class:`Plan` says."""

    context: ssl.SSLContext
    plan: Plan
    port: int = 0
    errors: list[BaseException] = field(default_factory=list)

    async def _send(self, writer: asyncio.StreamWriter, data: bytes, cuts: Sequence[int]) -> None:
        edges = [0, *(c for c in cuts if 0 < c < len(data)), len(data)]
        if self.plan.dribble:
            edges = [*range(0, len(data), self.plan.dribble), len(data)]
        for start, stop in zip(edges, edges[1:], strict=False):
            writer.write(data[start:stop])
            await writer.drain()
            if stop < len(data):  # let the client read this piece on its own
                await asyncio.sleep(0 if self.plan.dribble else 0.002)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        context = self.context
        context.num_tickets = self.plan.tickets
        tls = context.wrap_bio(incoming, outgoing, server_side=True)
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    return
                incoming.write(data)
                try:
                    tls.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    await self._send(writer, outgoing.read(), ())
            stream = outgoing.read()  # session tickets
            payload, step = self.plan.payload, self.plan.record
            for offset in range(0, len(payload), step):
                tls.write(payload[offset : offset + step])
            if self.plan.close_notify:
                with contextlib.suppress(ssl.SSLWantReadError):
                    tls.unwrap()
            stream += outgoing.read()
            await self._send(writer, stream, self.plan.cuts)
        except Exception as exc:  # reported by the test
            self.errors.append(exc)
        finally:
            writer.close()  # TCP FIN; close_notify only if the plan sent it

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[RawTLSServer]:
        server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        try:
            yield self
        finally:
            server.close()


class Collect(asyncio.Protocol):
    """The application side: keeps what the layer delivers and how the connection ended."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.eof = False
        self.lost: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self.data += data

    def eof_received(self) -> bool | None:
        self.eof = True
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(exc)


@pytest.fixture
def client_context(dovecot: Dovecot) -> ssl.SSLContext:
    return MailTrust(ca_files=[dovecot.ca_file]).context()


async def receive(
    server: RawTLSServer, context: ssl.SSLContext, *, bulk: bool = False
) -> tuple[Collect, Exception | None]:
    loop = asyncio.get_running_loop()
    app = Collect()
    _, layer = await loop.create_connection(lambda: TLSLayer(app), "127.0.0.1", server.port)
    await layer.start_tls(context, server_hostname="localhost", timeout=5)
    layer.bulk(bulk)
    exc = await asyncio.wait_for(app.lost, 10)
    layer.close()
    return app, exc


def records_of(sizes: Sequence[int]) -> bytes:
    return b"".join(bytes([0x41 + i % 26]) * n for i, n in enumerate(sizes))


@pytest.mark.parametrize("bulk", [False, True])
async def test_one_byte_records_split_at_every_byte_boundary(
    imap_server_tls, client_context, bulk: bool
) -> None:
    """Idle (records fed in pieces) and bulk (one record per BIO write, decrypted in one loop)."""
    payload = b"* OK [CAPABILITY IMAP4rev1] ready\r\n"
    plan = Plan(payload, record=1, tickets=0)
    async with RawTLSServer(imap_server_tls, plan).running() as server:
        app, exc = await receive(server, client_context, bulk=bulk)
        assert bytes(app.data) == payload and app.eof and exc is None
        length = 22 * len(payload) + 24  # 1-byte records (22 bytes each) and close_notify
        for cut in range(1, length):
            plan.cuts = (cut,)
            app, exc = await receive(server, client_context, bulk=bulk)
            assert bytes(app.data) == payload, cut
            assert app.eof and exc is None, cut
        assert not server.errors


async def test_large_records_split_around_every_record_header(imap_server_tls, client_context) -> None:
    payload = records_of([40_000, 70_000, 3, 16_384, 1])
    for bulk in (False, True):
        for record in (16_384, 5_000):
            stride = record + 22
            cuts = [r * stride + d for r in range(1, 12) for d in range(-2, 7)]
            plan = Plan(payload, record=record, cuts=cuts)
            async with RawTLSServer(imap_server_tls, plan).running() as server:
                app, exc = await receive(server, client_context, bulk=bulk)
            assert bytes(app.data) == payload, (bulk, record)
            assert exc is None and not server.errors


async def test_dribbled_byte_by_byte_with_the_handshake(imap_server_tls, client_context) -> None:
    payload = records_of([300, 1, 2, 900])
    plan = Plan(payload, record=700, dribble=1)
    async with RawTLSServer(imap_server_tls, plan).running() as server:
        app, exc = await receive(server, client_context)
    assert bytes(app.data) == payload and exc is None and not server.errors


async def test_tiny_tcp_writes_of_large_records_with_session_tickets(imap_server_tls, client_context) -> None:
    payload = records_of([20_000, 90_000, 7])
    plan = Plan(payload, dribble=997, tickets=3)
    async with RawTLSServer(imap_server_tls, plan).running() as server:
        app, exc = await receive(server, client_context, bulk=True)
    assert bytes(app.data) == payload and exc is None and not server.errors


class Wire(asyncio.Transport):
    """The plain side of an in-memory connection: what the layer sends goes to the peer's BIO."""

    def __init__(self, peer: ssl.MemoryBIO) -> None:
        super().__init__()
        self.peer = peer

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.peer.write(bytes(data))

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


class Counting(Collect):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def data_received(self, data: bytes) -> None:
        self.calls += 1
        super().data_received(data)


async def test_a_bulk_delivery_larger_than_the_plaintext_buffer_is_handed_over_in_pieces(
    imap_server_tls, client_context
) -> None:
    """A socket read is at most the shared receive buffer, so its plaintext never fills the
    shared plaintext buffer; one larger delivery in bulk mode drives the hand-over of a full
    buffer, including a record whose plaintext fills it exactly (the read that may leave
    plaintext in OpenSSL), against a real TLS peer in memory."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    imap_server_tls.num_tickets = 2
    server = imap_server_tls.wrap_bio(incoming, outgoing, server_side=True)
    app = Counting()
    layer = TLSLayer(app)
    layer.connection_made(Wire(incoming))
    handshake = asyncio.ensure_future(layer.start_tls(client_context, server_hostname="localhost", timeout=5))
    while not handshake.done():
        await asyncio.sleep(0)
        with contextlib.suppress(ssl.SSLWantReadError):
            server.do_handshake()
        if outgoing.pending:
            layer._receive(memoryview(outgoing.read()))
    handshake.result()
    with contextlib.suppress(ssl.SSLWantReadError):
        server.do_handshake()  # reads the client's Finished and writes the tickets
    layer.bulk(True)
    # 18 full records fill the buffer up to its hand-over limit; the 19th fills it exactly
    assert PLAIN_BUFFER - MAX_RECORD_PLAINTEXT == 18 * MAX_RECORD_PLAINTEXT
    payload = records_of([MAX_RECORD_PLAINTEXT] * 40 + [5_000, 1])
    for offset in range(0, len(payload), MAX_RECORD_PLAINTEXT):
        server.write(payload[offset : offset + MAX_RECORD_PLAINTEXT])
    ciphertext = outgoing.read()
    assert len(ciphertext) > PLAIN_BUFFER
    layer._receive(memoryview(ciphertext))
    assert bytes(app.data) == payload
    assert app.calls >= 3 and not app.eof and not layer.is_closing()


async def test_peer_closing_without_close_notify_is_a_truncation(imap_server_tls, client_context) -> None:
    payload = b"* OK ready\r\n"
    async with RawTLSServer(imap_server_tls, Plan(payload, close_notify=False)).running() as server:
        app, exc = await receive(server, client_context)
    assert bytes(app.data) == payload  # everything before the cut is delivered
    assert isinstance(exc, TLSTruncatedError) and not app.eof


async def test_imap_client_reports_a_drop_without_close_notify(imap_server_tls, dovecot: Dovecot) -> None:
    payload = b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready\r\n"
    plan = Plan(payload, record=3, close_notify=False, cuts=(7, 50, 51))
    async with RawTLSServer(imap_server_tls, plan).running() as server:
        client = ImapClient("127.0.0.1", server.port, ca_file=dovecot.ca_file, connect_timeout=5)
        greeting = await client.connect()
        assert greeting.status == "OK" and "IMAP4REV1" in client.capabilities
        for _ in range(200):
            if not client.connected:
                break
            await asyncio.sleep(0.01)
        assert not client.connected
        with pytest.raises(ConnectionLostError) as info:
            await client.noop()
        causes: list[BaseException] = []
        cause: BaseException | None = info.value
        while cause is not None:
            causes.append(cause)
            cause = cause.__cause__
        assert any(isinstance(c, TLSTruncatedError) for c in causes), causes


async def test_a_server_dying_in_the_handshake_is_a_tls_error(dovecot: Dovecot) -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(10)
        writer.transport.abort()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        client = ImapClient("127.0.0.1", port, ca_file=dovecot.ca_file, connect_timeout=5)
        with pytest.raises(TLSError, match="TLS handshake failed"):
            await client.connect()
        assert not client.connected
    finally:
        server.close()


async def test_implicit_tls_large_literals_both_ways(dovecot: Dovecot, password_user) -> None:
    user, password = password_user
    big = make_message("big", "x" * 76 + "\r\n") + b"y" * 3_000_000 + b"\r\n"
    medium = make_message("medium") + b"z" * 70_000 + b"\r\n"
    async with await ImapClient.open(
        "127.0.0.1", dovecot.imaps_port, ca_file=dovecot.ca_file, auth=PasswordAuth(user, Secret(password))
    ) as client:
        await client.append("INBOX", big)
        await client.append("INBOX", medium)
        await client.select("INBOX")
        messages = sorted(await client.fetch("1:*"), key=lambda m: m.uid or 0)  # any order
        assert [m.raw for m in messages] == [big, medium]
        assert client.tls is not None and client.tls.version == "TLSv1.3" and client.tls.verified
        assert await client.is_alive()


async def test_starttls_against_dovecot_fetches_and_reports_tls(dovecot: Dovecot, password_user) -> None:
    user, password = password_user
    dovecot.deliver(user, make_message("over starttls", "b" * 50_000))
    async with await ImapClient.open(
        "127.0.0.1",
        dovecot.imap_port,
        security="starttls",
        ca_file=dovecot.ca_file,
        auth=PasswordAuth(user, Secret(password)),
    ) as client:
        assert client.encrypted and client.tls is not None and client.tls.subject == "localhost"
        await client.select("INBOX")
        (message,) = await client.fetch("1:*")
        assert message.raw is not None and message.raw.count(b"b") >= 50_000


async def test_pinned_certificate_is_accepted_and_a_changed_one_refused(
    dovecot: Dovecot, password_user
) -> None:
    user, password = password_user
    with open(dovecot.ca_file) as pem:
        pinned = Certificate.from_pem(pem.read())
    context = MailTrust().context(pinned)
    async with await ImapClient.open(
        "127.0.0.1", dovecot.imaps_port, ssl_context=context, auth=PasswordAuth(user, Secret(password))
    ) as client:
        assert client.tls is not None and client.tls.pinned and client.tls.verified
    other = Certificate.from_pem(_other_certificate_pem())
    client = ImapClient("127.0.0.1", dovecot.imaps_port, ssl_context=MailTrust().context(other))
    with pytest.raises(CertificateChangedError):
        await client.connect()
    assert not client.connected


async def test_hostname_mismatch_is_a_certificate_error(dovecot: Dovecot) -> None:
    client = ImapClient(
        "127.0.0.1", dovecot.imaps_port, ca_file=dovecot.ca_file, server_hostname="wrong.example.test"
    )
    with pytest.raises(TLSError, match="certificate verification failed"):
        await client.connect()


def _other_certificate_pem() -> str:
    import tempfile
    from pathlib import Path

    from tests.mailstack.dovecot import make_self_signed_cert

    with tempfile.TemporaryDirectory() as directory:
        cert, _ = make_self_signed_cert(Path(directory))
        return cert.read_text()
