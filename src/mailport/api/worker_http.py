"""The HTTP port of ``mailport worker`` (``MAILPORT_WORKER_PORT``): ``/healthz``, ``/readyz`` and
``/metrics``, so that an orchestrator can probe a worker and Prometheus can scrape each one.

Why not the API app: a worker serves three fixed GET routes to probes and a scraper on a private
port; the FastAPI app would bring its routers, the web pages and their start-up for nothing. The
app here is a plain ASGI callable, served by uvicorn in the worker's own event loop (it reads the
orchestrator's state directly: no thread, no second process). uvicorn's signal capture is turned
off: SIGTERM belongs to the worker, which stops this server as part of its graceful stop.

* ``/healthz`` — 200 while the process answers;
* ``/readyz`` — 200 once the worker's parts run (its watchers watch, its webhook dispatcher
  runs: one check each, for the parts ``MAILPORT_WORKER_PARTS`` names) and the database
  answers, else 503;
* ``/metrics`` — the process's Prometheus metrics (:mod:`mailport.metrics`), among them
  ``mailport_worker_info{worker_id,host}`` and ``mailport_worker_mailboxes``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import Awaitable, Callable, Generator, Iterable
from typing import Any

import uvicorn

from mailport import __version__
from mailport.api.listening import listen
from mailport.metrics import CONTENT_TYPE_LATEST, WORKER_INFO, WORKER_MAILBOXES, render

log = logging.getLogger(__name__)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ROUTES = ("/healthz", "/readyz", "/metrics")  # what a worker's port answers (deploy files probe these)


class WorkerApp:
    """The ASGI app: ``ready`` says which of the worker's parts run, ``ping`` whether the
    database answers."""

    def __init__(self, *, ready: Callable[[], dict[str, bool]], ping: Callable[[], Awaitable[bool]]) -> None:
        self.ready = ready
        self.ping = ping

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # lifespan is off; websockets are not served
        if scope["method"] not in ("GET", "HEAD"):
            await _respond(
                send, 405, _error("method_not_allowed", "GET only"), headers=[(b"allow", b"GET, HEAD")]
            )
        elif scope["path"] == "/healthz":
            await _respond(send, 200, {"status": "ok", "version": __version__})
        elif scope["path"] == "/readyz":
            checks = {**self.ready(), "database": await self._ping()}
            ok = all(checks.values())
            await _respond(
                send, 200 if ok else 503, {"status": "ok" if ok else "unavailable", "checks": checks}
            )
        elif scope["path"] == "/metrics":
            await _send(send, 200, render(), CONTENT_TYPE_LATEST)
        else:
            await _respond(send, 404, _error("not_found", "a worker serves /healthz, /readyz and /metrics"))

    async def _ping(self) -> bool:
        try:
            return await asyncio.wait_for(self.ping(), timeout=5)
        except Exception:  # a probe's answer, never a 500
            return False


def _error(code: str, detail: str) -> dict[str, str]:
    return {"error": code, "detail": detail, "hint": "Probe /healthz or /readyz; scrape /metrics."}


async def _respond(
    send: Send, status: int, body: dict[str, Any], *, headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    await _send(send, status, json.dumps(body).encode(), "application/json", headers=headers)


async def _send(
    send: Send, status: int, body: bytes, content_type: str, *, headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    head = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode()), *headers]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: the worker owns SIGTERM/SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class WorkerHttp:
    """The worker's HTTP port, started and stopped with the worker."""

    def __init__(self, app: WorkerApp, sock: socket.socket) -> None:
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off")
        self._server = _Server(config)
        self._sock = sock
        self._task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        return int(self._sock.getsockname()[1])

    async def start(self) -> None:
        self._task = asyncio.create_task(self._server.serve(sockets=[self._sock]), name="worker-http")
        # uvicorn exposes start-up as a flag, not an event: poll it (milliseconds, once)
        while not self._server.started and not self._task.done():  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        if self._task.done():
            self._task.result()  # uvicorn failed to start: raise its error

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, timeout=5)
        self._sock.close()


def worker_metrics(worker_id: str, host: str, mailboxes: Callable[[], int]) -> None:
    """Name this worker in ``mailport_worker_info`` and read its mailbox count on each scrape."""
    WORKER_INFO.clear()
    WORKER_INFO.labels(worker_id=worker_id, host=host).set(1)
    WORKER_MAILBOXES.set_function(lambda: float(mailboxes()))


async def start_worker_http(
    host: str,
    port: int,
    *,
    ready: Callable[[], dict[str, bool]],
    ping: Callable[[], Awaitable[bool]],
) -> WorkerHttp:
    """Bind ``host:port`` (one clear error if taken) and serve the three routes."""
    bound = listen(host, port, backlog=64)
    # Re-wrapped, the socket knows its protocol (IPPROTO_TCP; create_server leaves 0), so asyncio
    # sets TCP_NODELAY on every accepted connection: uvicorn writes a response's head and body
    # apart, and without it each kept-alive request waited ~40 ms for the client's delayed ACK.
    # (a listening socket, not a connection: fromfd duplicates it with the protocol set)
    sock = socket.fromfd(bound.fileno(), bound.family, bound.type, socket.IPPROTO_TCP)
    bound.close()
    server = WorkerHttp(WorkerApp(ready=ready, ping=ping), sock)
    await server.start()
    log.info("worker HTTP on http://%s:%d (/healthz /readyz /metrics)", host, server.port)
    return server


__all__ = ["ROUTES", "WorkerApp", "WorkerHttp", "start_worker_http", "worker_metrics"]
