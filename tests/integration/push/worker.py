"""Another process holding watchers: an orchestrator running the fake push connector, on the
database of ``MAILPORT_DATABASE_URL``, reporting on stdout (``caught_up <mailbox>``, ``woken
<mailbox>``) until SIGTERM. Run as ``python -m tests.integration.push.worker``."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator

from mailport.bootstrap import build
from mailport.config import Settings
from mailport.connectors.base import Batch, Cursor
from mailport.sync import Orchestrator, WatcherOptions
from tests.connectors.push_fake import FakePushConnector


class ReportingConnector(FakePushConnector):
    async def fetch_since(self, cursor: Cursor, *, chunk: int = 200) -> AsyncIterator[Batch]:
        async for batch in super().fetch_since(cursor, chunk=chunk):
            yield batch
        print(f"caught_up {self.mailbox.id}", flush=True)

    def wake(self) -> None:
        super().wake()
        print(f"woken {self.mailbox.id}", flush=True)


async def main() -> None:
    services = await build(Settings(), migrate=False)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    orchestrator = Orchestrator(
        services,
        owner="push-test-worker",
        connector_factory=ReportingConnector,
        reconcile_interval=0.2,
        options=WatcherOptions(backoff_base=0.2, backoff_cap=1.0),
    )
    await orchestrator.start()
    print("ready", flush=True)
    try:
        await stop.wait()
    finally:
        await orchestrator.stop()
        await services.aclose()


if __name__ == "__main__":
    asyncio.run(main())
