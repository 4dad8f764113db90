"""``mailport worker``: the mailbox watchers, the webhook dispatcher, the retention janitor and
the send worker, without the API (run one or several beside an API-only ``mailport serve`` with
``MAILPORT_WATCHERS=false``; leases keep two processes from watching the same mailbox).
SIGTERM/SIGINT stop it gracefully: chunks in progress commit."""

from __future__ import annotations

import asyncio
import signal

import typer

from mailport.bootstrap import build
from mailport.config import load_settings
from mailport.logs import configure_logging
from mailport.runtime import Runtime


async def run_worker(*, stop: asyncio.Event | None = None) -> None:
    settings = load_settings()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    services = await build(settings)
    runtime = Runtime(services)  # all of it: watchers, dispatcher, janitor and sending
    try:
        await runtime.start()
        assert runtime.orchestrator is not None
        typer.echo(f"mailport worker: watching {runtime.orchestrator.running()} mailboxes", err=True)
        await stop.wait()
    finally:
        await runtime.stop()
        await services.aclose()


def worker() -> None:
    """Run the mailbox watchers (no API) until interrupted."""
    configure_logging(load_settings().log_level)
    asyncio.run(run_worker())  # its build() is the preflight: a bad configuration is one line
