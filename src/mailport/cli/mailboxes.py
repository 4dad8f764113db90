"""``mailport mailboxes list|add|show|update|disable|enable|remove`` against the configured database.

The same schemas as the API validate the flags, so the CLI accepts exactly what the API does.
A password is read from stdin (``--password-stdin``) or an environment variable
(``--password-env NAME``), never from an argument (arguments end up in shell history and ``ps``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError

from mailport.bootstrap import Services
from mailport.cli.services import pem_file_option, print_json, run_with_services
from mailport.cli.tables import print_table
from mailport.errors import InputError
from mailport.mailboxes.models import MailboxStatus
from mailport.mailboxes.schemas import MailboxCreate, MailboxRead, MailboxUpdate

app = typer.Typer(help="A tenant's mailboxes.", no_args_is_help=True)

TENANT = typer.Option(..., "--tenant", "-t", envvar="MAILPORT_TENANT", help="Tenant id or name.")
OWNER_HELP = "The user who owns the mailbox: its contacts go to that owner's book (docs/contacts.md)."
CONTACTS_HELP = "Harvest contacts: sent_and_received | sent_only | off (docs/contacts.md, Harvesting)."
DAYS_HELP = "The harvested period in days (1-3650; default 365)."


def _contacts(policy: str | None, days: int | None) -> dict[str, Any] | None:
    """``settings.contacts`` from the flags; None when neither is given."""
    if policy is None and days is None:
        return None
    return {
        **({"policy": policy} if policy is not None else {}),
        **({"backfill_days": days} if days is not None else {}),
    }


async def _tenant_id(services: Services, tenant: str) -> str:
    if tenant.startswith("ten_"):
        return (await services.tenants.repository.get(tenant)).id
    return (await services.tenants.repository.get_by_name(tenant)).id


def _input_error(exc: ValidationError) -> InputError:
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or "input"
    return InputError(f"{field}: {first['msg']}", field=field)


def _read_password(password_stdin: bool, password_env: str | None) -> str | None:
    if password_stdin and password_env:
        raise InputError("give either --password-stdin or --password-env, not both")
    if password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if password_env:
        value = os.environ.get(password_env)
        if value is None:
            raise InputError(f"the environment variable {password_env} is not set", field="password")
        return value
    return None


def _read_pem(path: Path | None) -> str | None:
    return path.read_text(errors="replace") if path is not None else None


def _show(read: MailboxRead) -> None:
    data = read.model_dump(mode="json")
    rows = []
    for key, value in data.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        rows.append((key, "" if value is None else str(value)))
    print_table(("", ""), rows, show_header=False)


@app.command("list")
def list_mailboxes(
    tenant: str = TENANT,
    purpose: str | None = typer.Option(None, help="Only this purpose."),
    status: MailboxStatus | None = typer.Option(None, help="Only this status."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List a tenant's mailboxes."""

    async def action(services: Services) -> list[MailboxRead]:
        tenant_id = await _tenant_id(services, tenant)
        found: list[MailboxRead] = []
        cursor: str | None = None
        while True:
            page = await services.mailboxes.list(
                tenant_id, purpose=purpose, status=status, cursor=cursor, limit=200
            )
            found += [MailboxRead.from_model(m) for m in page.items]
            if page.next_cursor is None:
                return found
            cursor = page.next_cursor

    rows = run_with_services(action)
    if as_json:
        print_json([r.model_dump(mode="json") for r in rows])
        return
    print_table(
        ("id", "email", "purpose", "auth", "status", "last error"),
        [
            (
                row.id,
                row.email,
                row.purpose or "",
                row.auth_method.value,
                row.status.value,
                row.last_error or "",
            )
            for row in rows
        ],
    )


