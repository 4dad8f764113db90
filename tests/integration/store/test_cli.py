"""The operator's CLI against a real database: tenants, keys, mailboxes, db, one-line errors.

Run in-process through the console script's ``main`` (a subprocess per command costs ~1 s).
"""

from __future__ import annotations

import io
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from mailport.cli.main import main
from mailport.crypto import generate_key
from mailport.store import head_revision


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


class Cli:
    """Runs ``mailport …`` in this process (the console script's ``main``), as a shell would."""

    def __init__(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], cwd: Path, **env: str
    ):
        self.monkeypatch, self.capsys = monkeypatch, capsys
        for name in [k for k in os.environ if k.startswith("MAILPORT_")]:
            monkeypatch.delenv(name)
        monkeypatch.chdir(cwd)
        self.env = env

    def __call__(self, *args: str, input: str | None = None, ok: bool = True, **env: str) -> Result:
        with self.monkeypatch.context() as patch:
            for name, value in (self.env | env).items():
                patch.setenv(name, value)
            patch.setattr(sys, "argv", ["mailport", *args])
            patch.setattr(sys, "stdin", io.StringIO(input or ""))
            self.capsys.readouterr()
            try:
                main()
                code = 0
            except SystemExit as exc:
                code = int(exc.code or 0)
            out, err = self.capsys.readouterr()
        result = Result(code, out, err)
        if ok:
            assert code == 0, err
        return result


