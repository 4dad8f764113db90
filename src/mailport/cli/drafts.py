"""``mailport drafts list|show|create|replace|delete|send``: a mailbox's drafts, kept in its
drafts folder on the server (where every mail client of the account sees them).

The message options are ``mailport send``'s, and the request is validated by the same model as
the API's drafts routes (:class:`~mailport.sending.schemas.MessageIn`), so a bad address or an
unknown header is refused with the same message. Each command is one call of
:attr:`mailport.services.Services.drafts`. ``send`` queues the draft; the send worker of
``mailport serve`` (or ``mailport worker``) sends it and then deletes the draft.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import typer

from mailport.cli.messages import print_page
from mailport.cli.send import send_json
from mailport.cli.services import print_json, run_with_services
from mailport.errors import InputError
from mailport.library import Mailport
from mailport.mailboxes.handle import attachment_json, checked
from mailport.mailboxes.mail_schemas import MessageOut
from mailport.mailboxes.message_view import HtmlMode
from mailport.sending.drafts import DraftService, StoredDraft
from mailport.sending.models import SendRequest
from mailport.sending.schemas import MessageIn, check_idempotency_key
from mailport.services import Services

T = TypeVar("T")

app = typer.Typer(help="A mailbox's drafts (its drafts folder).", no_args_is_help=True)

TENANT = typer.Option(..., "--tenant", "-t", envvar="MAILPORT_TENANT", help="Tenant id or name.")
MAILBOX = typer.Argument(..., help="The mailbox (mbx_…).")
REF = typer.Argument(..., help="The draft's ref (ref_…), as `drafts list` shows it.")
JSON = typer.Option(False, "--json", help="Print JSON (the API's shape).")

TO = typer.Option(None, "--to", help="A recipient (repeatable): ann@example.org or 'Ann <ann@…>'.")
CC = typer.Option(None, "--cc", help="A Cc recipient (repeatable).")
BCC = typer.Option(None, "--bcc", help="A Bcc recipient (repeatable; kept in the draft, never sent).")
FROM = typer.Option(None, "--from", help="The mailbox's address or one of its aliases.")
REPLY_TO = typer.Option(None, "--reply-to-address", help="A Reply-To address (repeatable).")
SUBJECT = typer.Option(
    None, "--subject", "-s", help="The subject (default with --reply/--forward: Re:/Fwd:)."
)
TEXT = typer.Option(None, "--text", help="The plain-text body.")
TEXT_FILE = typer.Option(None, "--text-file", metavar="F", help="The plain-text body from a file.")
HTML_FILE = typer.Option(None, "--html-file", metavar="F", help="The HTML body from a file.")
ATTACH = typer.Option(None, "--attach", metavar="FILE", help="Attach a file (repeatable).")
HEADER = typer.Option(None, "--header", help="An extra header `Name: value` (repeatable).")
REPLY = typer.Option(None, "--reply", metavar="REF", help="A reply to this message (ref_… or msg_…).")
REPLY_ALL = typer.Option(False, "--all", help="With --reply: to everyone the original went to.")
NO_QUOTE = typer.Option(False, "--no-quote", help="With --reply: do not quote the original.")
FORWARD = typer.Option(None, "--forward", metavar="REF", help="Forward this message (attached).")


def _on_drafts(tenant: str, action: Callable[[DraftService, str], Awaitable[T]]) -> T:
    """Run ``action`` with the drafts service and the tenant's id (tenant by id or name)."""

    async def on_services(services: Services) -> T:
        return await action(services.drafts, await Mailport(services=services).tenant_id(tenant))

    return run_with_services(on_services)


