"""``mailport send MAILBOX …`` and ``mailport outbox list|show|cancel``: queue a message from
a mailbox and watch the outbound queue.

Each command is one call of the library's mailbox handle (:mod:`mailport.mailboxes.handle`), so
it validates and answers exactly as the API's send and outbox routes do. The message is sent by
the send worker of ``mailport serve`` (or ``mailport worker``) working on the same database;
``--wait`` waits for it. Attachments' content types are guessed from their names (``mimetypes``).
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

from mailport.cli.services import print_json, run_on_mailbox
from mailport.cli.tables import print_table
from mailport.errors import InputError
from mailport.mailboxes.handle import MailboxHandle
from mailport.sending.models import Forward, OutboundMessage, OutboundPage, ReplyTo, SendState
from mailport.sending.schemas import OutboundOut, OutboxPage

outbox_app = typer.Typer(help="A mailbox's outbound queue.", no_args_is_help=True)

TENANT = typer.Option(..., "--tenant", "-t", envvar="MAILPORT_TENANT", help="Tenant id or name.")
MAILBOX = typer.Argument(..., help="The mailbox (mbx_…).")
SEND_ID = typer.Argument(..., help="The send (snd_…), as `send` or `outbox list` printed it.")
JSON = typer.Option(False, "--json", help="Print JSON (the API's shape).")


def send_json(send: OutboundMessage) -> dict[str, Any]:
    return OutboundOut.from_model(send).to_json()


def _read(path: str, what: str) -> bytes:
    """A file's bytes; ``-`` is standard input."""
    if path == "-":
        stream = getattr(sys.stdin, "buffer", None)  # a text stream without one: encode its text
        return stream.read() if stream is not None else sys.stdin.read().encode("utf-8")
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {what} {path!r}: {exc.strerror or exc}", field=what) from None


