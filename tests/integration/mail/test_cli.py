"""``mailport folders …`` and ``mailport messages …`` against the real Dovecot, in-process
(the console script's ``main``, as tests/integration/store/test_cli.py runs it): tables by
default, the API's JSON with ``--json``, several refs at once, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mailport.bootstrap import Services
from tests.integration.mail.conftest import MailBox, letter
from tests.integration.store.test_cli import Cli, one_line_error
from tests.mailstack.dovecot import free_port


@pytest.fixture
def cli(
    services: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Cli:
    settings = services.settings
    assert settings.secret_keys is not None
    return Cli(
        monkeypatch,
        capsys,
        tmp_path,
        MAILPORT_DATABASE_URL=settings.database_url,
        MAILPORT_SECRET_KEYS=settings.secret_keys.get_secret_value(),
        MAILPORT_ALLOWED_HOSTS="127.0.0.1",
    )


def test_folders_from_the_command_line(cli: Cli, mail_box: MailBox) -> None:
    box, tenant = mail_box.mailbox_id, mail_box.tenant.name
    table = cli("folders", "list", box, "-t", tenant).stdout
    assert "INBOX" in table and "inbox" in table and "Sent" in table and "sent" in table

    assert cli("folders", "create", box, "Größe", "-t", tenant).stdout.strip() == "created Größe"
    one_line_error(cli("folders", "create", box, "Größe", "-t", tenant, ok=False), "folder_exists")
    renamed = json.loads(cli("folders", "rename", box, "Größe", "Ärger", "-t", tenant, "--json").stdout)
    assert renamed["path"] == "Ärger" and renamed["name"] == "Ärger"
    listed = json.loads(cli("folders", "list", box, "-t", mail_box.tenant.id, "--json").stdout)
    assert {"Ärger", "INBOX"} <= {f["path"] for f in listed} and "Größe" not in {f["path"] for f in listed}
    assert cli("folders", "delete", box, "Ärger", "-t", tenant).stdout.strip() == "deleted Ärger"
    one_line_error(cli("folders", "delete", box, "Ärger", "-t", tenant, ok=False), "folder_not_found")
    one_line_error(
        cli("folders", "list", "mbx_00000000000000000000000000", "-t", tenant, ok=False), "not_found"
    )


def test_messages_listed_searched_shown_flagged_moved_and_deleted(
    cli: Cli, mail_box: MailBox, tmp_path: Path
) -> None:
    for n in range(3):
        mail_box.deliver(letter(f"Anfrage {n}", sender="Jörg <joerg@example.test>", body=f"Zimmer {n}"))
    mail_box.deliver(letter("Rechnung", html="<p>Summe: <b>42 €</b><script>x()</script></p>"))
    box, tenant = mail_box.mailbox_id, mail_box.tenant.name

    page = json.loads(cli("messages", "list", box, "-t", tenant, "--limit", "2", "--json").stdout)
    assert [m["subject"] for m in page["data"]] == ["Rechnung", "Anfrage 2"] and page["next_cursor"]
    rest = json.loads(
        cli("messages", "list", box, "-t", tenant, "--cursor", page["next_cursor"], "--json").stdout
    )
    assert [m["subject"] for m in rest["data"]] == ["Anfrage 1", "Anfrage 0"] and rest["next_cursor"] is None
    refs = [m["ref"] for m in page["data"] + rest["data"]]
    table = cli("messages", "list", box, "-t", tenant)
    assert "Anfrage 0" in table.stdout and refs[3] in table.stdout and "Jörg" in table.stdout

    found = json.loads(
        cli("messages", "search", box, "-t", tenant, "--from", "jörg", "--text", "Zimmer 1", "--json").stdout
    )
    assert [m["subject"] for m in found["data"]] == ["Anfrage 1"]

    shown = cli("messages", "show", box, refs[0], "-t", tenant).stdout
    assert "Subject: Rechnung" in shown and "From: Sender <sender@example.test>" in shown
    assert shown.rstrip().endswith("hello")  # the text part
    as_json = json.loads(cli("messages", "show", box, refs[0], "-t", tenant, "--json").stdout)
    assert as_json["ref"] == refs[0] and as_json["subject"] == "Rechnung" and as_json["from"][0]["email"]
    assert "<b>42 €</b>" in as_json["html"] and "script" not in as_json["html"]
    thread = cli("messages", "thread", box, page["data"][0]["thread_key"], "-t", tenant).stdout
    assert "Rechnung" in thread and "INBOX" in thread and "Anfrage" not in thread
    html = cli("messages", "show", box, refs[0], "-t", tenant, "--html").stdout
    assert "<b>42 €</b>" in html and "script" not in html
    assert b"Subject: Rechnung" in cli("messages", "raw", box, refs[0], "-t", tenant).stdout.encode()

    cli("messages", "flag", box, refs[1], refs[2], "-t", tenant, "--add", "seen,flagged")
    unseen = json.loads(cli("messages", "list", box, "-t", tenant, "--unseen", "--json").stdout)
    assert [m["subject"] for m in unseen["data"]] == ["Rechnung", "Anfrage 0"]
    cli("messages", "flag", box, refs[1], "-t", tenant, "--remove", "flagged")
    flags = {
        m["subject"]: m["flags"]
        for m in json.loads(cli("messages", "list", box, "-t", tenant, "--json").stdout)["data"]
    }
    assert set(flags["Anfrage 2"]) == {"seen"} and set(flags["Anfrage 1"]) == {"seen", "flagged"}

    cli("folders", "create", box, "Erledigt", "-t", tenant)
    moved = json.loads(
        cli("messages", "move", box, refs[1], refs[2], "-t", tenant, "--to", "Erledigt", "--json").stdout
    )
    assert [m["ref"] for m in moved["data"]] == refs[1:3] and all(m["new_ref"] for m in moved["data"])
    deleted = cli("messages", "delete", box, refs[3], "-t", tenant)
    assert deleted.stdout.strip() == "moved to the trash: 1 message"
    left = json.loads(cli("messages", "list", box, "-t", tenant, "--json").stdout)
    assert [m["subject"] for m in left["data"]] == ["Rechnung"]
    trash = json.loads(cli("messages", "list", box, "-t", tenant, "--folder", "Trash", "--json").stdout)
    cli("messages", "delete", box, trash["data"][0]["ref"], "-t", tenant, "--permanent")
    assert (
        json.loads(cli("messages", "list", box, "-t", tenant, "-f", "Trash", "--json").stdout)["data"] == []
    )

    eml = tmp_path / "hello.eml"
    eml.write_bytes(letter("Importiert"))
    imported = cli(
        "messages", "import", box, str(eml), "-t", tenant, "--folder", "Erledigt", "--flag", "seen"
    )
    assert imported.stdout.startswith("imported ref_")


def test_bad_input_is_one_line(cli: Cli, mail_box: MailBox) -> None:
    box, tenant = mail_box.mailbox_id, mail_box.tenant.name
    one_line_error(cli("messages", "show", box, "not-a-ref", "-t", tenant, ok=False), "invalid_input")
    one_line_error(
        cli("messages", "list", box, "-t", tenant, "--since", "yesterday", ok=False), "invalid_input"
    )
    one_line_error(cli("messages", "flag", box, "ref_x", "-t", tenant, ok=False), "invalid_input")
    one_line_error(
        cli("messages", "list", box, "-t", tenant, "--folder", "Nowhere", ok=False), "folder_not_found"
    )
    one_line_error(cli("messages", "list", box, "-t", "nobody", ok=False), "not_found")


def test_a_server_that_cannot_be_reached_is_one_line(cli: Cli, mail_box: MailBox) -> None:
    added = cli(
        "mailboxes", "add", "nobody@example.test", "-t", mail_box.tenant.name, "--imap-host", "127.0.0.1",
        "--imap-port", str(free_port()), "--imap-security", "none", "--password-env", "PW", "--json", PW="pw",
    )  # fmt: skip
    closed = json.loads(added.stdout)["id"]
    one_line_error(
        cli("folders", "list", closed, "-t", mail_box.tenant.name, ok=False), "mailbox_unreachable"
    )
    one_line_error(
        cli("messages", "list", closed, "-t", mail_box.tenant.name, ok=False), "mailbox_unreachable"
    )
