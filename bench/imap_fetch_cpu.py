"""The IMAP client's own CPU per fetched message, without a network or a server (issue 21).

``imap_fetch.py``'s replay figure is wall-clock and moves by ±25 % on the shared 2-core machine;
this one is ``time.thread_time()`` of exactly the client code a bulk ``UID FETCH`` runs per read:
:class:`~mailport.net.tls_layer.TLSLayer` (records cut, fed and decrypted) and
:class:`~mailport.imap.protocol.ImapProtocol` (framing, the FETCH fast path, one
:class:`~mailport.imap.models.FetchedMessage` per message). The replay bytes of ``imap_fetch.py``
(10,000 ~5 KB messages, ``UID FLAGS BODY[]``) are encrypted once by a server-side ``ssl.SSLObject``
in memory and handed to the layer in reads of ``--read`` bytes, as the event loop's
``recv_into`` would. Not counted: the ``recv`` system call, the event loop, the server.

Prints one JSON line: ``us_per_message`` (median and best of ``--rounds``), ``read``, ``messages``,
``loadavg``. Compare revisions back to back (``PYTHONPATH=<other worktree>/src``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.imap_fetch import make_messages, render_fetch
from tests.fixtures.tls import make_cert

from mailport.imap.models import FetchedMessage
from mailport.imap.protocol import ImapProtocol, PendingCommand
from mailport.net.tls_layer import TLSLayer


class MemoryServer:
    """A server-side TLS endpoint in memory; it is also the client's plain transport."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_side=True)

    # the few transport methods TLSLayer calls
    def write(self, data: bytes) -> None:
        self.incoming.write(bytes(data))

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default

    def abort(self) -> None:
        pass

    close = abort


def deliver(layer: TLSLayer, ciphertext: bytes, read: int) -> None:
    """Hand ``ciphertext`` to the layer as the event loop would, ``read`` bytes at a time."""
    view = memoryview(ciphertext)
    for offset in range(0, len(view), read):
        piece = view[offset : offset + read]
        layer.get_buffer(len(piece))[: len(piece)] = piece
        layer.buffer_updated(len(piece))


async def one_round(
    server_context: ssl.SSLContext, client_context: ssl.SSLContext, replay: bytes, read: int, count: int
) -> float:
    server = MemoryServer(server_context)
    proto = ImapProtocol(max_literal=64 << 20, on_untagged=lambda *_: None, on_lost=lambda _: None)
    layer = TLSLayer(proto)
    layer.connection_made(server)  # type: ignore[arg-type]
    handshake = asyncio.ensure_future(
        layer.start_tls(client_context, server_hostname="localhost", timeout=10)
    )
    while not handshake.done():
        await asyncio.sleep(0)
        try:
            server.tls.do_handshake()
        except ssl.SSLWantReadError:
            pass
        if server.outgoing.pending:
            deliver(layer, server.outgoing.read(), read)
    handshake.result()
    server.tls.write(b"* OK ready\r\n")
    deliver(layer, server.outgoing.read(), read)
    server.tls.write(replay)
    ciphertext = server.outgoing.read()

    command = PendingCommand(b"A1", asyncio.get_running_loop().create_future(), frozenset([b"FETCH"]))
    fetched: list[FetchedMessage] = []
    command.fetched = fetched
    proto.current = command  # what ImapSession._run sets up for a UID FETCH
    proto.splitter.fetch_sink = fetched
    proto.splitter.fetch_route = proto.route
    layer.bulk(True)
    gc.collect()
    started = time.thread_time()
    deliver(layer, ciphertext, read)
    elapsed = time.thread_time() - started
    assert command.done.done() and len(fetched) == count and fetched[-1].uid == count and fetched[-1].raw
    return elapsed


async def run(args: argparse.Namespace) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="mailport-bench-cpu-") as directory:
        pem, _, _ = make_cert(Path(directory), "server", names=["localhost"])
        server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_context.load_cert_chain(pem.cert, pem.key)
        client_context = ssl.create_default_context(cafile=str(pem.cert))
    replay = render_fetch(make_messages(args.messages)) + b"A1 OK done\r\n"
    seconds = [
        await one_round(server_context, client_context, replay, args.read, args.messages)
        for _ in range(args.rounds)
    ]
    per_message = [s / args.messages * 1e6 for s in seconds]
    return {
        "messages": args.messages,
        "read": args.read,
        "us_per_message": {
            "median": round(statistics.median(per_message), 2),
            "best": round(min(per_message), 2),
        },
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument(
        "--read", type=int, default=256 * 1024, help="bytes per read (the layer's receive buffer)"
    )
    print(json.dumps(asyncio.run(run(parser.parse_args()))))


if __name__ == "__main__":
    main()
