"""``mailport webhooks list|show|add|update|remove|deliveries|replay|backfill``: a tenant's
webhook endpoints from the command line.

Every command is one call of :attr:`Services.webhooks` (the calls the ``/v1/webhooks`` routes
make) on the configured database, and the request schemas of those routes validate the flags,
so the CLI accepts, refuses and answers as the API does (``host_not_allowed``, ``not_found`` …).
The signing secret is printed by ``add`` only, when mailport generated it, exactly as
``POST /v1/webhooks`` returns it once; nothing else ever prints it. A secret of your own is read
from stdin or an environment variable, never from an argument (shell history, ``ps``).
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from typing import Any, TypeVar

import typer
from pydantic import ValidationError

from mailport.bootstrap import Services
from mailport.cli.events import event_types
from mailport.cli.mailboxes import _input_error, _tenant_id
from mailport.cli.services import print_json, run_with_services
from mailport.cli.tables import print_table
from mailport.delivery.models import DeliveryStatus
from mailport.delivery.schemas import (
    DeliveryRead,
    WebhookCreate,
    WebhookCreated,
    WebhookRead,
    WebhookUpdate,
)
from mailport.errors import InputError

Request = TypeVar("Request", WebhookCreate, WebhookUpdate)

app = typer.Typer(help="A tenant's webhook endpoints, their deliveries and replay.", no_args_is_help=True)

TENANT = typer.Option(..., "--tenant", "-t", envvar="MAILPORT_TENANT", help="Tenant id or name.")
JSON = typer.Option(False, "--json", help="Print JSON (the API's shape).")
WEBHOOK = typer.Argument(..., help="The endpoint (whk_…), as `webhooks list` shows it.")
EVENTS_HELP = (
    "Event types, comma-separated (e.g. message.received,mailbox.error); `all` or left out: every "
    "type except the opt-in ones (docs/webhooks.md)."
)
SECRET_STDIN = typer.Option(False, "--secret-stdin", help="Read a signing secret (whsec_…) from stdin.")
SECRET_ENV = typer.Option(
    None, "--secret-env", metavar="NAME", help="Read a signing secret from this variable."
)
DESCRIPTION = typer.Option(None, "--description", help="A note for people (up to 200 characters).")
BATCH_SIZE_HELP = (
    "Up to N consecutive events of one mailbox in one request (1 to 100; 1: one event per "
    "request). See docs/webhooks.md, Batched delivery."
)
LIST_HEADERS = ("id", "url", "events", "batch", "status", "last success", "description")
DELIVERY_HEADERS = ("id", "event", "type", "mailbox", "status", "attempts", "last result", "created")


def _events(value: str | None) -> list[str] | None:
    """``--events a,b`` as a list; None for every (non-opt-in) type."""
    if value is None or value.strip() == "all":
        return None
    return event_types([value]) or []  # "" is refused by the schema: at least one type


def _read_secret(from_stdin: bool, env_name: str | None) -> str | None:
    if from_stdin and env_name:
        raise InputError("give either --secret-stdin or --secret-env, not both", field="secret")
    if from_stdin:
        return sys.stdin.readline().strip()
    if env_name:
        value = os.environ.get(env_name)
        if value is None:
            raise InputError(f"the environment variable {env_name} is not set", field="secret")
        return value
    return None


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if moment else ""


def _row(read: WebhookRead) -> tuple[str, ...]:
    return (
        read.id,
        read.url,
        ",".join(read.events) if read.events is not None else "all",
        str(read.batch_size),
        read.status if read.disabled_reason is None else f"{read.status} ({read.disabled_reason})",
        _when(read.last_success_at),
        read.description or "",
    )


def _show(read: WebhookRead) -> None:
    rows = [(header, cell) for header, cell in zip(LIST_HEADERS, _row(read), strict=True)]
    rows += [("failing since", _when(read.failing_since)), ("created", _when(read.created_at))]
    print_table(("", ""), [row for row in rows if row[1]], show_header=False)


def _parse(model: type[Request], body: dict[str, Any]) -> Request:
    """The flags as the route's request body, refused as the API refuses it (one line)."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise _input_error(exc) from None


