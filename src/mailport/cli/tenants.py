"""``mailport tenants …``: create tenants, list them, manage their API keys and the verifier of
their host application's user tokens (``mailport tenants jwt``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError
from pydantic_core import PydanticCustomError

from mailport.auth.schemas import JwtRead, JwtSettings
from mailport.bootstrap import Services
from mailport.cli.services import print_json, run_with_services
from mailport.cli.tables import print_table
from mailport.declare.secrets import parse_ref, resolve
from mailport.errors import InlineSecretError, InputError

app = typer.Typer(help="Tenants (organisations) and their API keys.", no_args_is_help=True)
keys_app = typer.Typer(help="A tenant's API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
jwt_app = typer.Typer(help="The verifier of a tenant's host-app user tokens (JWTs).", no_args_is_help=True)
app.add_typer(jwt_app, name="jwt")


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


# --- host-app JWT verifier ----------------------------------------------------------------


async def _tenant_by_id_or_name(services: Services, tenant: str) -> str:
    repository = services.tenants.repository
    found = await (repository.get(tenant) if tenant.startswith("ten_") else repository.get_by_name(tenant))
    return found.id


def read_secret_reference(reference: str, *, option: str) -> str | None:
    """The secret behind ``env:NAME`` or ``file:PATH`` (None for ``stored``: keep the stored one),
    read as ``mailport apply`` reads its file's references: never a secret typed on the command
    line (it would sit in the shell history and in every process listing)."""
    try:
        ref = parse_ref(reference)
    except PydanticCustomError:
        raise InlineSecretError(
            f"{option} takes env:NAME, file:PATH or stored; secrets are never given inline", field=option
        ) from None
    secret = resolve(ref, field=option, base_dir=Path.cwd())
    return None if secret is None else secret.reveal()


def _print_verifier(shown: JwtRead, as_json: bool) -> None:
    if as_json:
        print_json(shown.model_dump(mode="json"))
        return
    for name, value in shown.model_dump(mode="json").items():
        if value is not None:
            typer.echo(f"{name}: {', '.join(value) if isinstance(value, list) else value}")


@jwt_app.command("show")
def jwt_show(
    tenant: str = typer.Argument(..., help="The tenant's id or name."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show the tenant's verifier (never its secret: `has_secret`)."""

    async def action(services: Services) -> JwtRead:
        tenant_id = await _tenant_by_id_or_name(services, tenant)
        return JwtRead.of(await services.tenants.require_jwt(tenant_id))

    _print_verifier(run_with_services(action), as_json)


@jwt_app.command("set")
def jwt_set(
    tenant: str = typer.Argument(..., help="The tenant's id or name."),
    hs256_secret: str | None = typer.Option(
        None,
        "--hs256-secret",
        metavar="env:NAME|file:PATH|stored",
        help="The HS256 shared secret, by reference (stored: keep it).",
    ),
    jwks_url: str | None = typer.Option(None, "--jwks-url", help="An https URL serving the JWKS."),
    algorithm: list[str] = typer.Option([], "--algorithm", help="An accepted alg (repeatable)."),
    issuer: str | None = typer.Option(None, "--issuer", help="The `iss` the tokens carry."),
    audience: str | None = typer.Option(None, "--audience", help="Require this `aud`."),
    leeway: int = typer.Option(30, "--leeway", help="Seconds of clock skew allowed."),
    owner_claim: str = typer.Option("sub", "--owner-claim", help="The claim naming the user."),
    tenant_claim: str | None = typer.Option(None, "--tenant-claim", help="A claim naming the tenant."),
    tenant_value: str | None = typer.Option(
        None, "--tenant-value", help="What the tenant claim holds (default: the tenant id)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Set the tenant's verifier: an HS256 secret or a JWKS URL (exactly one)."""
    if (hs256_secret is None) == (jwks_url is None):
        raise InputError("give exactly one of --hs256-secret and --jwks-url", field="--hs256-secret")
    fields: dict[str, Any] = {
        "kind": "jwks" if jwks_url else "hs256",
        "jwks_url": jwks_url,
        "algorithms": algorithm or None,
        "issuer": issuer,
        "audience": audience,
        "leeway_seconds": leeway,
        "owner_claim": owner_claim,
        "tenant_claim": tenant_claim,
        "tenant_value": tenant_value,
    }
    if hs256_secret is not None and (secret := read_secret_reference(hs256_secret, option="--hs256-secret")):
        fields["secret"] = secret
    try:
        settings = JwtSettings.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "settings"
        raise InputError(f"{where}: {first['msg']}", field=where) from None

    async def action(services: Services) -> JwtRead:
        tenant_id = await _tenant_by_id_or_name(services, tenant)
        return JwtRead.of(await services.tenants.set_jwt(tenant_id, settings))

    _print_verifier(run_with_services(action), as_json)


@jwt_app.command("remove")
def jwt_remove(tenant: str = typer.Argument(..., help="The tenant's id or name.")) -> None:
    """Remove the tenant's verifier: its users' tokens are refused from now on."""

    async def action(services: Services) -> str:
        tenant_id = await _tenant_by_id_or_name(services, tenant)
        await services.tenants.delete_jwt(tenant_id)
        return tenant_id

    typer.echo(f"removed the JWT verifier of {run_with_services(action)}")
