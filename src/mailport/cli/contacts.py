"""``mailport contacts list|show|export|sync|delete|merge|groups``: a tenant's contact books
from the command line.

Every command is one call of the contact services (:attr:`Services.contacts`,
:attr:`Services.contact_sync`, :attr:`Services.contact_groups`), the calls the API's
``/v1/contacts`` routes make, so the CLI filters, refuses and answers as the API does
(``contact_not_found``, ``contact_book_mismatch`` …). ``--owner`` narrows to one owner's book
(``--owner ""`` the book of mailboxes without an owner); without it every book of the tenant is
seen. ``--json`` prints the contact's public JSON (:func:`mailport.contacts.views.contact_json`).
``sync`` harvests a mailbox now, in this process, instead of waiting for the worker.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, cast

import typer

from mailport.bootstrap import Services
from mailport.cli.services import print_json, run_with_services
from mailport.cli.tables import print_table
from mailport.clock import utc_now
from mailport.contacts.groups import KINDS, ContactGroup, Kind, Page, group_json
from mailport.contacts.history import History
from mailport.contacts.models import StoredContact
from mailport.contacts.queries import SORTS, ContactQuery
from mailport.contacts.service import ExportFormat
from mailport.contacts.sync import ContactSync, SyncReport
from mailport.contacts.views import contact_json, current_score
from mailport.errors import ConflictError, ContactsNotEnabledError, InputError
from mailport.library import Mailport

app = typer.Typer(help="A tenant's contacts, harvested from its mailboxes' mail.", no_args_is_help=True)
groups_app = typer.Typer(help="Contact groups.", no_args_is_help=True)
app.add_typer(groups_app, name="groups")

TENANT = typer.Option(..., "--tenant", "-t", envvar="MAILPORT_TENANT", help="Tenant id or name.")
OWNER = typer.Option(
    None, "--owner", help='Only this owner\'s book ("" the book of mailboxes without an owner).'
)
JSON = typer.Option(False, "--json", help="Print JSON (the API's shape).")
CONTACT = typer.Argument(..., help="The contact (ct_…), as `contacts list` shows it.")
SEARCH = typer.Option(None, "--search", "-q", help="Name, address or domain contains this.")
DOMAIN = typer.Option(None, "--domain", help="An address at this domain or one of its subdomains.")
GROUP = typer.Option(None, "--group", help="Members of this group (cg_…).")
TWO_WAY = typer.Option(None, "--two-way/--one-way", help="Only two-way (or only one-way) correspondents.")
LIMIT = typer.Option(50, "--limit", "-n", min=1, max=200, help="How many a page.")
CURSOR = typer.Option(None, "--cursor", help="Continue after the page that printed this cursor.")
SORT = typer.Option("score", "--sort", help="score (default), name, last_seen or first_seen.")
LIST_HEADERS = ("id", "name", "email", "organisation", "sent/received", "two-way", "score", "last seen")
WAIT_STEP = 0.5  # seconds between tries while another process harvests the mailbox


async def _tenant_id(services: Services, tenant: str) -> str:
    return await Mailport(services=services).tenant_id(tenant)


def _day(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d") if moment else ""


def _rows(contacts: list[StoredContact], now: datetime) -> list[tuple[str, ...]]:
    return [
        (
            c.id,
            c.name or "",
            c.email,
            c.organisation or "",
            f"{c.sent_to}/{c.received_from}",
            "yes" if c.two_way else "",
            f"{current_score(c, now):.2f}",
            _day(c.last_seen),
        )
        for c in contacts
    ]


def _query(
    search: str | None,
    domain: str | None,
    group: str | None,
    two_way: bool | None,
    sort: str,
    **page: Any,
) -> ContactQuery:
    if sort not in SORTS:
        raise InputError(
            f"sort: not one of {', '.join(SORTS)}: {sort!r}", field="sort", hint="Give --sort score or name."
        )
    return ContactQuery(q=search, domain=domain, group=group, two_way=two_way, sort=sort, **page)


@app.command("list")
def list_contacts(
    tenant: str = TENANT,
    owner: str | None = OWNER,
    search: str | None = SEARCH,
    domain: str | None = DOMAIN,
    group: str | None = GROUP,
    two_way: bool | None = TWO_WAY,
    sort: str = SORT,
    limit: int = LIMIT,
    cursor: str | None = CURSOR,
    as_json: bool = JSON,
) -> None:
    """List contacts, who matters most first (score; or --sort name|last_seen|first_seen)."""
    query = _query(search, domain, group, two_way, sort, limit=limit, cursor=cursor)

    async def action(services: Services) -> tuple[list[StoredContact], str | None]:
        tenant_id = await _tenant_id(services, tenant)
        page = await services.contacts.list_contacts(tenant_id, query, owner=owner)
        return list(page.items), page.next_cursor

    contacts, next_cursor = run_with_services(action)
    now = utc_now()
    if as_json:
        print_json({"items": [contact_json(c, now=now) for c in contacts], "next_cursor": next_cursor})
        return
    print_table(LIST_HEADERS, _rows(contacts, now))
    if next_cursor:
        typer.echo(f"more: --cursor {next_cursor}", err=True)


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if moment else ""


@app.command("show")
def show(
    contact_id: str = CONTACT, tenant: str = TENANT, owner: str | None = OWNER, as_json: bool = JSON
) -> None:
    """Show a contact: its figures, addresses and names seen, and its history (which mailboxes
    counted it, which of its addresses were left out and why)."""

    async def action(services: Services) -> tuple[StoredContact, History]:
        tenant_id = await _tenant_id(services, tenant)
        found = await services.contacts.get(tenant_id, contact_id, owner=owner)
        return found, await services.contacts.history(tenant_id, contact_id, owner=owner)

    contact, history = run_with_services(action)
    now = utc_now()
    if as_json:
        print_json(contact_json(contact, now=now))
        return
    rows = [
        ("id", contact.id),
        ("name", contact.name or ""),
        ("email", contact.email),
        ("other emails", ", ".join(contact.keys[1:])),
        ("addresses seen", ", ".join(contact.addresses)),
        ("names seen", ", ".join(f"{name} ({count})" for name, count in contact.names.most_common())),
        ("organisation", contact.organisation or ""),
        ("owner", contact.owner),
        ("notes", contact.notes or ""),
        ("sent to", str(contact.sent_to)),
        ("received from", str(contact.received_from)),
        ("copied", str(contact.copied)),
        ("two-way", "yes" if contact.two_way else "no"),
        ("score", f"{current_score(contact, now):.2f}"),
        ("first seen", _when(contact.first_seen)),
        ("last seen", _when(contact.last_seen)),
    ]
    print_table(("", ""), [row for row in rows if row[1]], show_header=False)
    print_history(history)


def print_history(history: History) -> None:
    """Which mailboxes counted the contact, which of its addresses were left out and why."""
    if history.sources:
        typer.echo("\nseen by:")
        print_table(
            ("mailbox", "addresses", "sent to", "received from", "copied", "first seen", "last seen"),
            [
                (
                    s.mailbox_email,
                    ", ".join(s.keys),
                    str(s.sent_to),
                    str(s.received_from),
                    str(s.copied),
                    _day(s.first_seen),
                    _day(s.last_seen),
                )
                for s in history.sources
            ],
        )
    if history.exclusions:
        typer.echo("\nleft out:")
        print_table(
            ("mailbox", "address", "reason", "messages", "last seen", "why"),
            [
                (e.mailbox_email, e.key, e.reason, str(e.messages), _day(e.last_seen), e.description)
                for e in history.exclusions
            ],
        )
    if history.groups:
        typer.echo("\ngroups: " + ", ".join(f"{g.name} ({g.id})" for g in history.groups))


@app.command("export")
def export(
    tenant: str = TENANT,
    fmt: str = typer.Option("csv", "--format", "-f", help="csv or vcard (vCard 4.0)."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write to this file (default stdout)."),
    owner: str | None = OWNER,
    search: str | None = SEARCH,
    domain: str | None = DOMAIN,
    group: str | None = GROUP,
    two_way: bool | None = TWO_WAY,
    sort: str = SORT,
) -> None:
    """Export contacts as CSV or vCard 4.0 (RFC 6350), streamed as they are written."""
    if fmt not in ("csv", "vcard"):
        raise InputError(
            f"format: not csv or vcard: {fmt!r}", field="format", hint="Give --format csv or vcard."
        )
    chosen = cast(ExportFormat, fmt)
    query = _query(search, domain, group, two_way, sort)

    async def action(services: Services) -> int:
        tenant_id = await _tenant_id(services, tenant)
        chunks = services.contacts.export(tenant_id, chosen, query, owner=owner)
        if output is None:
            return await _write(chunks, sys.stdout.buffer)
        partial = output.with_name(output.name + ".partial")  # a failed export leaves no half file
        try:
            with partial.open("wb") as sink:
                written = await _write(chunks, sink)
            os.replace(partial, output)
        except OSError as exc:
            raise InputError(
                f"cannot write {output}: {exc.strerror or exc}", field="output", hint="Give a writable file."
            ) from None
        finally:
            partial.unlink(missing_ok=True)
        return written

    written = run_with_services(action)
    if output is not None:
        typer.echo(f"exported {written} bytes to {output}")


async def _write(chunks: AsyncIterator[str | bytes], sink: IO[bytes]) -> int:
    written = 0
    async for chunk in chunks:
        data = chunk.encode("utf-8") if isinstance(chunk, str) else chunk
        sink.write(data)
        written += len(data)
    sink.flush()
    return written


def report_line(report: SyncReport, seconds: float) -> str:
    """One line: what a run read, counted and changed, and how long it took."""
    folders = len(report.folders)
    return (
        f"harvested {report.mailbox_id}{' (full)' if report.full else ''}: "
        f"{report.read} message{'s' if report.read != 1 else ''} read in {folders} folder"
        f"{'s' if folders != 1 else ''}, {report.messages} new; "
        f"contacts: {report.created} created, {report.updated} updated; {seconds:.1f} s"
    )


async def run_when_free(sync: ContactSync, mailbox_id: str, *, full: bool, wait: float) -> SyncReport:
    """Run the harvest; while another process (a worker of ``mailport serve``) runs it, wait up
    to ``wait`` seconds for that run to end, then run: what it counted is not counted again."""
    deadline = time.monotonic() + wait
    while True:
        try:
            return await sync.run(mailbox_id, full=full)
        except ContactsNotEnabledError:
            raise  # a conflict too, but no other process will end it
        except ConflictError:
            if time.monotonic() >= deadline:
                raise
            await asyncio.sleep(WAIT_STEP)


@app.command("sync")
def sync(
    mailbox_id: str = typer.Argument(..., help="The mailbox (mbx_…)."),
    tenant: str = TENANT,
    full: bool = typer.Option(False, "--full", help="From the start of the backfill period again."),
    wait: float = typer.Option(
        60.0, "--wait", min=0, help="Seconds to wait while another process harvests the mailbox."
    ),
    as_json: bool = JSON,
) -> None:
    """Harvest a mailbox's contacts now, in this process, and say what it did."""

    async def action(services: Services) -> tuple[SyncReport, float]:
        mailbox = await services.mailboxes.get(await _tenant_id(services, tenant), mailbox_id)
        started = time.monotonic()
        report = await run_when_free(services.contact_sync, mailbox.id, full=full, wait=wait)
        return report, time.monotonic() - started

    report, seconds = run_with_services(action)
    if as_json:
        print_json({**report.to_json(), "seconds": round(seconds, 3)})
        return
    typer.echo(report_line(report, seconds))


