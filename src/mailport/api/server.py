"""How ``mailport serve`` runs the app: uvicorn, with the limits a public server needs.

uvicorn alone waits forever for a request's headers (its keep-alive timeout only starts after a
response), accepts connections until the process runs out of file descriptors, and then the
asyncio accept loop logs a traceback per failed ``accept()`` — thousands a second. So:

* **Header and body deadlines.** A connection must send its request line and headers within
  ``MAILPORT_HEADER_TIMEOUT`` of connecting (or of starting its next request) and the body within
  ``MAILPORT_BODY_TIMEOUT`` after them; otherwise it is closed. The request line and headers
  may take :data:`MAX_HEADER_BYTES` (httptools takes any amount), then 431.
* **A connection cap.** At ``MAILPORT_MAX_CONNECTIONS`` the connection that has waited longest for
  its request headers (or sat idle between requests) is closed to make room; when every
  connection is busy with a request, the newcomer gets 503 ``server_busy``. Slow clients thus
  cannot lock out a quick one such as a ``/healthz`` probe.
* **File descriptors.** The soft ``RLIMIT_NOFILE`` is raised to the hard limit at start-up, and
  the cap is lowered (with a warning) to leave :data:`FD_RESERVE` descriptors for everything
  else. If ``accept()`` still fails for lack of descriptors (something else took them), the
  accept loop stops until its retry (:class:`ServingLoop`), waiting connections are closed to
  make room, and the error is logged once per :data:`LOG_INTERVAL` seconds with a count.
* **The address.** The socket is bound before anything says "listening"; a port in use is one
  :class:`~mailport.errors.AddressInUseError` naming the process that holds it, when visible.

The HTTP parser is uvicorn's httptools protocol; the subclass adds only the deadlines and the cap
(uvicorn has neither: its issue #157 has asked for request-start and request-complete timeouts
since 2018).
"""

from __future__ import annotations

import asyncio
import errno
import itertools
import json
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from mailport.api.app import create_app
from mailport.api.listening import listen
from mailport.bootstrap import build
from mailport.config import Settings
from mailport.errors import (
    RequestHeadersTooLargeError,
    ServerBusyError,
)

log = logging.getLogger(__name__)

LOG_INTERVAL = 10.0  # seconds between two log lines about the same repeated problem
_OUT_OF_DESCRIPTORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
MAX_HEADER_BYTES = 64 * 1024  # request line and headers; then 431 request_headers_too_large
FD_RESERVE = 100  # descriptors kept for the database, mail servers and webhooks
ACCEPTS_PER_ROUND = 16  # the cap may be overshot by about three rounds (connections being set up)


# --------------------------------------------------------------------------- logging


