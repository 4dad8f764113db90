"""Run a CLI command's coroutine against the configured service graph, then close it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import typer

from mailport.bootstrap import Services, build
from mailport.config import Settings, load_settings
from mailport.library import Mailport
from mailport.mailboxes.handle import MailboxHandle

T = TypeVar("T")


def run_with_services(action: Callable[[Services], Awaitable[T]], *, settings: Settings | None = None) -> T:
    async def _main() -> T:
        services = await build(settings or load_settings())
        try:
            return await action(services)
        finally:
            await services.aclose()

    return asyncio.run(_main())


def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, default=str))


def pem_file_option(name: str, help: str) -> Any:
    """An option naming a readable PEM file (a CA, or a server certificate to trust)."""
    return typer.Option(None, name, metavar="F", exists=True, dir_okay=False, readable=True, help=help)


def run_on_mailbox(
    tenant: str,
    mailbox_id: str,
    action: Callable[[MailboxHandle], Awaitable[T]],
    *,
    settings: Settings | None = None,
) -> T:
    """Run ``action`` on the library's handle of a tenant's mailbox (tenant by id or name)."""

    async def on_services(services: Services) -> T:
        client = Mailport(services=services)
        return await action(client.mailbox(await client.tenant_id(tenant), mailbox_id))

    return run_with_services(on_services, settings=settings)