def _text(path: str, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(f"--{what} {path!r} is not UTF-8 text", field=what) from None
    except OSError as exc:
        raise InputError(f"cannot read --{what} {path!r}: {exc.strerror or exc}", field=what) from None


def message_request(
    *,
    to: list[str] | None,
    cc: list[str] | None,
    bcc: list[str] | None,
    from_: str | None,
    reply_to: list[str] | None,
    subject: str | None,
    text: str | None,
    text_file: str | None,
    html_file: str | None,
    attach: list[Path] | None,
    header: list[str] | None,
    reply: str | None,
    reply_all: bool,
    no_quote: bool,
    forward: str | None,
) -> SendRequest:
    """The options as the API's drafts body, validated by the same model."""
    if text is not None and text_file is not None:
        raise InputError("give --text or --text-file, not both", field="text")
    headers: dict[str, str] = {}
    for line in header or ():
        name, colon, value = line.partition(":")
        if not colon:
            raise InputError(f"--header {line!r}: write it as `Name: value`", field="headers")
        headers[name.strip()] = value.strip()
    data: dict[str, Any] = {
        "from": from_,
        "to": to,
        "cc": cc,
        "bcc": bcc,
        "reply_to": reply_to,
        "subject": subject,
        "text": _text(text_file, "text-file") if text_file else text,
        "html": _text(html_file, "html-file") if html_file else None,
        "attachments": [attachment_json(path) for path in attach or ()],
        "headers": headers,
        "reply": {"ref": reply, "all": reply_all, "quote": not no_quote} if reply else None,
        "forward": {"ref": forward} if forward else None,
    }
    return checked(MessageIn, {k: v for k, v in data.items() if v not in (None, [], {})}).to_request()


def _print_stored(stored: StoredDraft, as_json: bool, verb: str) -> None:
    if as_json:
        print_json(stored.to_json())
    else:
        typer.echo(f"{verb} {stored.ref or '(the server gave no ref)'} <{stored.message_id}>")


@app.command("list")
def list_drafts(
    mailbox_id: str = MAILBOX,
    tenant: str = TENANT,
    limit: int = typer.Option(50, "--limit", "-n", min=1, max=500, help="Drafts per page."),
    cursor: str | None = typer.Option(
        None, "--cursor", help="Continue after the page that printed this cursor."
    ),
    as_json: bool = JSON,
) -> None:
    """The drafts, newest first."""
    found = _on_drafts(tenant, lambda drafts, t: drafts.list(t, mailbox_id, limit=limit, cursor=cursor))
    print_page(found.page, as_json=as_json)


@app.command("show")
def show(mailbox_id: str = MAILBOX, ref: str = REF, tenant: str = TENANT, as_json: bool = JSON) -> None:
    """A draft's recipients, subject and text."""
    mode = HtmlMode.SANITIZED if as_json else HtmlMode.NONE
    view = _on_drafts(tenant, lambda drafts, t: drafts.get(t, mailbox_id, ref, html=mode))
    if as_json:
        print_json(MessageOut.model_validate(view.to_dict()).model_dump(mode="json", by_alias=True))
        return
    message = view.message
    for name, people in (("To", message.to), ("Cc", message.cc), ("Bcc", message.bcc)):
        if people:
            typer.echo(
                f"{name}: " + ", ".join(a.email if not a.name else f"{a.name} <{a.email}>" for a in people)
            )
    typer.echo(f"Subject: {message.subject}")
    typer.echo(f"Message-ID: {message.message_id or ''}")
    for part in message.attachments:
        name = part.filename or "(no name)"
        typer.echo(f"Attachment {part.index}: {name} ({part.content_type}, {part.size} bytes)")
    typer.echo("")
    typer.echo(message.text if message.text is not None else "(no text part)")


@app.command("create")
def create(
    mailbox_id: str = MAILBOX,
    tenant: str = TENANT,
    to: list[str] | None = TO,
    cc: list[str] | None = CC,
    bcc: list[str] | None = BCC,
    from_: str | None = FROM,
    reply_to: list[str] | None = REPLY_TO,
    subject: str | None = SUBJECT,
    text: str | None = TEXT,
    text_file: str | None = TEXT_FILE,
    html_file: str | None = HTML_FILE,
    attach: list[Path] | None = ATTACH,
    header: list[str] | None = HEADER,
    reply: str | None = REPLY,
    reply_all: bool = REPLY_ALL,
    no_quote: bool = NO_QUOTE,
    forward: str | None = FORWARD,
    as_json: bool = JSON,
) -> None:
    """Store a new draft; prints its ref and Message-ID."""
    request = message_request(
        to=to,
        cc=cc,
        bcc=bcc,
        from_=from_,
        reply_to=reply_to,
        subject=subject,
        text=text,
        text_file=text_file,
        html_file=html_file,
        attach=attach,
        header=header,
        reply=reply,
        reply_all=reply_all,
        no_quote=no_quote,
        forward=forward,
    )
    stored = _on_drafts(tenant, lambda drafts, t: drafts.create(t, mailbox_id, request))
    _print_stored(stored, as_json, "stored")


@app.command("replace")
def replace(
    mailbox_id: str = MAILBOX,
    ref: str = REF,
    tenant: str = TENANT,
    to: list[str] | None = TO,
    cc: list[str] | None = CC,
    bcc: list[str] | None = BCC,
    from_: str | None = FROM,
    reply_to: list[str] | None = REPLY_TO,
    subject: str | None = SUBJECT,
    text: str | None = TEXT,
    text_file: str | None = TEXT_FILE,
    html_file: str | None = HTML_FILE,
    attach: list[Path] | None = ATTACH,
    header: list[str] | None = HEADER,
    reply: str | None = REPLY,
    reply_all: bool = REPLY_ALL,
    no_quote: bool = NO_QUOTE,
    forward: str | None = FORWARD,
    as_json: bool = JSON,
) -> None:
    """Replace a draft with a new version (the whole message); prints the new ref."""
    request = message_request(
        to=to,
        cc=cc,
        bcc=bcc,
        from_=from_,
        reply_to=reply_to,
        subject=subject,
        text=text,
        text_file=text_file,
        html_file=html_file,
        attach=attach,
        header=header,
        reply=reply,
        reply_all=reply_all,
        no_quote=no_quote,
        forward=forward,
    )
    stored = _on_drafts(tenant, lambda drafts, t: drafts.replace(t, mailbox_id, ref, request))
    _print_stored(stored, as_json, "replaced by")


@app.command("delete")
def delete(mailbox_id: str = MAILBOX, ref: str = REF, tenant: str = TENANT) -> None:
    """Delete a draft for good."""
    _on_drafts(tenant, lambda drafts, t: drafts.delete(t, mailbox_id, ref))
    typer.echo(f"deleted {ref}")


@app.command("send")
def send(
    mailbox_id: str = MAILBOX,
    ref: str = REF,
    tenant: str = TENANT,
    idempotency_key: str | None = typer.Option(
        None, "--idempotency-key", metavar="K", help="The same key and draft within 24 h sends once."
    ),
    as_json: bool = JSON,
) -> None:
    """Queue a draft for sending; the draft is deleted once it is sent."""
    if idempotency_key is not None:
        try:
            check_idempotency_key(idempotency_key)
        except ValueError as exc:
            raise InputError(f"--idempotency-key: {exc}", field="idempotency_key") from None
    queued = _on_drafts(
        tenant, lambda drafts, t: drafts.send(t, mailbox_id, ref, idempotency_key=idempotency_key)
    )
    if as_json:
        print_json(send_json(queued.send))
    else:
        typer.echo(f"{queued.send.state.value} {queued.send.id} <{queued.send.message_id}>")
