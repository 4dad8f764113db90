"""``mailport drafts …`` against the real Dovecot, in-process (the console script's ``main``):
tables by default, the API's JSON with ``--json``, one-line errors with exit status 1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mailport.bootstrap import Services
from tests.fixtures.api import TenantHandle
from tests.integration.sending.outbox_bed import Box, make_box
from tests.integration.store.test_cli import Cli, one_line_error
from tests.mailstack.dovecot import Dovecot
from tests.mailstack.smtp import SubmissionServer


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    return sqlite_url


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


@pytest.fixture
async def cli_box(services: Services, tenant: TenantHandle, dovecot: Dovecot, smtp: SubmissionServer) -> Box:
    return await make_box(services, dovecot, smtp.port, tenant_id=tenant.id)


def test_drafts_from_the_command_line(
    cli: Cli, cli_box: Box, tenant: TenantHandle, services: Services, tmp_path: Path
) -> None:
    box, t = cli_box.mailbox_id, tenant.name
    (tmp_path / "body.txt").write_text("Hallo Jörg,\nanbei die Zahlen.\n", encoding="utf-8")
    (tmp_path / "zahlen.csv").write_bytes(b"a,b\n1,2\n")

    created = cli(
        "drafts", "create", box, "-t", t, "--to", "Jörg <joerg@example.test>", "--bcc", "boss@example.test",
        "--subject", "Zahlen", "--text-file", str(tmp_path / "body.txt"),
        "--attach", str(tmp_path / "zahlen.csv"), "--header", "X-Ticket: 7",
    ).stdout  # fmt: skip
    assert created.startswith("stored ref_")
    ref = created.split()[1]

    table = cli("drafts", "list", box, "-t", t).stdout
    assert ref in table and "Zahlen" in table
    listed = json.loads(cli("drafts", "list", box, "-t", t, "--json").stdout)
    assert [(d["ref"], d["subject"], sorted(d["flags"])) for d in listed["data"]] == [
        (ref, "Zahlen", ["draft", "seen"])
    ]
    shown = cli("drafts", "show", box, ref, "-t", t).stdout
    assert "To: Jörg <joerg@example.test>" in shown and "Bcc: boss@example.test" in shown
    assert "Attachment 0: zahlen.csv (text/csv" in shown and shown.rstrip().endswith("anbei die Zahlen.")

    replaced = json.loads(
        cli(
            "drafts", "replace", box, ref, "-t", t, "--to", "joerg@example.test", "--subject", "Zahlen v2",
            "--text", "Neu.", "--json",
        ).stdout
    )  # fmt: skip
    assert set(replaced) == {"ref", "message_id", "folder"} and replaced["folder"] == "Drafts"
    new_ref = replaced["ref"]
    assert new_ref != ref
    one_line_error(cli("drafts", "delete", box, ref, "-t", t, ok=False), "message_not_found")

    queued = json.loads(
        cli("drafts", "send", box, new_ref, "-t", t, "--idempotency-key", "k-1", "--json").stdout
    )
    assert queued["state"] == "queued" and queued["message_id"] == replaced["message_id"]
    assert queued["recipients"] == ["joerg@example.test"]
    again = cli("drafts", "send", box, new_ref, "-t", t, "--idempotency-key", "k-1").stdout
    assert again.strip() == f"queued {queued['id']} <{queued['message_id']}>"

    other = cli("drafts", "create", box, "-t", t, "--to", "ann@example.test", "--text", "x").stdout.split()[1]
    assert cli("drafts", "delete", box, other, "-t", t).stdout.strip() == f"deleted {other}"
    assert [d["ref"] for d in json.loads(cli("drafts", "list", box, "-t", t, "--json").stdout)["data"]] == [
        new_ref
    ]


def test_draft_errors_are_one_line(cli: Cli, cli_box: Box, tenant: TenantHandle) -> None:
    box, t = cli_box.mailbox_id, tenant.name
    one_line_error(cli("drafts", "create", box, "-t", t, "--text", "no one", ok=False), "invalid_input")
    one_line_error(
        cli("drafts", "create", box, "-t", t, "--to", "a@example.test", "--from", "x@example.test", ok=False),
        "sender_not_allowed",
    )
    one_line_error(
        cli("drafts", "create", box, "-t", t, "--to", "a@example.test", "--header", "Received: x", ok=False),
        "invalid_input",
    )
    one_line_error(cli("drafts", "send", box, "ref_bm9wZQ", "-t", t, ok=False), "invalid_input")
    one_line_error(
        cli("drafts", "send", box, "ref_x", "-t", t, "--idempotency-key", "a b", ok=False), "invalid_input"
    )
    one_line_error(cli("drafts", "list", "mbx_00000000000000000000000000", "-t", t, ok=False), "not_found")
