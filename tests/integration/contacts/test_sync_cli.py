"""``mailport mailboxes add|update --owner --contacts POLICY --contacts-days N``: validated like
the API, one line on bad input."""

from __future__ import annotations

import json

from tests.integration.store.test_cli import Cli, cli, one_line_error

__all__ = ["cli"]  # the fixture


def test_owner_and_contact_harvesting_from_the_command_line(cli: Cli) -> None:
    cli("db", "upgrade")
    cli("tenants", "create", "acme")
    added = json.loads(
        cli(
            "mailboxes", "add", "me@example.com", "-t", "acme", "--imap-host", "imap.example.com",
            "--password-env", "MP_PW", "--owner", " ann ", "--contacts", "sent_only", "--contacts-days", "30",
            "--json", MP_PW="pw",
        ).stdout
    )  # fmt: skip
    assert added["owner"] == "ann"
    assert added["settings"]["contacts"]["policy"] == "sent_only"
    assert added["settings"]["contacts"]["backfill_days"] == 30

    changed = cli(
        "mailboxes", "update", added["id"], "-t", "acme", "--owner", "", "--contacts", "sent_and_received"
    )
    assert (
        changed.stdout.strip()
        == f"updated {added['id']} (me@example.com): owner -, contacts sent_and_received"
    )
    shown = json.loads(cli("mailboxes", "show", added["id"], "-t", "acme", "--json").stdout)
    assert shown["owner"] is None and shown["settings"]["contacts"]["backfill_days"] == 30
    off = cli("mailboxes", "update", added["id"], "-t", "acme", "--contacts", "none")
    assert off.stdout.strip().endswith("contacts none")

    one_line_error(
        cli("mailboxes", "update", added["id"], "-t", "acme", "--contacts", "all", ok=False), "invalid_input"
    )
    one_line_error(
        cli("mailboxes", "update", added["id"], "-t", "acme", "--contacts-days", "0", ok=False),
        "invalid_input",
    )
    one_line_error(cli("mailboxes", "update", added["id"], "-t", "acme", ok=False), "invalid_input")
    one_line_error(
        cli("mailboxes", "add", "x@example.com", "-t", "acme", "--imap-host", "imap.example.com",
            "--password-env", "MP_PW", "--owner", "x" * 201, ok=False, MP_PW="pw"),
        "invalid_input",
    )  # fmt: skip
    one_line_error(
        cli("mailboxes", "update", "mbx_nope", "-t", "acme", "--owner", "bo", ok=False), "not_found"
    )