@app.command("list")
def list_webhooks(tenant: str = TENANT, as_json: bool = JSON) -> None:
    """List the tenant's webhook endpoints (never their secrets)."""

    async def action(services: Services) -> list[WebhookRead]:
        tenant_id = await _tenant_id(services, tenant)
        found: list[WebhookRead] = []
        cursor: str | None = None
        while True:
            page = await services.webhooks.list(tenant_id, cursor=cursor, limit=200)
            found += [WebhookRead.model_validate(endpoint) for endpoint in page.items]
            if page.next_cursor is None:
                return found
            cursor = page.next_cursor

    rows = run_with_services(action)
    if as_json:
        print_json([row.model_dump(mode="json") for row in rows])
        return
    print_table(LIST_HEADERS, [_row(row) for row in rows])


@app.command("show")
def show(webhook_id: str = WEBHOOK, tenant: str = TENANT, as_json: bool = JSON) -> None:
    """Show one webhook endpoint (never its secret)."""

    async def action(services: Services) -> WebhookRead:
        tenant_id = await _tenant_id(services, tenant)
        return WebhookRead.model_validate(await services.webhooks.get(tenant_id, webhook_id))

    read = run_with_services(action)
    if as_json:
        print_json(read.model_dump(mode="json"))
    else:
        _show(read)


@app.command("add")
def add(
    url: str = typer.Argument(..., help="Where to POST events (https:// recommended)."),
    tenant: str = TENANT,
    events: str | None = typer.Option(None, "--events", metavar="TYPES", help=EVENTS_HELP),
    description: str | None = DESCRIPTION,
    secret_stdin: bool = SECRET_STDIN,
    secret_env: str | None = SECRET_ENV,
    backfill: bool = typer.Option(
        False, "--backfill", help="Also take the waiting events of its types that no endpoint owes."
    ),
    batch_size: int = typer.Option(1, "--batch-size", metavar="N", help=BATCH_SIZE_HELP),
    as_json: bool = JSON,
) -> None:
    """Add a webhook endpoint (validated like POST /v1/webhooks); a generated signing secret is
    printed this once."""
    body: dict[str, Any] = {
        "url": url,
        "events": _events(events),
        "description": description,
        "secret": _read_secret(secret_stdin, secret_env),
        "backfill": backfill,
        "batch_size": batch_size,
    }
    parsed = _parse(WebhookCreate, body)

    async def action(services: Services) -> WebhookCreated:
        tenant_id = await _tenant_id(services, tenant)
        endpoint, secret = await services.webhooks.create(tenant_id, parsed)
        read = WebhookRead.model_validate(endpoint)
        return WebhookCreated(**read.model_dump(), secret=secret.reveal() if secret is not None else None)

    created = run_with_services(action)
    if as_json:
        print_json(created.model_dump(mode="json"))
        return
    typer.echo(f"added {created.id} ({created.url})")
    if created.secret is not None:
        typer.echo(f"signing secret (shown once, store it now): {created.secret}")


@app.command("update")
def update(
    webhook_id: str = WEBHOOK,
    tenant: str = TENANT,
    url: str | None = typer.Option(None, "--url", help="A new URL (passes the SSRF guard again)."),
    events: str | None = typer.Option(None, "--events", metavar="TYPES", help=EVENTS_HELP),
    description: str | None = typer.Option(
        None, "--description", help='A new note ("" removes it; up to 200 characters).'
    ),
    enabled: bool | None = typer.Option(
        None, "--enable/--disable", help="Re-enable a disabled endpoint, or disable it."
    ),
    secret_stdin: bool = SECRET_STDIN,
    secret_env: str | None = SECRET_ENV,
    batch_size: int | None = typer.Option(None, "--batch-size", metavar="N", help=BATCH_SIZE_HELP),
    as_json: bool = JSON,
) -> None:
    """Change an endpoint's URL, events, description, batch size, signing secret or state (validated like
    PATCH /v1/webhooks/{id}); the secret is never printed."""
    body: dict[str, Any] = {}
    if url is not None:
        body["url"] = url
    if events is not None:
        body["events"] = _events(events)
    if description is not None:
        body["description"] = description or None
    if enabled is not None:
        body["enabled"] = enabled
    if batch_size is not None:
        body["batch_size"] = batch_size
    if (secret := _read_secret(secret_stdin, secret_env)) is not None:
        body["secret"] = secret
    if not body:
        raise InputError(
            "nothing to change: give --url, --events, --description, --batch-size, --enable/--disable "
            "or a secret"
        )
    patch = _parse(WebhookUpdate, body)

    async def action(services: Services) -> WebhookRead:
        tenant_id = await _tenant_id(services, tenant)
        return WebhookRead.model_validate(await services.webhooks.update(tenant_id, webhook_id, patch))

    changed = run_with_services(action)
    if as_json:
        print_json(changed.model_dump(mode="json"))
    else:
        typer.echo(f"updated {changed.id} ({changed.url}): {changed.status}")


