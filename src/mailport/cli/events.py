"""``mailport events tail|consumers``: a tenant's event log from the command line.

``tail`` prints the events of the log (the outbox that webhooks and ``GET /v1/events`` read),
one line each — sequence number, time, type, mailbox and a short summary such as a message's
subject — or the webhook body's JSON, one object a line (``--json``). ``--follow`` keeps
printing as events are committed: it follows the log with :func:`mailport.sync.stream.watch`,
the reader of ``mailport watch`` and the library, which wakes within milliseconds of a commit in
this process and finds other processes' commits (a ``serve`` or ``worker`` ingesting mail) by a
cheap ``max(seq)`` query every half second — it never re-reads the table in a busy loop. Tailing
is read-only: it is no pull consumer and acknowledges nothing, so it never changes which events
are accepted. ``consumers`` lists and forgets the tenant's pull consumers (``/v1/events/consumers``).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from typing import Any

import typer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from mailport.bootstrap import Services
from mailport.cli.mailboxes import _tenant_id
from mailport.cli.services import print_json, run_with_services
from mailport.cli.tables import print_table
from mailport.delivery.models import EVENT_TYPES
from mailport.delivery.schemas import PullConsumerRead
from mailport.errors import InputError
from mailport.events import Event, last_seq, list_after
from mailport.store.tables import events as events_table
from mailport.sync.stream import watch

app = typer.Typer(help="The tenant's event log: tail it, list its pull consumers.", no_args_is_help=True)
consumers_app = typer.Typer(help="Pull consumers of GET /v1/events.", no_args_is_help=True)
app.add_typer(consumers_app, name="consumers")

TENANT = typer.Option(..., "--tenant", "-t", envvar="MAILPORT_TENANT", help="Tenant id or name.")
JSON = typer.Option(False, "--json", help="Print JSON (the API's shape).")
DEFAULT_LAST = 10
PAGE = 500  # events read at a time while catching up
SUMMARY_WIDTH = 100


# ---------------------------------------------------------------------------------- lines


def _addresses(value: Any) -> str:
    """``[{"name": …, "email": …}]``, ``[{"address": …}]`` (bounces) or ``["a@b"]`` as ``a@b, c@d``."""
    if not isinstance(value, list):
        return ""
    return ", ".join(
        str(item.get("email") or item.get("address")) if isinstance(item, dict) else str(item)
        for item in value
    )


def _words(*parts: Any) -> str:
    """The parts that are there, separated by spaces (a payload may lack any field)."""
    return " ".join(str(part) for part in parts if part not in (None, "", []))


def summary(event_type: str, data: dict[str, Any]) -> str:
    """A few words about an event: what a person scanning the log needs to tell events apart."""
    get = data.get
    if event_type == "message.received":
        elsewhere = f"in {get('folder')}" if get("folder") not in (None, "", "INBOX") else None
        return _words(
            repr(get("subject") or "(no subject)"), "from", _addresses(get("from")) or "?", elsewhere
        )
    if event_type in ("message.sent", "message.send_failed"):
        error = get("error")
        code = error.get("code") if isinstance(error, dict) else None
        words = _words(repr(get("subject") or "(no subject)"), "to", _addresses(get("recipients")))
        return f"{words}: {code}" if code else words
    if event_type in ("message.bounced", "message.complaint"):
        kind = get("format") or get("feedback_type")
        return _words(kind, _addresses(get("recipients")) or get("original_mail_from"))
    if event_type in ("message.updated", "message.deleted"):
        flags = get("flags")
        shown = f"[{', '.join(map(str, flags))}]" if isinstance(flags, list) and flags else None
        return _words(get("folder"), get("ref"), shown)
    if event_type.startswith("folder."):
        return _words(get("path"))
    if event_type.startswith("contact."):
        return _words(get("name"), get("email"))
    if event_type == "webhook.disabled":
        reason = get("reason")
        words = _words(get("webhook_id"), get("url"))
        return f"{words}: {reason}" if reason else words
    if get("error"):  # mailbox.error, mailbox.reauth_required, message.action_failed
        return f"{get('error')}: {get('detail')}" if get("detail") else str(get("error"))
    return _words(get("folder"))


def line(event: Event) -> str:
    """``seq  time  type  mailbox  summary`` on one line (a summary's line breaks become spaces)."""
    text = " ".join(summary(event.type, event.payload).split())
    if len(text) > SUMMARY_WIDTH:
        text = text[: SUMMARY_WIDTH - 1] + "…"
    when = event.created_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{event.seq:>8}  {when}  {event.type:<24}  {event.mailbox_id or '-':<30}  {text}".rstrip()


def _print(event: Event, as_json: bool) -> None:
    out = json.dumps(event.to_dict(), ensure_ascii=False) if as_json else line(event)
    sys.stdout.write(out + "\n")
    sys.stdout.flush()  # a pipe's reader sees each event as it comes


# ---------------------------------------------------------------------------------- reading


def event_types(given: Sequence[str] | None) -> list[str] | None:
    """``--type a --type b,c`` (or ``--events a,b``) as a list, each a known event type."""
    if not given:
        return None
    types = [part.strip() for value in given for part in value.split(",") if part.strip()]
    unknown = [t for t in types if t not in EVENT_TYPES]
    if unknown:
        raise InputError(
            f"type: not an event type: {unknown[0]!r}",
            field="type",
            hint=f"Give one of: {', '.join(EVENT_TYPES)}.",
        )
    return list(dict.fromkeys(types))


async def _before_last(
    conn: AsyncConnection, tenant_id: str, count: int, mailbox_id: str | None, types: list[str] | None
) -> int:
    """The seq after which the last ``count`` matching events come (0: from the beginning)."""
    if count == 0:
        return await last_seq(conn)
    e = events_table
    query = select(e.c.seq).where(e.c.tenant_id == tenant_id)
    if mailbox_id is not None:
        query = query.where(e.c.mailbox_id == mailbox_id)
    if types is not None:
        query = query.where(e.c.type.in_(types))
    found = (await conn.execute(query.order_by(e.c.seq.desc()).offset(count - 1).limit(1))).scalar()
    return int(found) - 1 if found is not None else 0


async def _tail(
    services: Services,
    *,
    tenant: str,
    mailbox_id: str | None,
    types: list[str] | None,
    since_seq: int | None,
    last: int,
    follow: bool,
    as_json: bool,
    max_events: int | None,
) -> None:
    tenant_id = await _tenant_id(services, tenant)
    if mailbox_id is not None:
        await services.mailboxes.get(tenant_id, mailbox_id)  # not_found for another tenant's
    async with services.database.connect() as conn:
        after = (
            since_seq
            if since_seq is not None
            else await _before_last(conn, tenant_id, last, mailbox_id, types)
        )
    printed = 0
    if follow:
        async for event in watch(
            services=services, tenant_id=tenant_id, mailbox_id=mailbox_id, after=after, types=types
        ):
            _print(event, as_json)
            printed += 1
            if printed == max_events:
                return
    while True:
        async with services.database.connect() as conn:
            batch = await list_after(
                conn, tenant_id=tenant_id, after_seq=after, limit=PAGE, mailbox_id=mailbox_id, types=types
            )
        for event in batch:
            if printed == max_events:
                return
            _print(event, as_json)
            printed += 1
        if len(batch) < PAGE:
            return
        after = batch[-1].seq


@app.command("tail")
def tail(
    tenant: str = TENANT,
    mailbox: str | None = typer.Option(
        None, "--mailbox", "-m", metavar="ID", help="Only this mailbox's events."
    ),
    types: list[str] | None = typer.Option(
        None, "--type", metavar="TYPE", help="Only events of this type (repeatable, or comma-separated)."
    ),
    since_seq: int | None = typer.Option(
        None, "--since-seq", min=0, metavar="N", help="The events after this seq (an event's `seq`/cursor)."
    ),
    last: int | None = typer.Option(
        None, "--last", "-n", min=0, metavar="N", help=f"The last N events (default {DEFAULT_LAST})."
    ),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing events as they are committed."),
    max_events: int | None = typer.Option(
        None,
        "--max-events",
        min=1,
        metavar="N",
        help="Stop after printing N events (e.g. wait for the next one).",
    ),
    as_json: bool = typer.Option(False, "--json", help="One JSON object a line (the webhook body)."),
) -> None:
    """Print the tenant's events, oldest first; with --follow, as they are committed (Ctrl-C ends)."""
    if since_seq is not None and last is not None:
        raise InputError("give either --since-seq or --last, not both", field="since_seq")
    wanted = event_types(types)
    try:
        run_with_services(
            lambda services: _tail(
                services,
                tenant=tenant,
                mailbox_id=mailbox,
                types=wanted,
                since_seq=since_seq,
                last=DEFAULT_LAST if last is None else last,
                follow=follow,
                as_json=as_json,
                max_events=max_events,
            )
        )
    except KeyboardInterrupt:  # Ctrl-C: the normal end of --follow
        pass
    except BrokenPipeError:  # `| head`: the reader has what it wanted; exit without complaint
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the final flush, too


# ---------------------------------------------------------------------------------- consumers


@consumers_app.command("list")
def list_consumers(tenant: str = TENANT, as_json: bool = JSON) -> None:
    """The tenant's pull consumers and how far each acknowledged."""

    async def action(services: Services) -> list[PullConsumerRead]:
        tenant_id = await _tenant_id(services, tenant)
        return [PullConsumerRead.from_model(c) for c in await services.webhooks.consumers(tenant_id)]

    found = run_with_services(action)
    if as_json:
        print_json({"items": [c.model_dump(mode="json") for c in found]})
        return
    print_table(
        ("name", "mailbox", "acknowledged through", "last read"),
        [
            (c.name, c.mailbox_id or "all", c.acked_cursor, c.updated_at.strftime("%Y-%m-%d %H:%M"))
            for c in found
        ],
    )


@consumers_app.command("delete")
def delete_consumer(
    name: str = typer.Argument(..., help="The consumer's name."),
    tenant: str = TENANT,
    mailbox: str | None = typer.Option(
        None, "--mailbox", "-m", metavar="ID", help="Its scope, when it read one mailbox."
    ),
) -> None:
    """Forget a pull consumer that no longer reads; the events only it owed become accepted."""

    async def action(services: Services) -> int:
        tenant_id = await _tenant_id(services, tenant)
        return await services.webhooks.remove_consumer(tenant_id, name, mailbox_id=mailbox)

    accepted = run_with_services(action)
    typer.echo(f"deleted {name}: {accepted} event{'' if accepted == 1 else 's'} accepted")
