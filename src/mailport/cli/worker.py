"""``mailport worker``: the mailbox watchers, the webhook dispatcher and the retention janitor,
without the API (run one or several beside an API-only ``mailport serve`` with
``MAILPORT_WATCHERS=false``; leases keep two processes from watching the same mailbox).
SIGTERM/SIGINT stop it gracefully: chunks in progress commit."""

from __future__ import annotations

import asyncio
import signal

import typer

from mailport.bootstrap import build
from mailport.config import load_settings
from mailport.janitor import start_janitor
from mailport.logs import configure_logging


async def run_worker(*, stop: asyncio.Event | None = None) -> None:
    from mailport.sync import Orchestrator

    settings = load_settings()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    services = await build(settings)
    orchestrator = Orchestrator(services, max_concurrent_connects=settings.max_concurrent_connects)
    dispatcher = None
    janitor = None
    try:
        await orchestrator.start()
        # webhooks too (the dispatcher's own lease keeps it to one process per database)
        from mailport.delivery import start_dispatcher

        dispatcher = await start_dispatcher(services)
        janitor = start_janitor(services.database, settings)  # retention: the hourly purge
        typer.echo(f"mailport worker: watching {orchestrator.running()} mailboxes", err=True)
        await stop.wait()
    finally:
        if janitor is not None:
            await janitor.stop()
        if dispatcher is not None:
            await dispatcher.stop()
        await orchestrator.stop()
        await services.aclose()


def worker() -> None:
    """Run the mailbox watchers (no API) until interrupted."""
    configure_logging(load_settings().log_level)
    asyncio.run(run_worker())  # its build() is the preflight: a bad configuration is one line