@app.command("remove")
def remove(webhook_id: str = WEBHOOK, tenant: str = TENANT) -> None:
    """Delete an endpoint; the events it still owed go to the others that owe them, or to pull."""

    async def action(services: Services) -> None:
        await services.webhooks.delete(await _tenant_id(services, tenant), webhook_id)

    run_with_services(action)
    typer.echo(f"removed {webhook_id}")


@app.command("deliveries")
def deliveries(
    webhook_id: str = WEBHOOK,
    tenant: str = TENANT,
    status: DeliveryStatus | None = typer.Option(None, "--status", help="Only deliveries in this state."),
    limit: int = typer.Option(50, "--limit", "-n", min=1, max=200, help="How many a page."),
    cursor: str | None = typer.Option(None, "--cursor", help="Continue after the page that printed it."),
    as_json: bool = JSON,
) -> None:
    """Deliveries to the endpoint, newest first; the next page's cursor is printed on stderr."""

    async def action(services: Services) -> tuple[list[DeliveryRead], str | None]:
        tenant_id = await _tenant_id(services, tenant)
        page = await services.webhooks.deliveries(
            tenant_id, webhook_id, cursor=cursor, limit=limit, status=status
        )
        return [DeliveryRead.from_model(d) for d in page.items], page.next_cursor

    items, next_cursor = run_with_services(action)
    if as_json:
        print_json({"items": [d.model_dump(mode="json") for d in items], "next_cursor": next_cursor})
        return
    print_table(DELIVERY_HEADERS, [_delivery_row(d) for d in items])
    if next_cursor:
        typer.echo(f"more: --cursor {next_cursor}", err=True)


def _delivery_row(delivery: DeliveryRead) -> tuple[str, ...]:
    last = delivery.attempts[-1] if delivery.attempts else None
    result = ""
    if last is not None:
        result = " ".join(
            part for part in (last.result, str(last.status_code or ""), last.error or "") if part
        )
    return (
        delivery.id,
        delivery.event_id,
        delivery.event_type,
        delivery.mailbox_id or "",
        delivery.status,
        str(delivery.attempt_count),
        result,
        _when(delivery.created_at),
    )


@app.command("replay")
def replay(
    webhook_id: str = WEBHOOK,
    tenant: str = TENANT,
    delivery: str | None = typer.Option(
        None,
        "--delivery",
        metavar="ID",
        help="Replay this delivery (dlv_…) only; default: every dead letter.",
    ),
    as_json: bool = JSON,
) -> None:
    """Queue the endpoint's dead letters again (or one delivery), with a fresh 24-hour window."""

    async def action(services: Services) -> int:
        tenant_id = await _tenant_id(services, tenant)
        return await services.webhooks.replay(tenant_id, webhook_id, delivery_id=delivery)

    count = run_with_services(action)
    if as_json:
        print_json({"replayed": count})
    else:
        typer.echo(f"replayed {count} deliver{'y' if count == 1 else 'ies'}")


@app.command("backfill")
def backfill(webhook_id: str = WEBHOOK, tenant: str = TENANT, as_json: bool = JSON) -> None:
    """Hand the endpoint the waiting events of its types that no webhook endpoint owes."""

    async def action(services: Services) -> int:
        return await services.webhooks.backfill(await _tenant_id(services, tenant), webhook_id)

    count = run_with_services(action)
    if as_json:
        print_json({"queued": count})
    else:
        typer.echo(f"queued {count} event{'' if count == 1 else 's'}")