class RepeatFilter(logging.Filter):
    """Lets the first record of a kind through, then one per ``interval`` with a count of the
    ones it held back: a flood of identical errors becomes a line every few seconds."""

    def __init__(
        self, interval: float = LOG_INTERVAL, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self.interval = interval
        self._clock = clock
        self._seen: dict[tuple[str, int, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.levelno, str(record.msg)[:50])  # asyncio's messages embed reprs
        now = self._clock()
        last, held = self._seen.get(key, (None, 0))
        if last is not None and now - last < self.interval:
            self._seen[key] = (last, held + 1)
            return False
        if len(self._seen) >= 1000:  # messages with variable text must not grow this forever
            self._seen.clear()
        self._seen[key] = (now, 0)
        if held:
            record.msg = f"{record.msg} [{held} more like this in the last {self.interval:.0f}s]"
        return True


def install_repeat_filter(*names: str, interval: float = LOG_INTERVAL) -> RepeatFilter:
    """One :class:`RepeatFilter` on each named logger (records are filtered where they are logged)."""
    repeat = RepeatFilter(interval)
    for name in names:
        logging.getLogger(name).addFilter(repeat)
    return repeat


# --------------------------------------------------------------------------- connections


@dataclass(frozen=True)
class ConnectionLimits:
    max_connections: int
    header_timeout: float
    body_timeout: float

    @classmethod
    def from_settings(cls, settings: Settings, *, open_files: int) -> ConnectionLimits:
        """The configured limits, the cap lowered so that HTTP clients never take the descriptors
        the database, mail servers and webhooks need."""
        cap = max(8, min(settings.max_connections, open_files - FD_RESERVE))
        return cls(cap, settings.header_timeout, settings.body_timeout)


@dataclass
class WaitingConnections:
    """Connections waiting for a request's headers or idle between requests, oldest first:
    the ones to close when room is needed (a connection in a request is never among them)."""

    order: dict[BoundedHttpProtocol, None] = field(default_factory=dict)

    def add(self, connection: BoundedHttpProtocol) -> None:
        self.order.pop(connection, None)
        self.order[connection] = None

    def discard(self, connection: BoundedHttpProtocol) -> None:
        self.order.pop(connection, None)

    def close_oldest(self, count: int) -> int:
        oldest = list(itertools.islice(self.order, count))
        for connection in oldest:
            self.discard(connection)
            connection.transport.close()
        return len(oldest)


def _raw_error(status_line: bytes, error: dict[str, Any]) -> bytes:
    body = json.dumps(error).encode()
    head = (
        b"HTTP/1.1 " + status_line + b"\r\ncontent-type: application/json\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n"
    )
    return head + body


class BoundedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the header and body deadlines, the header budget and the
    connection cap."""

    limits: ClassVar[ConnectionLimits]
    waiting: ClassVar[WaitingConnections]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._awaiting_headers = False
        self._header_bytes = 0  # received while awaiting headers

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        _no_delay(transport)
        if len(self.connections) > self.limits.max_connections and not self.waiting.close_oldest(1):
            busy = ServerBusyError(f"{len(self.connections) - 1} connections are open (the limit)")
            self.transport.write(_raw_error(b"503 Service Unavailable", busy.to_dict()))
            self.transport.close()
            return
        self._await_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self.waiting.discard(self)
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._awaiting_headers and not self.transport.is_closing():
            self._header_bytes += len(data)
            if self._header_bytes > MAX_HEADER_BYTES:  # httptools itself takes any amount
                too_large = RequestHeadersTooLargeError(
                    f"the request headers are larger than {MAX_HEADER_BYTES} bytes"
                )
                self.transport.write(_raw_error(b"431 Request Header Fields Too Large", too_large.to_dict()))
                self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._awaiting_headers:  # the next request on a kept-alive connection
            self._await_headers()

    def on_headers_complete(self) -> None:
        self._awaiting_headers = False
        self.waiting.discard(self)
        self._arm(self.limits.body_timeout)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and not self._awaiting_headers and not self.pipeline:
            self.waiting.add(self)  # idle on keep-alive: uvicorn's keep-alive timeout runs

    def _await_headers(self) -> None:
        self._awaiting_headers = True
        self._header_bytes = 0
        self.waiting.add(self)
        self._arm(self.limits.header_timeout)

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            log.debug("closing a connection that did not send its request in time")
            self.transport.close()


def _no_delay(transport: asyncio.BaseTransport) -> None:
    """Send each response at once (TCP_NODELAY). asyncio sets it only on sockets made with
    ``proto=IPPROTO_TCP``; :func:`listen`'s ``socket.create_server`` makes them with ``proto=0``,
    so without this a response written in two parts (uvicorn writes the head, then the body) waited
    for the client's delayed ACK: about 40 ms on every request of a kept-alive connection."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:  # the client is gone already
            pass


def bounded_protocol(limits: ConnectionLimits) -> type[BoundedHttpProtocol]:
    """A protocol class of its own for one server (its limits and its waiting connections)."""
    return type(
        "MailportHttpProtocol", (BoundedHttpProtocol,), {"limits": limits, "waiting": WaitingConnections()}
    )


class AcceptErrorHandler:
    """The event loop's exception handler: ``accept()`` out of descriptors closes the older half
    of the waiting connections (the loop retries a second later) and is logged through the repeat
    filter without a traceback; anything else goes to asyncio's default handler."""

    def __init__(self, protocol: type[BoundedHttpProtocol]) -> None:
        self.protocol = protocol

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        message = context.get("message", "")
        if not (isinstance(exc, OSError) and exc.errno in _OUT_OF_DESCRIPTORS and "accept" in message):
            loop.default_exception_handler(context)
            return
        waiting = self.protocol.waiting
        closed = waiting.close_oldest((len(waiting.order) + 1) // 2)
        log.error(
            "cannot accept connections: %s (closed %d waiting connections to make room); "
            "raise the open-file limit (ulimit -n) or lower MAILPORT_MAX_CONNECTIONS",
            exc.strerror,
            closed,
        )


class ServingLoop(asyncio.SelectorEventLoop):
    """asyncio's selector loop (not uvloop: the IMAP client needs asyncio's transports), with an
    accept loop that stops at the first ``accept()`` finding no descriptor. CPython's own goes on
    calling ``accept()`` for the whole backlog (2048 under uvicorn), reporting every failure and
    scheduling a retry for each: thousands of errors a second, a busy CPU, and a traceback per
    stale retry at shutdown (CPython gh-151615, fixed only in later releases). It also accepts at
    most :data:`ACCEPTS_PER_ROUND` connections per round, so the connection cap (checked when a
    connection is set up, a loop iteration or two later) is never overshot by a whole backlog."""

    def _accept_connection(
        self,
        protocol_factory: Any,
        sock: Any,
        sslcontext: Any = None,
        server: Any = None,
        backlog: int = 100,
        *rest: Any,
        **options: Any,
    ) -> None:
        for _ in range(min(backlog, ACCEPTS_PER_ROUND)):
            pending = len(self._ready)  # type: ignore[attr-defined]
            super()._accept_connection(protocol_factory, sock, sslcontext, server, 1, *rest, **options)  # type: ignore[misc]
            if sock.fileno() not in self._selector.get_map():  # type: ignore[attr-defined]
                return  # out of descriptors: asyncio removed the reader and scheduled one retry
            if len(self._ready) == pending:  # type: ignore[attr-defined]
                return  # nothing left to accept (an accepted connection schedules its set-up)

    def _start_serving(self, protocol_factory: Any, sock: Any, *args: Any, **options: Any) -> None:
        if sock.fileno() == -1:
            return  # the server closed while a retry after running out of descriptors was pending
        super()._start_serving(protocol_factory, sock, *args, **options)  # type: ignore[misc]


# --------------------------------------------------------------------------- start-up


def raise_open_file_limit() -> int:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit; returns the soft limit in force."""
    try:
        import resource
    except ImportError:  # not a POSIX system: nothing to raise
        return 1 << 16
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    if soft == resource.RLIM_INFINITY or target <= soft:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):
        return soft
    return target


def run(settings: Settings, *, on_listening: Callable[[str], None]) -> None:
    """``mailport serve``: :func:`serve` on a :class:`ServingLoop`."""
    with asyncio.Runner(loop_factory=ServingLoop) as runner:
        runner.run(serve(settings, on_listening=on_listening))


async def serve(settings: Settings, *, on_listening: Callable[[str], None]) -> None:
    """Run the service until SIGINT/SIGTERM: bind, build the services once, then serve."""
    limits = ConnectionLimits.from_settings(settings, open_files=raise_open_file_limit())
    if limits.max_connections < settings.max_connections:
        log.warning(
            "the open-file limit allows %d HTTP connections, not MAILPORT_MAX_CONNECTIONS=%d "
            "(%d descriptors are kept for the database, mail servers and webhooks): raise `ulimit -n`",
            limits.max_connections,
            settings.max_connections,
            FD_RESERVE,
        )
    protocol = bounded_protocol(limits)
    asyncio.get_running_loop().set_exception_handler(AcceptErrorHandler(protocol))
    install_repeat_filter("asyncio", "uvicorn.error", __name__)
    sock = listen(settings.host, settings.port)
    try:
        services = await build(settings)
        try:
            app = create_app(services=services)
            # the app runs the background work here too (mailport.runtime; no watchers with
            # MAILPORT_WATCHERS=false)
            app.state.serve = True
            config = uvicorn.Config(
                app,
                http=protocol,
                timeout_keep_alive=settings.keep_alive_timeout,
                log_config=None,
                access_log=False,
                lifespan="on",
            )
            url = f"http://{settings.host}:{settings.port}"
            await _Server(config, on_listening=lambda: on_listening(url)).serve(sockets=[sock])
        finally:
            await services.aclose()
    finally:
        sock.close()


class _Server(uvicorn.Server):
    """uvicorn's server, saying "listening" only once it is (after the app's start-up)."""

    def __init__(self, config: uvicorn.Config, *, on_listening: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_listening = on_listening

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self._on_listening()
