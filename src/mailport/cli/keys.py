"""``mailport keys …``: make an encryption key, and re-encrypt stored secrets under the first key.

Rotation: put the new key first in ``MAILPORT_SECRET_KEYS`` (``new,old``), restart the service,
run ``mailport keys rotate``, then drop the old key.
"""

from __future__ import annotations

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from mailport.bootstrap import Services
from mailport.cli.services import run_with_services
from mailport.crypto import generate_key
from mailport.store.rotation import RotationReport, count_secret_rows, rotate_secrets

app = typer.Typer(help="Encryption keys for stored secrets.", no_args_is_help=True)


@app.command("generate")
def generate() -> None:
    """Print a new random key for MAILPORT_SECRET_KEYS."""
    typer.echo(generate_key())


@app.command("rotate")
def rotate(
    batch_size: int = typer.Option(200, min=1, max=10_000, help="Rows per transaction."),
) -> None:
    """Re-encrypt every stored secret under the first key (online; safe to interrupt and re-run)."""

    async def action(services: Services) -> RotationReport:
        total = await count_secret_rows(services.database)
        with Progress(
            TextColumn("re-encrypting"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            transient=False,
        ) as bar:
            task = bar.add_task("rotate", total=total)
            return await rotate_secrets(
                services.database,
                services.key_ring,
                batch_size=batch_size,
                progress=lambda n: bar.advance(task, n),
            )

    report = run_with_services(action)
    typer.echo(
        f"rotated {report.values_rotated} secrets in {report.rows_rotated} rows "
        f"({report.rows_seen - report.rows_rotated} already current"
        + (f", {report.rows_changed_meanwhile} changed meanwhile" if report.rows_changed_meanwhile else "")
        + "); every secret is now under the first key"
    )
