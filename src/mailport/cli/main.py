"""``mailport …``: the service, and the operator's tools.

Errors are one line on stderr (``error [code]: message — hint``) and a non-zero exit,
never a traceback.
"""

from __future__ import annotations

import sys

import typer

from mailport import __version__
from mailport.config import load_settings
from mailport.errors import MailportError
from mailport.logs import configure_logging

app = typer.Typer(
    name="mailport",
    help="Connect any mailbox to your application.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.command()
def version() -> None:
    """Print mailport's version."""
    typer.echo(__version__)


@app.command()
def serve(
    host: str | None = typer.Option(None, help="Listen address (default MAILPORT_HOST or 127.0.0.1)."),
    port: int | None = typer.Option(None, help="Port (default MAILPORT_PORT or 8025)."),
) -> None:
    """Run the REST API, the web wizard and the mailbox watchers."""
    from mailport.api.server import run

    settings = load_settings()
    if host is not None:
        settings.host = host
    if port is not None:
        settings.port = port
    configure_logging(settings.log_level)

    def listening(url: str) -> None:
        typer.echo(f"mailport {__version__} listening on {url}", err=True)

    # binds first (a taken port is one line), builds the services once (migrations on the
    # embedded default, the key check), and says "listening" only when it is
    run(settings, on_listening=listening)


from mailport.cli import db, keys, mailboxes, tenants  # noqa: E402  (command groups)
from mailport.cli import oauth as oauth_cli  # noqa: E402

app.add_typer(tenants.app, name="tenants")
app.add_typer(db.app, name="db")
app.add_typer(keys.app, name="keys")
app.add_typer(mailboxes.app, name="mailboxes")
from mailport.cli import folders, messages  # noqa: E402  (a mailbox's folders and messages)

app.add_typer(folders.app, name="folders")
app.add_typer(messages.app, name="messages")
from mailport.cli import send as send_cli  # noqa: E402  (sending and the outbound queue)

app.command("send")(send_cli.send_command)
app.add_typer(send_cli.outbox_app, name="outbox")
from mailport.cli import drafts as drafts_cli  # noqa: E402  (a mailbox's drafts)

app.add_typer(drafts_cli.app, name="drafts")
from mailport.cli import contacts as contacts_cli  # noqa: E402  (contact books)

app.add_typer(contacts_cli.app, name="contacts")
from mailport.cli.detect import detect_command  # noqa: E402

app.command(name="detect")(detect_command)
app.command("connect")(oauth_cli.connect)
from mailport.cli.check import check_command  # noqa: E402

app.command(name="check")(check_command)
from mailport.cli import watch as watch_cli  # noqa: E402
from mailport.cli import worker as worker_cli  # noqa: E402

app.command("worker")(worker_cli.worker)
from mailport.cli import workers as workers_cli  # noqa: E402  (the fleet: mailport workers list|show)

app.add_typer(workers_cli.app, name="workers")
app.command("watch")(watch_cli.watch_command)
from mailport.cli import events as events_cli  # noqa: E402  (the event log)
from mailport.cli import webhooks as webhooks_cli  # noqa: E402  (webhook endpoints)

app.add_typer(webhooks_cli.app, name="webhooks")
app.add_typer(events_cli.app, name="events")
from mailport.cli import declare as declare_cli  # noqa: E402  (accounts as a file)

app.command("apply")(declare_cli.apply_command)
app.command("export")(declare_cli.export_command)


def main() -> None:
    """Console-script entry point: run the Typer app, rendering mailport errors as one line."""
    try:
        code = app(standalone_mode=False)  # a command's typer.Exit(n) comes back as n here
        if isinstance(code, int) and code:
            sys.exit(code)
    except MailportError as exc:
        typer.echo(f"error [{exc.code}]: {exc.message} — {exc.hint}", err=True)
        sys.exit(1)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # click usage errors and the like (click's, or typer's vendored click)
        show, exit_code = getattr(exc, "show", None), getattr(exc, "exit_code", None)
        if callable(show) and isinstance(exit_code, int):
            show()
            sys.exit(exit_code)  # 2 for usage errors, 1 for other click errors
        raise


if __name__ == "__main__":
    main()