def _text(path: str, what: str) -> str:
    data = _read(path, what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{what} {path!r} is not UTF-8 text", field=what) from None


def parse_send_at(value: str | None) -> datetime | None:
    """An ISO 8601 time with its zone (``2026-12-06T09:00:00+01:00``, ``…Z``): a time alone
    would mean a different hour on the machine that sends than on the one that asked."""
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise InputError(
            f"--send-at: not a time: {value!r}",
            field="send_at",
            hint="Give a time like 2026-12-06T09:00:00Z.",
        ) from None
    if when.tzinfo is None:
        raise InputError(
            f"--send-at: {value!r} has no timezone",
            field="send_at",
            hint="Add the zone: 2026-12-06T09:00:00Z or 2026-12-06T09:00:00+01:00.",
        )
    return when


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if value else ""


def _error(send: OutboundMessage) -> str:
    error = send.last_error
    if error is None:
        return ""
    said = f" {error.smtp_code} {error.server_said}" if error.smtp_code else ""
    return f"{error.code}:{said or ' ' + error.message}".strip()


def _print_send(send: OutboundMessage) -> None:
    rows = [
        ("id", send.id),
        ("state", send.state.value),
        ("message-id", send.message_id),
        ("from", send.sender),
        ("recipients", ", ".join(send.recipients)),
        ("subject", send.subject or ""),
        ("size", str(send.size)),
        ("attempts", str(send.attempts)),
        ("send at", _when(send.send_at)),
        ("next attempt", _when(send.next_attempt_at)),
        ("sent at", _when(send.sent_at)),
        ("server said", send.smtp_reply or ""),
        ("refused", ", ".join(f"{k}: {v}" for k, v in send.refused.items())),
        ("last error", _error(send)),
        ("sent copy", send.sent_copy.value),
        ("created", _when(send.created_at)),
    ]
    print_table(("", ""), [row for row in rows if row[1]], show_header=False)


def send_command(
    mailbox_id: str = MAILBOX,
    tenant: str = TENANT,
    to: list[str] | None = typer.Option(
        None, "--to", help="A recipient (repeatable): ann@example.org or 'Ann <ann@…>'."
    ),
    cc: list[str] | None = typer.Option(None, "--cc", help="A Cc recipient (repeatable)."),
    bcc: list[str] | None = typer.Option(
        None, "--bcc", help="A Bcc recipient (repeatable; never in the message)."
    ),
    from_: str | None = typer.Option(
        None,
        "--from",
        help="The mailbox's address or one of its aliases (default: the mailbox, with its From name).",
    ),
    reply_to: list[str] | None = typer.Option(
        None, "--reply-to-address", help="A Reply-To address (repeatable)."
    ),
    subject: str | None = typer.Option(
        None, "--subject", "-s", help="The subject (default with --reply/--forward: Re:/Fwd:)."
    ),
    text: str | None = typer.Option(None, "--text", help="The plain-text body."),
    text_file: str | None = typer.Option(
        None, "--text-file", metavar="F", help="The plain-text body from a file (- for stdin)."
    ),
    html_file: str | None = typer.Option(
        None, "--html-file", metavar="F", help="The HTML body from a file (a text part is made from it)."
    ),
    raw_file: str | None = typer.Option(
        None,
        "--raw-file",
        metavar="F",
        help="The whole message (RFC 5322) from a file (- for stdin); Bcc is stripped.",
    ),
    attach: list[Path] | None = typer.Option(
        None, "--attach", metavar="FILE", help="Attach a file (repeatable)."
    ),
    header: list[str] | None = typer.Option(
        None, "--header", help="An extra header `Name: value` (repeatable)."
    ),
    reply: str | None = typer.Option(
        None, "--reply", metavar="REF", help="Answer this message (ref_… or msg_…)."
    ),
    reply_all: bool = typer.Option(False, "--all", help="With --reply: to everyone the original went to."),
    no_quote: bool = typer.Option(False, "--no-quote", help="With --reply: do not quote the original."),
    forward: str | None = typer.Option(
        None, "--forward", metavar="REF", help="Forward this message (attached)."
    ),
    send_at: str | None = typer.Option(
        None, "--send-at", metavar="ISO", help="Send at this time (with its zone)."
    ),
    sent_copy: bool | None = typer.Option(
        None, "--sent-copy/--no-sent-copy", help="Store a copy in Sent (default: the mailbox's setting)."
    ),
    idempotency_key: str | None = typer.Option(
        None, "--idempotency-key", metavar="K", help="The same key and message within 24 h sends once."
    ),
    wait: float | None = typer.Option(
        None,
        "--wait",
        metavar="SECONDS",
        min=0,
        help="Wait until it is sent or failed (a worker must be running).",
    ),
    as_json: bool = JSON,
) -> None:
    """Send a message from a mailbox: queued at once, sent by the service's send worker."""
    bodies = [name for name, value in (("--text", text), ("--text-file", text_file)) if value is not None]
    if len(bodies) > 1:
        raise InputError("give --text or --text-file, not both", field="text")
    if raw_file is not None:
        others = {
            "--to": to, "--cc": cc, "--bcc": bcc, "--from": from_, "--reply-to-address": reply_to,
            "--subject": subject, "--text": text, "--text-file": text_file, "--html-file": html_file,
            "--attach": attach, "--header": header, "--reply": reply, "--forward": forward,
        }  # fmt: skip
        given = [name for name, value in others.items() if value]
        if given:
            raise InputError(f"--raw-file is the whole message: leave out {', '.join(given)}", field="raw")
    elif not (text is not None or text_file or html_file or reply or forward):
        raise InputError(
            "give the message: --text, --text-file, --html-file or --raw-file",
            field="text",
            hint="mailport send MAILBOX --to ann@example.org --subject Hello --text 'Hello Ann'",
        )
    headers: dict[str, str] = {}
    for line in header or ():
        name, colon, value = line.partition(":")
        if not colon:
            raise InputError(f"--header {line!r}: write it as `Name: value`", field="headers")
        headers[name.strip()] = value.strip()
    when = parse_send_at(send_at)
    raw = _read(raw_file, "raw-file") if raw_file is not None else None
    body_text = _text(text_file, "text-file") if text_file else text
    body_html = _text(html_file, "html-file") if html_file else None
    reply_to_message = ReplyTo(reply, all=reply_all, quote=not no_quote) if reply else None

    async def action(box: MailboxHandle) -> OutboundMessage:
        send = await box.send(
            to=to or (),
            cc=cc or (),
            bcc=bcc or (),
            from_=from_,
            reply_to=reply_to or (),
            subject=subject,
            text=body_text,
            html=body_html,
            attachments=list(attach or ()),
            headers=headers,
            reply=reply_to_message,
            forward=Forward(forward) if forward else None,
            raw=raw,
            send_at=when,
            sent_copy=sent_copy,
            idempotency_key=idempotency_key,
        )
        if wait:
            return await box.wait_for_send(send.id, timeout=wait)
        return send

    send = run_on_mailbox(tenant, mailbox_id, action)
    if as_json:
        print_json(send_json(send))
    else:
        typer.echo(f"{send.state.value} {send.id} <{send.message_id}>")
        if send.state is SendState.SENT and send.smtp_reply:
            typer.echo(f"server said: {send.smtp_reply}")
        elif send.last_error is not None:
            typer.echo(f"last error: {_error(send)}")
    if wait:
        if send.state is SendState.FAILED:
            raise typer.Exit(1)
        if send.state not in (SendState.SENT, SendState.CANCELLED):
            typer.echo(
                f"still {send.state.value} after {wait:g} s "
                "(is `mailport serve` or `mailport worker` running?)",
                err=True,
            )
            raise typer.Exit(1)


def _print_page(page: OutboundPage, as_json: bool) -> None:
    if as_json:
        print_json(
            OutboxPage(
                items=[OutboundOut.from_model(s) for s in page.items], next_cursor=page.next_cursor
            ).model_dump(mode="json", by_alias=True)
        )
        return
    print_table(
        ("id", "state", "created", "recipients", "subject", "last error"),
        [
            (
                send.id,
                send.state.value,
                _when(send.created_at),
                ", ".join(send.recipients),
                send.subject or "",
                _error(send),
            )
            for send in page.items
        ],
    )
    if page.next_cursor:
        typer.echo(f"more: --cursor {page.next_cursor}")


@outbox_app.command("list")
def list_outbox(
    mailbox_id: str = MAILBOX,
    tenant: str = TENANT,
    state: SendState | None = typer.Option(None, "--state", help="Only sends in this state."),
    limit: int = typer.Option(50, "--limit", "-n", min=1, max=200, help="Sends per page."),
    cursor: str | None = typer.Option(
        None, "--cursor", help="Continue after the page that printed this cursor."
    ),
    as_json: bool = JSON,
) -> None:
    """The outbound queue, newest first."""
    page = run_on_mailbox(tenant, mailbox_id, lambda box: box.outbox(state=state, limit=limit, cursor=cursor))
    _print_page(page, as_json)


@outbox_app.command("show")
def show(
    mailbox_id: str = MAILBOX, send_id: str = SEND_ID, tenant: str = TENANT, as_json: bool = JSON
) -> None:
    """One send: its state, the server's answer or its last error."""
    send = run_on_mailbox(tenant, mailbox_id, lambda box: box.send_status(send_id))
    if as_json:
        print_json(send_json(send))
    else:
        _print_send(send)


@outbox_app.command("cancel")
def cancel(
    mailbox_id: str = MAILBOX, send_id: str = SEND_ID, tenant: str = TENANT, as_json: bool = JSON
) -> None:
    """Cancel a scheduled or queued send."""
    send = run_on_mailbox(tenant, mailbox_id, lambda box: box.cancel_send(send_id))
    if as_json:
        print_json(send_json(send))
    else:
        typer.echo(f"cancelled {send.id}")
