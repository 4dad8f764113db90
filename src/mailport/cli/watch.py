"""``mailport watch MAILBOX_ID``: print a mailbox's events as JSON lines as they arrive (from
the event log; with ``--ingest`` this process also runs the watchers)."""

from __future__ import annotations

import asyncio
import json
import sys

import typer

from mailport.bootstrap import build
from mailport.config import load_settings
from mailport.errors import NotFoundError


async def _watch(mailbox_id: str, after: int | None, ingest: bool, acknowledge: bool) -> None:
    from mailport.sync.stream import watch

    services = await build(load_settings())
    try:
        try:
            await services.mailboxes.repository.get_by_id(mailbox_id)
        except NotFoundError:
            raise NotFoundError(
                f"no mailbox {mailbox_id!r}", hint="List mailboxes with `mailport mailboxes list`."
            ) from None
        async for event in watch(
            services=services, mailbox_id=mailbox_id, after=after, ingest=ingest, acknowledge=acknowledge
        ):
            sys.stdout.write(json.dumps(event.to_dict(), ensure_ascii=False) + "\n")
            sys.stdout.flush()
    finally:
        await services.aclose()


def watch_command(
    mailbox_id: str = typer.Argument(..., help="The mailbox (mbx_…)."),
    after: int | None = typer.Option(None, help="Start after this event seq (default: from now)."),
    ingest: bool = typer.Option(False, help="Also run the mailbox watchers in this process."),
    acknowledge: bool = typer.Option(
        False, "--ack", help="Acknowledge printed events (as the pull consumer `watch`)."
    ),
) -> None:
    """Print the mailbox's events as JSON lines as they arrive (Ctrl-C to stop)."""
    try:
        asyncio.run(_watch(mailbox_id, after, ingest, acknowledge))
    except KeyboardInterrupt:
        pass
