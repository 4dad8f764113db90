"""``mailport apply FILE`` and ``mailport export``: tenants and their accounts as a file.

``apply`` prints the plan (``+`` create, ``~`` change, ``-`` delete) and a summary line, and
carries it out unless ``--dry-run``. A refusal (a bad file, an inline secret, a reference that
names nothing, a change the service cannot make) is one line and nothing is written. See
docs/accounts.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from mailport.bootstrap import Services
from mailport.cli.services import print_json, run_with_services
from mailport.declare.execute import Outcome, execute, preflight
from mailport.declare.export import export_file, render
from mailport.declare.links import WaitingMailbox, connect_links
from mailport.declare.load import load_file
from mailport.declare.plan import Context, Plan, build_plan
from mailport.declare.state import read_state
from mailport.errors import InputError, NotFoundError
from mailport.web.links import MAX_EXPIRES_IN, MIN_EXPIRES_IN

DEFAULT_LINK_EXPIRES = 24 * 3600


def apply_command(
    file: Path = typer.Argument(..., metavar="FILE", help="The accounts file (YAML or JSON)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print what would change; write nothing."),
    prune: bool = typer.Option(
        False,
        "--prune",
        help="Delete the mailboxes, webhooks and OAuth apps of the file's tenants it no longer lists.",
    ),
    prune_tenants: bool = typer.Option(
        False, "--prune-tenants", help="With --prune: delete the tenants the file does not list, too."
    ),
    link_expires: int = typer.Option(
        DEFAULT_LINK_EXPIRES,
        "--link-expires",
        min=MIN_EXPIRES_IN,
        max=MAX_EXPIRES_IN,
        metavar="SECONDS",
        help="How long the printed connect links work.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the plan and the result as JSON."),
) -> None:
    """Make the service hold what FILE declares: tenants, JWT verifiers, mailboxes, webhooks, OAuth apps."""
    if prune_tenants and not prune:
        raise InputError(
            "--prune-tenants works with --prune", hint="Add --prune, or leave out --prune-tenants."
        )
    declared = load_file(file)  # refused here: nothing is opened, nothing written
    base_dir = file.resolve().parent

    async def action(services: Services) -> tuple[Plan, Outcome | None, list[WaitingMailbox]]:
        snapshot = await read_state(services)
        context = Context(
            base_dir=base_dir,
            registry=services.oauth.oauth.registry,
            api_providers=services.mailboxes.api_providers,
            prune=prune,
            prune_tenants=prune_tenants,
        )
        plan = build_plan(declared, snapshot, context)
        await preflight(services, plan)  # a host the guard refuses: refused before any write
        if dry_run:
            return plan, None, []
        tenant_ids = {name: state.tenant.id for name, state in snapshot.tenants.items()}
        outcome = await execute(services, plan, tenant_ids)
        if outcome.error is not None:
            return plan, outcome, []
        return plan, outcome, await connect_links(services, declared, tenant_ids, expires_in=link_expires)

    plan, outcome, waiting = run_with_services(action)
    if outcome is not None and outcome.error is not None:
        _report_failure(plan, outcome)
        raise outcome.error
    if as_json:
        print_json(_as_json(plan, dry_run=dry_run, waiting=waiting))
        return
    for change in plan.changes:
        typer.echo(change.line())
    for box in waiting:
        until = box.expires_at.isoformat()
        typer.echo(f"waiting for sign-in: {box.email} (tenant {box.tenant}): {box.url} (until {until})")
    typer.echo(_summary(plan, dry_run=dry_run))


def _summary(plan: Plan, *, dry_run: bool) -> str:
    if not plan.changes:
        return "no changes"
    made, changed, deleted = plan.count("+"), plan.count("~"), plan.count("-")
    if dry_run:
        return f"dry run: {made} to create, {changed} to change, {deleted} to delete (nothing written)"
    return f"applied: {made} created, {changed} changed, {deleted} deleted"


def _as_json(plan: Plan, *, dry_run: bool, waiting: list[WaitingMailbox]) -> dict[str, Any]:
    return {
        "dry_run": dry_run,
        "changes": [c.as_json() for c in plan.changes],
        "summary": {"create": plan.count("+"), "change": plan.count("~"), "delete": plan.count("-")},
        "connect_links": [
            {
                "tenant": w.tenant,
                "email": w.email,
                "mailbox_id": w.mailbox_id,
                "url": w.url,
                "expires_at": w.expires_at.isoformat(),
            }
            for w in waiting
        ],
    }


def _report_failure(plan: Plan, outcome: Outcome) -> None:
    """What was done before the failure, and where it stopped (the error line follows)."""
    for change in outcome.done:
        typer.echo(change.line())
    assert outcome.failed is not None
    typer.echo(
        f"stopped after {len(outcome.done)} of {len(plan.changes)} changes, at: {outcome.failed.line()} "
        "(run apply again once the cause is fixed)",
        err=True,
    )


def export_command(
    tenant: str | None = typer.Option(None, "--tenant", "-t", help="Only this tenant (name or id)."),
    output: Path | None = typer.Option(
        None, "--output", "-o", metavar="FILE", help="Write here instead of stdout."
    ),
    fmt: str | None = typer.Option(
        None, "--format", help="yaml or json (default: from -o's name, else yaml)."
    ),
) -> None:
    """Write the tenants, mailboxes, webhooks and OAuth apps as an accounts file (no secrets)."""
    chosen = fmt or ("json" if output is not None and output.suffix.lower() == ".json" else "yaml")
    if chosen not in ("yaml", "json"):
        raise InputError(f"--format: {chosen!r} is not yaml or json", field="format")

    async def action(services: Services) -> str:
        snapshot = await read_state(services)
        if tenant is not None:
            snapshot.tenants = {
                name: state for name, state in snapshot.tenants.items() if tenant in (name, state.tenant.id)
            }
            if not snapshot.tenants:
                raise NotFoundError(f"no tenant {tenant!r}", hint="See `mailport tenants list`.")
        return render(export_file(snapshot), fmt=chosen)

    text = run_with_services(action)
    if output is None:
        typer.echo(text, nl=False)
        return
    output.write_text(text, encoding="utf-8")
    typer.echo(f"wrote {output}", err=True)
