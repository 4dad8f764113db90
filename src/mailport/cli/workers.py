"""``mailport workers …``: the fleet of worker processes as the database knows it — who is alive,
what each holds, how hard it works (the CLI twin of ``GET /v1/workers``; docs/fleet.md)."""

from __future__ import annotations

from datetime import datetime

import typer

from mailport.bootstrap import Services
from mailport.cli.services import print_json, run_with_services
from mailport.cli.tables import print_table
from mailport.clock import utc_now
from mailport.fleet import view

app = typer.Typer(help="The worker processes of the fleet (membership, load, health).", no_args_is_help=True)


def _age(then: datetime, now: datetime) -> str:
    """``12s``, ``3m``, ``2h``: how long ago."""
    seconds = max(0, int((now - then).total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"


@app.command("list")
def list_workers(as_json: bool = typer.Option(False, "--json", help="Print GET /v1/workers's JSON.")) -> None:
    """List the registered workers, dead ones included (alive: no)."""
    now = utc_now()

    async def action(services: Services) -> view.WorkerList:
        return await view.list_workers(services.database, now=now)

    found = run_with_services(action)
    if as_json:
        print_json(found.model_dump(mode="json"))
        return
    print_table(
        ("id", "host", "state", "alive", "mailboxes", "connects/min", "heartbeat"),
        [
            (
                w.id,
                w.host,
                w.state,
                "yes" if w.alive else "no",
                str(w.mailboxes),
                f"{w.connects_per_minute:g}",
                f"{_age(w.heartbeat_at, now)} ago",
            )
            for w in found.workers
        ],
    )


@app.command("show")
def show(worker_id: str = typer.Argument(..., help="The worker's id (host:pid:nonce), as listed.")) -> None:
    """A worker's details and the ids of the mailboxes it holds, as JSON."""

    async def action(services: Services) -> view.WorkerDetail:
        return await view.get_worker(services.database, worker_id, now=utc_now())

    print_json(run_with_services(action).model_dump(mode="json"))
