"""``mailport messages list|search|show|raw|flag|move|delete|import``: any message of a
mailbox, live from its server.

Each command is one call of the library's mailbox handle (:mod:`mailport.mailboxes.handle`), so
it validates and answers exactly as the API's message routes do. Messages are named by their
``ref`` (the first column of ``list``, ``ref`` in events); ``flag``, ``move`` and ``delete``
take several.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

from mailport.cli.services import print_json, run_on_mailbox
from mailport.cli.tables import print_table
from mailport.connectors.mail import MessagePage, MessageSummary
from mailport.errors import InputError
from mailport.mailboxes.handle import MailboxHandle
from mailport.mailboxes.mail_schemas import MessageItem, MessageOut, MovedItem, MovedList
from mailport.mailboxes.message_view import HtmlMode
from mailport.messages.model import Address

app = typer.Typer(help="A mailbox's messages, live from its server.", no_args_is_help=True)

TENANT = typer.Option(..., "--tenant", "-t", envvar="MAILPORT_TENANT", help="Tenant id or name.")
MAILBOX = typer.Argument(..., help="The mailbox (mbx_…).")
REFS = typer.Argument(..., help="One or more message refs (ref_…), as `messages list` shows them.")
JSON = typer.Option(False, "--json", help="Print JSON (the API's shape).")
FOLDER = typer.Option("INBOX", "--folder", "-f", help="The folder's path, as `folders list` shows it.")
LIMIT = typer.Option(50, "--limit", "-n", min=1, max=500, help="Messages per page.")
CURSOR = typer.Option(None, "--cursor", help="Continue after the page that printed this cursor.")


def parse_when(value: str | None, name: str) -> datetime | None:
    """An ISO 8601 date or date-time (UTC when it names no zone)."""
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise InputError(
            f"{name}: not a date: {value!r}",
            field=name,
            hint="Give a date like 2026-01-31 or 2026-01-31T08:00Z.",
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def flag_names(values: list[str] | None) -> list[str]:
    """``--add seen --add flagged`` and ``--add seen,flagged`` alike."""
    return [name.strip() for value in values or () for name in value.split(",") if name.strip()]


def item_json(item: MessageSummary) -> dict[str, Any]:
    """A listing item as the API's ``MessageItem``."""
    return MessageItem.model_validate(item).model_dump(mode="json", by_alias=True)


def _who(addresses: tuple[Address, ...]) -> str:
    return ", ".join(address.name or address.email for address in addresses)


def _when(item: MessageSummary) -> str:
    when = item.envelope.date or item.received_at
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if when else ""


def _marks(item: MessageSummary) -> str:
    marks = "" if "seen" in item.flags else "●"  # unread
    if "flagged" in item.flags:
        marks += "★"
    if "answered" in item.flags:
        marks += "↩"
    if item.has_attachments:
        marks += "📎"
    return marks


def print_page(page: MessagePage, *, as_json: bool, folders: bool = False) -> None:
    """A page as a table (with each item's folder when they differ), or the API's JSON."""
    if as_json:
        print_json({"data": [item_json(item) for item in page.items], "next_cursor": page.next_cursor})
        return
    headers = ("ref", "date", "", "from", "subject") + (("folder",) if folders else ())
    rows = [
        (item.ref.encode(), _when(item), _marks(item), _who(item.envelope.from_), item.envelope.subject or "")
        + ((item.folder,) if folders else ())
        for item in page.items
    ]
    print_table(headers, rows)
    if page.next_cursor:
        typer.echo(f"more: --cursor {page.next_cursor}", err=True)


@app.command("list")
def list_messages(
    mailbox_id: str = MAILBOX,
    tenant: str = TENANT,
    folder: str = FOLDER,
    limit: int = LIMIT,
    cursor: str | None = CURSOR,
    unseen: bool | None = typer.Option(None, "--unseen/--seen", help="Only unread (or only read) mail."),
    since: str | None = typer.Option(None, help="Received at or after (ISO 8601 date or date-time)."),
    as_json: bool = JSON,
) -> None:
    """List a folder, newest first (● unread, ★ flagged, ↩ answered, 📎 attachments)."""
    after = parse_when(since, "since")

    async def action(box: MailboxHandle) -> MessagePage:
        return await box.page(folder, limit=limit, cursor=cursor, unseen=unseen, since=after)

    print_page(run_on_mailbox(tenant, mailbox_id, action), as_json=as_json)


