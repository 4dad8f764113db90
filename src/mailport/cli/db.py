"""``mailport db …``: apply migrations explicitly (PostgreSQL in production), show the schema, and
apply the retention once (``purge``; ``mailport serve`` / ``worker`` do it every hour)."""

from __future__ import annotations

import asyncio

import typer

from mailport.bootstrap import Services, load_keys
from mailport.cli.services import print_json, run_with_services
from mailport.clock import utc_now
from mailport.config import load_settings
from mailport.store import current_revision, head_revision, open_database, upgrade, verify_key_ring
from mailport.store.retention import PurgeReport, purge

app = typer.Typer(help="The database schema.", no_args_is_help=True)


@app.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration to MAILPORT_DATABASE_URL (safe to run repeatedly)."""
    settings = load_settings()
    key_ring = load_keys(settings)

    async def action() -> tuple[str | None, str | None, str]:
        database = open_database(settings.effective_database_url)
        try:
            before = await current_revision(database)
            await upgrade(database)
            await verify_key_ring(database, key_ring)
            return before, await current_revision(database), database.url
        finally:
            await database.aclose()

    before, after, url = asyncio.run(action())
    typer.echo(f"{url}: schema {before or 'empty'} -> {after}")


@app.command("status")
def db_status() -> None:
    """Show the schema revision of the database and the one this version needs."""
    settings = load_settings()

    async def action() -> tuple[str | None, str]:
        database = open_database(settings.effective_database_url)
        try:
            return await current_revision(database), database.url
        finally:
            await database.aclose()

    current, url = asyncio.run(action())
    head = head_revision()
    state = "up to date" if current == head else "needs `mailport db upgrade`"
    typer.echo(f"{url}: schema {current or 'empty'}, this version needs {head} ({state})")


@app.command("purge")
def db_purge(
    dry_run: bool = typer.Option(False, "--dry-run", help="Count what would be removed; change nothing."),
    as_json: bool = typer.Option(False, "--json", help="Print the counts as JSON."),
) -> None:
    """Apply the retention now (MAILPORT_RETENTION_DAYS, MAILPORT_RAW_RETENTION_DAYS): print the
    rows removed per table."""
    settings = load_settings()

    async def action(services: Services) -> PurgeReport:
        return await purge(
            services.database,
            now=utc_now(),
            retention_days=settings.retention_days,
            raw_retention_days=settings.raw_retention_days,
            dry_run=dry_run,
        )

    report = run_with_services(action, settings=settings)
    if as_json:
        print_json({**report.counts(), "dry_run": dry_run})
    else:
        for name, count in report.counts().items():
            typer.echo(f"{name}: {count}")
    if dry_run:
        typer.echo("dry run: nothing was changed", err=True)