@pytest.fixture
def cli(
    fresh_database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Cli:
    return Cli(
        monkeypatch,
        capsys,
        tmp_path,
        MAILPORT_DATABASE_URL=fresh_database_url,
        MAILPORT_SECRET_KEYS=generate_key(),
    )


def one_line_error(result: Result, code: str) -> None:
    assert result.returncode == 1, result
    lines = [line for line in result.stderr.splitlines() if line.startswith("error [")]
    assert lines and lines[0].startswith(f"error [{code}]: "), result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_tenants_mailboxes_and_keys_from_the_command_line(cli: Cli):
    assert f"-> {head_revision()}" in cli("db", "upgrade").stdout
    created = json.loads(cli("tenants", "create", "acme", "--json").stdout)
    assert set(created) == {"id", "name", "api_key"} and created["api_key"].startswith("mp_live_")
    one_line_error(cli("tenants", "create", "acme", ok=False), "conflict")

    keys = json.loads(cli("tenants", "keys", "list", created["id"], "--json").stdout)
    assert (
        len(keys) == 1
        and created["api_key"].startswith(keys[0]["prefix"])
        and created["api_key"] not in str(keys)
    )

    password = "s3cret-from-stdin"
    added = json.loads(
        cli(
            "mailboxes", "add", "booking@example.com", "--tenant", "acme", "--purpose", "booking",
            "--imap-host", "imap.example.com", "--smtp-host", "smtp.example.com", "--smtp-username", "out",
            "--password-stdin", "--json", input=password + "\n",
        ).stdout
    )  # fmt: skip
    assert added["has_password"] and added["smtp"]["username"] == "out" and password not in json.dumps(added)
    via_env = cli(
        "mailboxes", "add", "support@example.com", "-t", created["id"], "--imap-host", "imap.example.com",
        "--password-env", "MP_PW", MP_PW="from-env",
    )  # fmt: skip
    assert "added mbx_" in via_env.stdout

    listed = json.loads(cli("mailboxes", "list", "-t", "acme", "--json").stdout)
    assert [m["email"] for m in listed] == ["booking@example.com", "support@example.com"]
    booking = json.loads(cli("mailboxes", "list", "-t", "acme", "--purpose", "booking", "--json").stdout)
    assert [m["id"] for m in booking] == [added["id"]]
    shown = cli("mailboxes", "show", added["id"], "-t", "acme")
    assert "booking@example.com" in shown.stdout and password not in shown.stdout

    one_line_error(
        cli(
            "mailboxes",
            "add",
            "bad",
            "-t",
            "acme",
            "--imap-host",
            "x.example",
            "--password-env",
            "MP_PW",
            ok=False,
            MP_PW="x",
        ),
        "invalid_input",
    )
    one_line_error(
        cli("mailboxes", "add", "a@example.com", "-t", "acme", "--imap-host", "imap.example.com", ok=False),
        "invalid_input",
    )  # a password method without a password
    one_line_error(cli("mailboxes", "show", "mbx_nope", "-t", "acme", ok=False), "not_found")
    one_line_error(cli("mailboxes", "list", "-t", "nobody", ok=False), "not_found")

    new_key = cli("keys", "generate").stdout.strip()
    assert len(new_key) == 44 and new_key != cli.env["MAILPORT_SECRET_KEYS"]
    rotated = cli(
        "keys",
        "rotate",
        "--batch-size",
        "1",
        MAILPORT_SECRET_KEYS=f"{new_key},{cli.env['MAILPORT_SECRET_KEYS']}",
    )
    assert "rotated 3 secrets in 3 rows" in rotated.stdout  # two passwords and the key check
    assert "re-encrypting" in rotated.stdout  # the progress bar
    one_line_error(
        cli("mailboxes", "list", "-t", "acme", ok=False), "secret_key_invalid"
    )  # the old key alone
    one_line_error(
        cli("mailboxes", "list", "-t", "acme", ok=False, MAILPORT_SECRET_KEYS="nonsense"),
        "secret_key_invalid",
    )
    disabled = cli("mailboxes", "disable", added["id"], "-t", "acme", MAILPORT_SECRET_KEYS=new_key)
    assert disabled.stdout.startswith(f"disabled {added['id']}")
    shown = cli("mailboxes", "show", added["id"], "-t", "acme", "--json", MAILPORT_SECRET_KEYS=new_key)
    assert json.loads(shown.stdout)["status"] == "disabled"
    enabled = cli("mailboxes", "enable", added["id"], "-t", "acme", MAILPORT_SECRET_KEYS=new_key)
    assert enabled.stdout.strip().endswith(": pending")
    one_line_error(
        cli("mailboxes", "disable", "mbx_nope", "-t", "acme", ok=False, MAILPORT_SECRET_KEYS=new_key),
        "not_found",
    )
    removed = cli("mailboxes", "remove", added["id"], "-t", "acme", MAILPORT_SECRET_KEYS=new_key)
    assert "removed" in removed.stdout
    remaining = json.loads(
        cli("mailboxes", "list", "-t", "acme", "--json", MAILPORT_SECRET_KEYS=new_key).stdout
    )
    assert [m["email"] for m in remaining] == ["support@example.com"]


def test_postgres_needs_an_explicit_upgrade(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    import asyncio
    import uuid

    from tests.conftest import _admin

    name = f"mp_cli_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        cli = Cli(
            monkeypatch,
            capsys,
            tmp_path,
            MAILPORT_DATABASE_URL=f"{postgres_url.rsplit('/', 1)[0]}/{name}",
            MAILPORT_SECRET_KEYS=generate_key(),
        )
        one_line_error(cli("tenants", "list", ok=False), "database_not_migrated")
        assert "schema empty, this version needs" in cli("db", "status").stdout
        cli("db", "upgrade")
        assert "up to date" in cli("db", "status").stdout
        assert "acme" in cli("tenants", "create", "acme").stdout
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_a_bad_setting_is_one_line_naming_the_variable_not_its_value(cli: Cli):
    result = cli("db", "status", ok=False, MAILPORT_RETENTION_DAYS="-1")
    one_line_error(result, "config_invalid")
    assert "MAILPORT_RETENTION_DAYS" in result.stderr
    result = cli("tenants", "list", ok=False, MAILPORT_SECRET_KEYS="", MAILPORT_PORT="not-a-port-s3cr3t")
    one_line_error(result, "config_invalid")
    assert "MAILPORT_PORT" in result.stderr and "s3cr3t" not in result.stderr


def test_mailboxes_add_refuses_a_private_host_like_the_api(cli: Cli) -> None:
    """The watcher would refuse the host at every connect: the CLI refuses to save it (one line)."""
    cli("db", "upgrade")
    cli("tenants", "create", "acme")
    for host in ("127.0.0.1", "localhost", "169.254.169.254"):
        refused = cli(
            "mailboxes", "add", "a@example.com", "-t", "acme", "--imap-host", host,
            "--password-env", "MP_PW", ok=False, MP_PW="x",
        )  # fmt: skip
        one_line_error(refused, "host_not_allowed")
        assert "MAILPORT_ALLOWED_HOSTS" in refused.stderr
    allowed = cli(
        "mailboxes", "add", "a@example.com", "-t", "acme", "--imap-host", "127.0.0.1",
        "--password-env", "MP_PW", MP_PW="x", MAILPORT_ALLOWED_HOSTS="127.0.0.1",
    )  # fmt: skip
    assert allowed.stdout.startswith("added mbx_")


def test_mailboxes_add_watches_more_folders_with_watch(cli: Cli) -> None:
    cli("db", "upgrade")
    cli("tenants", "create", "acme")
    added = json.loads(
        cli(
            "mailboxes", "add", "crm@example.com", "-t", "acme", "--imap-host", "imap.example.com",
            "--password-env", "MP_PW", "--watch", "role:sent", "--watch", "Archive", "--json", MP_PW="x",
        ).stdout
    )  # fmt: skip
    assert added["settings"]["folder"] == "INBOX"
    assert added["settings"]["folders"] == ["INBOX", "role:sent", "Archive"]
    refused = cli(
        "mailboxes", "add", "b@example.com", "-t", "acme", "--imap-host", "imap.example.com",
        "--password-env", "MP_PW", "--watch", "role:outbox", ok=False, MP_PW="x",
    )  # fmt: skip
    one_line_error(refused, "invalid_input")
    assert "unknown folder role 'outbox'" in refused.stderr


def test_tables_show_every_id_whole_on_one_line(cli: Cli):
    """Ids in a table are copied into the next command: never shortened with "…" nor folded."""
    cli("db", "upgrade")
    tenant = json.loads(cli("tenants", "create", "a-tenant-with-a-rather-long-name", "--json").stdout)
    cli("tenants", "keys", "create", tenant["id"])
    ids = [
        json.loads(
            cli(
                "mailboxes", "add", f"a-long-mailbox-address-{i}@an-example-company.example",
                "-t", tenant["id"], "--purpose", "customer-support",
                "--imap-host", "imap.an-example-company.example",
                "--password-env", "MP_PW", "--json", MP_PW="pw",
            ).stdout
        )["id"]
        for i in range(2)
    ]  # fmt: skip
    tables = {
        "mailboxes": cli("mailboxes", "list", "-t", tenant["id"]).stdout,
        "show": cli("mailboxes", "show", ids[0], "-t", tenant["id"]).stdout,
        "tenants": cli("tenants", "list").stdout,
        "keys": cli("tenants", "keys", "list", tenant["id"]).stdout,
    }
    keys = json.loads(cli("tenants", "keys", "list", tenant["id"], "--json").stdout)
    expected = {
        "mailboxes": [*ids, "a-long-mailbox-address-0@an-example-company.example"],
        "show": [ids[0], "a-long-mailbox-address-0@an-example-company.example"],
        "tenants": [tenant["id"]],
        "keys": [k["id"] for k in keys],
    }
    for name, table in tables.items():
        for value in expected[name]:
            assert any(value in line.split() for line in table.splitlines()), (name, value, table)


def test_a_table_too_wide_for_the_terminal_keeps_its_ids_and_wraps_only_prose() -> None:
    from rich.console import Console

    from mailport.cli.tables import make_table

    mailbox_id = "mbx_01m7z78en7mtnxtc60rxv3p63h"
    table = make_table(
        ("id", "email", "last error"),
        [(mailbox_id, "support@example.com", "imap: could not resolve imap.example.com: no such name")],
    )
    narrow = Console(width=60, record=True, force_terminal=True)
    narrow.print(table, crop=False)
    text = narrow.export_text()
    assert any(mailbox_id in line.split() for line in text.splitlines()), text
    assert any("support@example.com" in line.split() for line in text.splitlines()), text
    assert "…" not in text