@app.command("delete")
def delete(contact_id: str = CONTACT, tenant: str = TENANT, owner: str | None = OWNER) -> None:
    """Delete a contact; harvesting remembers it and does not bring it back."""

    async def action(services: Services) -> None:
        await services.contacts.delete(await _tenant_id(services, tenant), contact_id, owner=owner)

    run_with_services(action)
    typer.echo(f"deleted {contact_id}")


@app.command("merge")
def merge(
    into: str = typer.Argument(..., help="The contact kept (ct_…)."),
    others: list[str] = typer.Argument(..., help="The contacts merged into it and removed."),
    tenant: str = TENANT,
    owner: str | None = OWNER,
    as_json: bool = JSON,
) -> None:
    """Merge contacts into one: addresses, names, figures and groups move to INTO."""

    async def action(services: Services) -> StoredContact:
        return await services.contacts.merge(await _tenant_id(services, tenant), into, others, owner=owner)

    merged = run_with_services(action)
    if as_json:
        print_json(contact_json(merged, now=utc_now()))
        return
    count = len(set(others) - {into})
    typer.echo(f"merged {count} contact{'s' if count != 1 else ''} into {merged.id} ({merged.email})")


@groups_app.command("list")
def list_groups(
    tenant: str = TENANT,
    owner: str | None = OWNER,
    kind: str | None = typer.Option(None, "--kind", help="custom or organisation."),
    limit: int = LIMIT,
    cursor: str | None = CURSOR,
    as_json: bool = JSON,
) -> None:
    """List the tenant's contact groups (its own and one per organisation) with member counts."""
    if kind is not None and kind not in KINDS:
        raise InputError(f"kind: not custom or organisation: {kind!r}", field="kind")
    kinds = cast(Kind | None, kind)

    async def action(services: Services) -> Page[ContactGroup]:
        tenant_id = await _tenant_id(services, tenant)
        return await services.contact_groups.list(
            tenant_id, owner=owner, kind=kinds, cursor=cursor, limit=limit
        )

    page = run_with_services(action)
    if as_json:
        print_json({"items": [group_json(g) for g in page.items], "next_cursor": page.next_cursor})
        return
    print_table(
        ("id", "name", "kind", "members", "owner"),
        [(g.id, g.name, g.kind, str(g.members), g.owner) for g in page.items],
    )
    if page.next_cursor:
        typer.echo(f"more: --cursor {page.next_cursor}", err=True)
