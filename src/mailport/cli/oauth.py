"""``mailport connect PROVIDER [EMAIL] --device``: connect a mailbox with OAuth from a terminal.

With ``--device`` (RFC 8628; Microsoft and other providers with a device endpoint) it prints the
code and the link, waits with a spinner while the service polls the provider, and prints the new
mailbox. Without it, it prints the browser sign-in link; the running service's callback
(``MAILPORT_PUBLIC_URL``) completes the connection. ``--connector gmail_api|graph`` connects the
mailbox for the provider's mail API instead of IMAP/SMTP (the sign-in asks for that API's scopes).
"""

from __future__ import annotations

import asyncio

import typer
from rich.console import Console

from mailport.bootstrap import Services
from mailport.cli.mailboxes import TENANT, _tenant_id
from mailport.cli.services import run_with_services
from mailport.errors import DeviceCodeExpiredError, InputError, OAuthDeniedError, OAuthError


def connect(
    provider: str = typer.Argument(..., help="google, microsoft, or a provider from the providers file."),
    email: str | None = typer.Argument(None, help="The address to connect (a hint for the sign-in page)."),
    tenant: str = TENANT,
    device: bool = typer.Option(False, "--device", help="Sign in on another device (no browser here)."),
    purpose: str | None = typer.Option(None, help="The mailbox's purpose, e.g. support."),
    connector: str = typer.Option(
        "imap", help="What reads the mailbox: imap, gmail_api (google) or graph (microsoft)."
    ),
    mailbox: str | None = typer.Option(
        None, "--mailbox", help="Connect (or reconnect) this mailbox; it keeps its connector."
    ),
    poll_seconds: float = typer.Option(1.0, hidden=True, help="How often to check the sign-in state."),
) -> None:
    """Connect a mailbox with OAuth (browser link, or a device code with --device)."""
    console = Console(stderr=True)

    async def action(services: Services) -> None:
        tenant_id = await _tenant_id(services, tenant)
        if not device:
            started = await services.oauth.authorize(
                tenant_id,
                provider,
                email=email,
                purpose=purpose,
                mailbox_id=mailbox,
                connector=None if mailbox and connector == "imap" else connector,
            )
            typer.echo(started.authorization_url)
            console.print(
                f"Open the link within {started.expires_in // 60} minutes; the service at "
                f"{services.settings.effective_public_url} completes the connection."
            )
            return
        if mailbox is not None:
            raise InputError(
                "--mailbox works with the browser sign-in only", hint="Leave out --device to reconnect."
            )
        flow = await services.oauth.start_device(
            tenant_id, provider, email=email, purpose=purpose, connector=connector
        )
        link = flow.verification_uri_complete or flow.verification_uri
        typer.echo(f"Open {flow.verification_uri} and enter the code {flow.user_code}")
        if flow.verification_uri_complete:
            typer.echo(f"(or open {link})")
        with console.status("Waiting for the sign-in…", spinner="dots"):
            while True:
                record = await services.oauth.device_status(tenant_id, flow.id)
                if record.status != "pending":
                    break
                await asyncio.sleep(poll_seconds)
        if record.status == "complete":
            typer.echo(f"connected: mailbox {record.mailbox_id}")
            return
        if record.status == "denied":
            raise OAuthDeniedError(record.error or "the sign-in was declined")
        if record.status == "expired":
            raise DeviceCodeExpiredError(record.error or "the code expired before it was entered")
        raise OAuthError(record.error or "the device sign-in failed")

    run_with_services(action)
