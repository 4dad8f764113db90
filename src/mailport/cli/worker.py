"""``mailport worker``: the mailbox watchers, the webhook dispatcher, the retention janitor and
the send worker, without the API (run one or several beside an API-only ``mailport serve`` with
``MAILPORT_WATCHERS=false``; ``MAILPORT_WORKER_PARTS`` picks some of them, e.g. delivery in a
process of its own; the live workers divide the mailboxes among them by weight,
:mod:`mailport.fleet.assignment`, and leases keep two from watching the same one).
SIGTERM/SIGINT stop it gracefully: the worker is marked draining (the others take its mailboxes
at once), its chunks in progress commit, its leases are released, then it deregisters. With
``MAILPORT_WORKER_PORT`` it also serves ``/healthz``, ``/readyz`` and ``/metrics``
(:mod:`mailport.api.worker_http`)."""

from __future__ import annotations

import asyncio
import signal
import socket

import typer

from mailport.api.worker_http import WorkerHttp, start_worker_http, worker_metrics
from mailport.bootstrap import build
from mailport.config import load_settings
from mailport.delivery.process import ParentLink
from mailport.event_loop import loop_name, worker_loop
from mailport.logs import configure_logging
from mailport.runtime import Runtime


async def run_worker(*, stop: asyncio.Event | None = None) -> None:
    settings = load_settings()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    services = await build(settings)
    # started by `mailport serve` (MAILPORT_DELIVERY_PROCESS): woken by it, stopped by its exit
    link = ParentLink.from_environment(services.events, stop)
    runtime = Runtime.for_worker(services, parent_wakes=link is not None)
    http: WorkerHttp | None = None
    try:
        if link is not None:
            link.start()
        if settings.worker_port is not None:  # up before the parts: /readyz says 503 until they run
            http = await start_worker_http(
                settings.host,
                settings.worker_port,
                ready=runtime.readiness,
                ping=services.database.ping,
            )
        await runtime.start()
        if link is not None:
            link.ready()
        orchestrator = runtime.orchestrator
        if orchestrator is not None:
            worker_metrics(orchestrator.owner, socket.gethostname(), lambda: len(orchestrator.watchers))
            typer.echo(f"mailport worker: watching {orchestrator.running()} mailboxes", err=True)
        elif runtime.membership is not None:  # registered with its parts: no mailboxes
            worker_metrics(runtime.membership.worker_id, socket.gethostname(), lambda: 0)
        parts = ", ".join(settings.worker_parts)
        typer.echo(f"mailport worker: running {parts} ({loop_name(loop)})", err=True)
        await stop.wait()
    finally:
        await runtime.stop()
        if link is not None:
            link.close()
        if http is not None:
            await http.stop()
        await services.aclose()


def worker() -> None:
    """Run the mailbox watchers (no API) until interrupted."""
    settings = load_settings()
    configure_logging(settings.log_level)
    with asyncio.Runner(loop_factory=worker_loop(settings.event_loop, settings.worker_parts)) as runner:
        runner.run(run_worker())  # its build() is the preflight: a bad configuration is one line
