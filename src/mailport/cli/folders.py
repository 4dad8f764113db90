"""``mailport folders list|create|rename|delete``: a mailbox's folders, live from its server.

Each command is one call of the library's mailbox handle (:mod:`mailport.mailboxes.handle`), so
it answers exactly as the API's folder routes do (``folder_exists``, ``folder_not_found`` …).
"""

from __future__ import annotations

import typer

from mailport.cli.services import print_json, run_on_mailbox
from mailport.cli.tables import print_table
from mailport.connectors.folders import Folder
from mailport.mailboxes.folders import FolderOut

app = typer.Typer(help="A mailbox's folders, live from its server.", no_args_is_help=True)

TENANT = typer.Option(..., "--tenant", "-t", envvar="MAILPORT_TENANT", help="Tenant id or name.")
MAILBOX = typer.Argument(..., help="The mailbox (mbx_…).")
JSON = typer.Option(False, "--json", help="Print JSON (the API's shape).")


def _json(folder: Folder) -> dict[str, object]:
    return FolderOut.model_validate(folder).model_dump(mode="json")


def _count(value: int | None) -> str:
    return "" if value is None else str(value)


@app.command("list")
def list_folders(mailbox_id: str = MAILBOX, tenant: str = TENANT, as_json: bool = JSON) -> None:
    """List the folders with their roles and message / unseen counts."""
    folders = run_on_mailbox(tenant, mailbox_id, lambda box: box.folders())
    if as_json:
        print_json([_json(folder) for folder in folders])
        return
    print_table(
        ("path", "role", "messages", "unseen", "subscribed"),
        [
            (
                folder.path,
                folder.role.value if folder.role else "",
                _count(folder.messages),
                _count(folder.unseen),
                "yes" if folder.subscribed else "",
            )
            for folder in folders
        ],
    )


@app.command("create")
def create(
    mailbox_id: str = MAILBOX,
    name: str = typer.Argument(..., help="The new folder's name (one level, any characters)."),
    tenant: str = TENANT,
    parent: str | None = typer.Option(None, help="Create it under this folder (a path)."),
    as_json: bool = JSON,
) -> None:
    """Create a folder (under the personal namespace's prefix, with its separator)."""
    folder = run_on_mailbox(tenant, mailbox_id, lambda box: box.create_folder(name, parent=parent))
    if as_json:
        print_json(_json(folder))
    else:
        typer.echo(f"created {folder.path}")


@app.command("rename")
def rename(
    mailbox_id: str = MAILBOX,
    path: str = typer.Argument(..., help="The folder's path, as `folders list` shows it."),
    name: str = typer.Argument(..., help="Its new name (one level)."),
    tenant: str = TENANT,
    parent: str | None = typer.Option(
        None, help='Move it under this folder (a path); "" moves it to the top level.'
    ),
    as_json: bool = JSON,
) -> None:
    """Rename a folder, or move it under another."""
    folder = run_on_mailbox(tenant, mailbox_id, lambda box: box.rename_folder(path, name=name, parent=parent))
    if as_json:
        print_json(_json(folder))
    else:
        typer.echo(f"renamed {path} to {folder.path}")


@app.command("delete")
def delete(
    mailbox_id: str = MAILBOX,
    path: str = typer.Argument(..., help="The folder's path, as `folders list` shows it."),
    tenant: str = TENANT,
) -> None:
    """Delete a folder and the messages in it."""
    run_on_mailbox(tenant, mailbox_id, lambda box: box.delete_folder(path))
    typer.echo(f"deleted {path}")