@app.command("search")
def search(
    mailbox_id: str = MAILBOX,
    tenant: str = TENANT,
    folder: str = FOLDER,
    limit: int = LIMIT,
    cursor: str | None = CURSOR,
    from_: str | None = typer.Option(None, "--from", help="Sender contains this."),
    to: str | None = typer.Option(None, help="A recipient contains this."),
    cc: str | None = typer.Option(None, help="A Cc recipient contains this."),
    subject: str | None = typer.Option(None, help="The subject contains this."),
    text: str | None = typer.Option(None, help="The headers or the body contain this."),
    body: str | None = typer.Option(None, help="The body contains this."),
    since: str | None = typer.Option(None, help="Sent on or after this date."),
    before: str | None = typer.Option(None, help="Sent before this date."),
    seen: bool | None = typer.Option(None, "--seen/--unseen", help="Only read (or only unread) mail."),
    flagged: bool | None = typer.Option(None, "--flagged/--unflagged"),
    answered: bool | None = typer.Option(None, "--answered/--unanswered"),
    has_attachment: bool | None = typer.Option(None, "--has-attachment/--no-attachment"),
    larger: int | None = typer.Option(None, help="Larger than this many bytes."),
    smaller: int | None = typer.Option(None, help="Smaller than this many bytes."),
    header: list[str] | None = typer.Option(None, help="`Name: value` (repeatable)."),
    message_id: str | None = typer.Option(None, help="This Message-ID."),
    native: str | None = typer.Option(None, help="Passed to the server as it is (IMAP SEARCH keys)."),
    as_json: bool = JSON,
) -> None:
    """Search a folder: every criterion given must hold."""
    headers: dict[str, str] = {}
    for item in header or ():
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise InputError(f"header: not `Name: value`: {item!r}", field="header")
        headers[name.strip()] = value.strip()
    criteria: dict[str, Any] = {
        "folder": folder,
        "limit": limit,
        "cursor": cursor,
        "from_": from_,
        "to": to,
        "cc": cc,
        "subject": subject,
        "text": text,
        "body": body,
        "since": parse_when(since, "since"),
        "before": parse_when(before, "before"),
        "seen": seen,
        "flagged": flagged,
        "answered": answered,
        "has_attachment": has_attachment,
        "larger": larger,
        "smaller": smaller,
        "headers": headers,
        "message_id": message_id,
        "native": native,
    }
    print_page(run_on_mailbox(tenant, mailbox_id, lambda box: box.search(**criteria)), as_json=as_json)


def _people(addresses: tuple[Address, ...]) -> str:
    return ", ".join(f"{a.name} <{a.email}>" if a.name else a.email for a in addresses)


@app.command("show")
def show(
    mailbox_id: str = MAILBOX,
    ref: str = typer.Argument(..., help="The message's ref."),
    tenant: str = TENANT,
    html: bool = typer.Option(False, "--html", help="Print the HTML part, sanitized, instead of the text."),
    as_json: bool = JSON,
) -> None:
    """Print a message's headers, attachments and text (or its sanitized HTML)."""
    mode = HtmlMode.SANITIZED if html or as_json else HtmlMode.NONE
    view = run_on_mailbox(tenant, mailbox_id, lambda box: box.message(ref, html=mode))
    if as_json:
        print_json(MessageOut.model_validate(view.to_dict()).model_dump(mode="json", by_alias=True))
        return
    message = view.message
    headers = [
        ("From", _people(message.from_)),
        ("To", _people(message.to)),
        ("Cc", _people(message.cc)),
        ("Date", message.date.isoformat() if message.date else message.date_raw or ""),
        ("Subject", message.subject),
        ("Message-ID", message.message_id or ""),
        ("Folder", message.folder),
        ("Flags", ", ".join(message.flags)),
    ]
    for name, value in headers:
        if value:
            typer.echo(f"{name}: {value}")
    for part in message.attachments:
        name = part.filename or "(no name)"
        typer.echo(f"Attachment {part.index}: {name} ({part.content_type}, {part.size} bytes)")
    typer.echo("")
    if html:
        if view.html is None:
            raise InputError(
                "the message has no HTML part", field="html", hint="Leave out --html to read its text."
            )
        typer.echo(view.html)
    else:
        typer.echo(message.text if message.text is not None else "(no text part: try --html)")


