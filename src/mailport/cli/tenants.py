"""``mailport tenants …``: create tenants, list them, manage their API keys."""

from __future__ import annotations

import typer

from mailport.bootstrap import Services
from mailport.cli.services import print_json, run_with_services
from mailport.cli.tables import print_table

app = typer.Typer(help="Tenants (organisations) and their API keys.", no_args_is_help=True)
keys_app = typer.Typer(help="A tenant's API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@app.command("create")
def create(
    name: str = typer.Argument(..., help="A unique name for the organisation."),
    as_json: bool = typer.Option(False, "--json", help="Print {id, name, api_key} as JSON."),
) -> None:
    """Create a tenant and print its API key (shown this once)."""

    async def action(services: Services) -> tuple[str, str, str]:
        tenant, key = await services.tenants.create_tenant(name.strip())
        return tenant.id, tenant.name, key.reveal()

    tenant_id, tenant_name, api_key = run_with_services(action)
    if as_json:
        print_json({"id": tenant_id, "name": tenant_name, "api_key": api_key})
    else:
        typer.echo(f"tenant {tenant_id} ({tenant_name})")
        typer.echo(f"API key (shown once, store it now): {api_key}")


@app.command("list")
def list_tenants(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List tenants."""

    async def action(services: Services) -> list[dict[str, str]]:
        rows: list[dict[str, str]] = []
        after: str | None = None
        while True:
            page = await services.tenants.repository.page(after=after, limit=200)
            rows += [{"id": t.id, "name": t.name, "created_at": t.created_at.isoformat()} for t in page]
            if len(page) < 200:
                return rows
            after = page[-1].id

    rows = run_with_services(action)
    if as_json:
        print_json(rows)
        return
    print_table(("id", "name", "created"), [(row["id"], row["name"], row["created_at"]) for row in rows])


@app.command("delete")
def delete(tenant_id: str = typer.Argument(..., help="The tenant's id.")) -> None:
    """Delete a tenant with its API keys and mailboxes."""
    run_with_services(lambda services: services.tenants.delete(tenant_id))
    typer.echo(f"deleted {tenant_id}")


@keys_app.command("create")
def key_create(
    tenant_id: str = typer.Argument(..., help="The tenant's id."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Create another API key for a tenant (shown this once)."""

    async def action(services: Services) -> dict[str, str]:
        await services.tenants.repository.get(tenant_id)
        key, plaintext = await services.tenants.create_key(tenant_id)
        return {"id": key.id, "prefix": key.prefix, "api_key": plaintext.reveal()}

    result = run_with_services(action)
    if as_json:
        print_json(result)
    else:
        typer.echo(f"key {result['id']} (shown once, store it now): {result['api_key']}")


@keys_app.command("list")
def key_list(
    tenant_id: str = typer.Argument(..., help="The tenant's id."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List a tenant's API keys (prefix only)."""

    async def action(services: Services) -> list[dict[str, str | None]]:
        await services.tenants.repository.get(tenant_id)
        return [
            {
                "id": k.id,
                "prefix": k.prefix,
                "created_at": k.created_at.isoformat(),
                "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None,
            }
            for k in await services.tenants.repository.list_keys(tenant_id)
        ]

    rows = run_with_services(action)
    if as_json:
        print_json(rows)
        return
    print_table(
        ("id", "prefix", "created", "revoked"),
        [
            (str(row["id"]), f"{row['prefix']}…", str(row["created_at"]), row["revoked_at"] or "")
            for row in rows
        ],
    )


@keys_app.command("revoke")
def key_revoke(
    tenant_id: str = typer.Argument(..., help="The tenant's id."),
    key_id: str = typer.Argument(..., help="The key's id (see `mailport tenants keys list`)."),
) -> None:
    """Revoke an API key: requests with it are refused from now on."""

    async def action(services: Services) -> None:
        await services.tenants.repository.revoke_key(tenant_id, key_id, now=services.tenants.now())

    run_with_services(action)
    typer.echo(f"revoked {key_id}")
