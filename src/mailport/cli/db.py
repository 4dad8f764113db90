"""``mailport db …``: apply migrations explicitly (PostgreSQL in production) and show the schema."""

from __future__ import annotations

import asyncio

import typer

from mailport.bootstrap import load_keys
from mailport.cli.services import load_settings
from mailport.store import current_revision, head_revision, open_database, upgrade, verify_key_ring

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