@app.command("thread")
def thread(
    mailbox_id: str = MAILBOX,
    key: str = typer.Argument(..., help="A thread key (`thread_key` of a listed message)."),
    tenant: str = TENANT,
    as_json: bool = JSON,
) -> None:
    """List a conversation, oldest first, across the inbox and the sent folder."""
    items = run_on_mailbox(tenant, mailbox_id, lambda box: box.thread(key))
    print_page(MessagePage(items, None), as_json=as_json, folders=True)


@app.command("raw")
def raw(
    mailbox_id: str = MAILBOX,
    ref: str = typer.Argument(..., help="The message's ref."),
    tenant: str = TENANT,
) -> None:
    """Write the message's source (RFC 5322) to stdout: `> message.eml`."""
    source = run_on_mailbox(tenant, mailbox_id, lambda box: box.raw(ref))
    sys.stdout.buffer.write(source)
    sys.stdout.flush()


@app.command("flag")
def flag(
    mailbox_id: str = MAILBOX,
    refs: list[str] = REFS,
    tenant: str = TENANT,
    add: list[str] | None = typer.Option(
        None, help="seen, flagged, answered, draft or a keyword (repeatable, or a,b)."
    ),
    remove: list[str] | None = typer.Option(None, help="Flags to clear (as --add)."),
) -> None:
    """Set and clear flags on one or more messages."""
    added, removed = flag_names(add), flag_names(remove)
    run_on_mailbox(tenant, mailbox_id, lambda box: box.flag(refs, add=added, remove=removed))
    typer.echo(f"updated {len(refs)} message{'s' if len(refs) != 1 else ''}")


@app.command("move")
def move(
    mailbox_id: str = MAILBOX,
    refs: list[str] = REFS,
    tenant: str = TENANT,
    to: str = typer.Option(..., "--to", help="The destination folder's path."),
    as_json: bool = JSON,
) -> None:
    """Move one or more messages to another folder (prints each new ref)."""
    moved = run_on_mailbox(tenant, mailbox_id, lambda box: box.move(refs, to))
    pairs = [(m.old.encode(), m.new.encode() if m.new else None) for m in moved]
    if as_json:
        print_json(
            MovedList(data=[MovedItem(ref=old, new_ref=new) for old, new in pairs]).model_dump(mode="json")
        )
        return
    for old, new in pairs:
        typer.echo(f"{old} -> {new or '(new ref unknown)'}")


@app.command("delete")
def delete(
    mailbox_id: str = MAILBOX,
    refs: list[str] = REFS,
    tenant: str = TENANT,
    permanent: bool = typer.Option(False, help="Expunge for good instead of moving to the trash."),
) -> None:
    """Delete one or more messages: to the trash folder, or for good with --permanent."""
    run_on_mailbox(tenant, mailbox_id, lambda box: box.delete(refs, permanent=permanent))
    where = "expunged" if permanent else "moved to the trash"
    typer.echo(f"{where}: {len(refs)} message{'s' if len(refs) != 1 else ''}")


@app.command("import")
def import_message(
    mailbox_id: str = MAILBOX,
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True, help="An .eml file."),
    tenant: str = TENANT,
    folder: str = FOLDER,
    flags: list[str] | None = typer.Option(None, "--flag", help="A flag to set (repeatable, or a,b)."),
    received_at: str | None = typer.Option(None, help="The date the server records (ISO 8601)."),
) -> None:
    """Store a message (its RFC 5322 source) in a folder."""
    source = file.read_bytes()
    names, when = flag_names(flags), parse_when(received_at, "received_at")
    ref = run_on_mailbox(
        tenant,
        mailbox_id,
        lambda box: box.import_message(source, folder=folder, flags=names, received_at=when),
    )
    typer.echo(f"imported {ref.encode() if ref else '(ref unknown)'}")