@app.command("add")
def add(
    email: str = typer.Argument(..., help="The mailbox's email address."),
    tenant: str = TENANT,
    auth_method: str = typer.Option("password", help="password | app_password | oauth2"),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from stdin."),
    password_env: str | None = typer.Option(
        None, "--password-env", help="Read the password from this variable."
    ),
    label: str | None = typer.Option(None),
    purpose: str | None = typer.Option(None, help="Free text, e.g. booking, support."),
    connector: str = typer.Option(
        "imap",
        help="imap, pop3 (with --pop3-host; new INBOX mail only, see docs/pop3.md), or gmail_api / "
        "graph: read through Google's or Microsoft's mail API "
        "(--auth-method oauth2, no servers; then `mailport connect PROVIDER --mailbox ID`)",
    ),
    imap_host: str | None = typer.Option(None, help="IMAP server host name (the imap connector)."),
    imap_port: int = typer.Option(993),
    imap_security: str = typer.Option("ssl", help="ssl | starttls | none"),
    imap_username: str | None = typer.Option(None, help="Default: the email address."),
    pop3_host: str | None = typer.Option(None, help="POP3 server host name (the pop3 connector)."),
    pop3_port: int = typer.Option(995),
    pop3_security: str = typer.Option("ssl", help="ssl | starttls | none"),
    pop3_username: str | None = typer.Option(None, help="Default: the email address."),
    pop3_trust_cert: Path | None = pem_file_option(
        "--pop3-trust-cert", "Trust exactly this server certificate (PEM) for POP3 (self-signed servers)."
    ),
    smtp_host: str | None = typer.Option(None, help="SMTP server (omit for read-only)."),
    smtp_port: int = typer.Option(587),
    smtp_security: str = typer.Option("starttls", help="ssl | starttls | none"),
    smtp_username: str | None = typer.Option(None, help="Default: the email address."),
    imap_trust_cert: Path | None = pem_file_option(
        "--imap-trust-cert", "Trust exactly this server certificate (PEM) for IMAP (self-signed servers)."
    ),
    smtp_trust_cert: Path | None = pem_file_option(
        "--smtp-trust-cert", "Trust exactly this server certificate (PEM) for SMTP."
    ),
    from_name: str | None = typer.Option(None),
    check_interval: int = typer.Option(60, help="Seconds between checks without IDLE."),
    folder: str = typer.Option("INBOX", help="The folder to watch (after-processing acts on it)."),
    watch: list[str] | None = typer.Option(
        None,
        "--watch",
        help="Another folder to watch besides --folder, repeatable: a path or a role (role:sent).",
    ),
    after_processing: str = typer.Option("none", help="none | mark_read | move:<folder> | delete"),
    owner: str | None = typer.Option(None, help=OWNER_HELP),
    contacts: str | None = typer.Option(None, "--contacts", metavar="POLICY", help=CONTACTS_HELP),
    contacts_days: int | None = typer.Option(None, "--contacts-days", help=DAYS_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the mailbox as JSON."),
) -> None:
    """Add a mailbox (validated like POST /v1/mailboxes)."""
    body: dict[str, Any] = {
        "email": email,
        "label": label,
        "purpose": purpose,
        "auth_method": auth_method,
        "password": _read_password(password_stdin, password_env),
        "connector": connector,
        "imap": None
        if imap_host is None
        else {
            "host": imap_host,
            "port": imap_port,
            "security": imap_security,
            "username": imap_username,
            "trusted_certificate": _read_pem(imap_trust_cert),
        },
        "pop3": None
        if pop3_host is None
        else {
            "host": pop3_host,
            "port": pop3_port,
            "security": pop3_security,
            "username": pop3_username,
            "trusted_certificate": _read_pem(pop3_trust_cert),
        },
        "smtp": None
        if smtp_host is None
        else {
            "host": smtp_host,
            "port": smtp_port,
            "security": smtp_security,
            "username": smtp_username,
            "trusted_certificate": _read_pem(smtp_trust_cert),
        },
        "settings": {
            "from_name": from_name,
            "check_interval": check_interval,
            "folder": folder,
            "after_processing": after_processing,
            **({"folders": [folder, *watch]} if watch else {}),
            **({"contacts": harvest} if (harvest := _contacts(contacts, contacts_days)) is not None else {}),
        },
        **({"owner": owner} if owner is not None else {}),
    }
    try:
        parsed = MailboxCreate.model_validate(body)
    except ValidationError as exc:
        raise _input_error(exc) from None

    async def action(services: Services) -> MailboxRead:
        tenant_id = await _tenant_id(services, tenant)
        return MailboxRead.from_model(await services.mailboxes.create_from(tenant_id, parsed))

    created = run_with_services(action)
    if as_json:
        print_json(created.model_dump(mode="json"))
    else:
        typer.echo(f"added {created.id} ({created.email})")


@app.command("show")
def show(
    mailbox_id: str = typer.Argument(..., help="The mailbox's id."),
    tenant: str = TENANT,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show one mailbox (never its secrets)."""

    async def action(services: Services) -> MailboxRead:
        return MailboxRead.from_model(
            await services.mailboxes.get(await _tenant_id(services, tenant), mailbox_id)
        )

    read = run_with_services(action)
    if as_json:
        print_json(read.model_dump(mode="json"))
    else:
        _show(read)


@app.command("update")
def update(
    mailbox_id: str = typer.Argument(..., help="The mailbox's id."),
    tenant: str = TENANT,
    owner: str | None = typer.Option(None, help=OWNER_HELP + " An empty string removes it."),
    contacts: str | None = typer.Option(
        None, "--contacts", metavar="POLICY", help=CONTACTS_HELP + " `none` forgets the settings."
    ),
    contacts_days: int | None = typer.Option(None, "--contacts-days", help=DAYS_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the mailbox as JSON."),
) -> None:
    """Change a mailbox's owner or contact harvesting (validated like PATCH /v1/mailboxes/{id})."""
    body: dict[str, Any] = {}
    if owner is not None:
        body["owner"] = owner or None
    if contacts == "none":
        if contacts_days is not None:
            raise InputError("--contacts none takes no --contacts-days", field="contacts_days")
        body["settings"] = {"contacts": None}
    elif (harvest := _contacts(contacts, contacts_days)) is not None:
        body["settings"] = {"contacts": harvest}
    if not body:
        raise InputError("nothing to change: give --owner, --contacts or --contacts-days")
    try:
        patch = MailboxUpdate.model_validate(body)
    except ValidationError as exc:
        raise _input_error(exc) from None

    async def action(services: Services) -> MailboxRead:
        tenant_id = await _tenant_id(services, tenant)
        return MailboxRead.from_model(await services.mailboxes.update(tenant_id, mailbox_id, patch))

    changed = run_with_services(action)
    if as_json:
        print_json(changed.model_dump(mode="json"))
    else:
        harvest_policy = changed.settings.contacts.policy if changed.settings.contacts else "none"
        typer.echo(
            f"updated {changed.id} ({changed.email}): owner {changed.owner or '-'}, contacts {harvest_policy}"
        )


def _set_enabled(mailbox_id: str, tenant: str, enabled: bool) -> MailboxRead:
    async def action(services: Services) -> MailboxRead:
        tenant_id = await _tenant_id(services, tenant)
        return MailboxRead.from_model(await services.mailboxes.set_enabled(tenant_id, mailbox_id, enabled))

    return run_with_services(action)


@app.command("disable")
def disable(
    mailbox_id: str = typer.Argument(..., help="The mailbox's id."),
    tenant: str = TENANT,
) -> None:
    """Stop watching a mailbox (a running serve/worker stops its watcher within 2 s)."""
    read = _set_enabled(mailbox_id, tenant, False)
    typer.echo(f"disabled {read.id} ({read.email})")


@app.command("enable")
def enable(
    mailbox_id: str = typer.Argument(..., help="The mailbox's id."),
    tenant: str = TENANT,
) -> None:
    """Watch a disabled mailbox again; it catches up from where it stopped."""
    read = _set_enabled(mailbox_id, tenant, True)
    typer.echo(f"enabled {read.id} ({read.email}): {read.status.value}")


@app.command("remove")
def remove(
    mailbox_id: str = typer.Argument(..., help="The mailbox's id."),
    tenant: str = TENANT,
) -> None:
    """Delete a mailbox and its stored credentials."""

    async def action(services: Services) -> None:
        await services.mailboxes.delete(await _tenant_id(services, tenant), mailbox_id)

    run_with_services(action)
    typer.echo(f"removed {mailbox_id}")
