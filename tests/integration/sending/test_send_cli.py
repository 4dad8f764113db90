"""``mailport send`` and ``mailport outbox list|show|cancel`` in-process (the console script's
``main``), on the real store and Dovecot: what they queue, the tables and the API's JSON, the
one-line errors; and ``send --wait`` against a real ``mailport worker`` process delivering to
the aiosmtpd submission bed."""

from __future__ import annotations

import asyncio
import email
import email.message
import json
import time
from datetime import UTC, datetime, timedelta, timezone
from email import policy
from pathlib import Path

import pytest
from sqlalchemy import select

from mailport.bootstrap import Services
from mailport.store.database import open_database
from mailport.store.tables import outbound_messages
from tests.fixtures.process import clean_environment, start_mailport, stop
from tests.integration.sending.outbox_bed import Box, letter
from tests.integration.store.test_cli import Cli, one_line_error
from tests.mailstack.dovecot import Dovecot
from tests.mailstack.smtp import SubmissionServer

LATER = (
    (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0).astimezone(timezone(timedelta(hours=1)))
)
TEXT = ("--to", "a@example.test", "--text", "x")


@pytest.fixture
def env(services: Services, dovecot: Dovecot) -> dict[str, str]:
    settings = services.settings
    assert settings.secret_keys is not None
    return {
        "MAILPORT_DATABASE_URL": settings.database_url,
        "MAILPORT_SECRET_KEYS": settings.secret_keys.get_secret_value(),
        "MAILPORT_ALLOWED_HOSTS": "127.0.0.1",
        "MAILPORT_MAIL_CA_FILE": str(dovecot.ca_file),
    }


@pytest.fixture
def cli(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Cli:
    return Cli(monkeypatch, capsys, tmp_path, **env)


def test_send_with_an_attachment_then_list_show_and_cancel(cli: Cli, box: Box, tmp_path: Path) -> None:
    (tmp_path / "body.txt").write_text("Grüße aus Köln\n", encoding="utf-8")
    (tmp_path / "Rechnung 7.pdf").write_bytes(b"%PDF-1.4 seven")
    base = ("send", box.mailbox_id, "-t", box.tenant_id)
    printed = cli(
        *base, "--to", "Ann <ann@example.test>", "--bcc", "boss@example.test", "--subject", "Rechnung",
        "--text-file", "body.txt", "--attach", "Rechnung 7.pdf", "--header", "X-Ticket: 42",
        "--send-at", LATER.isoformat(),
    ).stdout  # fmt: skip
    state, send_id, message_id = printed.split()
    assert state == "scheduled" and send_id.startswith("snd_") and message_id.startswith("<")
    stored = stored_message(box, send_id)
    assert stored["X-Ticket"] == "42" and "boss@example.test" not in stored.as_string()
    attachment = next(stored.iter_attachments())
    assert (
        attachment.get_filename() == "Rechnung 7.pdf" and attachment.get_content_type() == "application/pdf"
    )
    assert stored.get_body(("plain",)).get_content().rstrip() == "Grüße aus Köln"

    table = cli("outbox", "list", box.mailbox_id, "-t", box.tenant_id).stdout
    assert send_id in table and "scheduled" in table and "ann@example.test, boss@example.test" in table
    listed = json.loads(cli("outbox", "list", box.mailbox_id, "-t", box.tenant_id, "--json").stdout)
    assert [item["id"] for item in listed["items"]] == [send_id] and listed["next_cursor"] is None
    assert listed["items"][0]["from"] == box.email and listed["items"][0]["subject"] == "Rechnung"
    shown = cli("outbox", "show", box.mailbox_id, send_id, "-t", box.tenant_id).stdout
    assert (
        "scheduled" in shown
        and message_id.strip("<>") in shown
        and LATER.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") in shown
    )
    as_json = json.loads(cli("outbox", "show", box.mailbox_id, send_id, "-t", box.tenant_id, "--json").stdout)
    assert as_json == listed["items"][0]

    assert cli("outbox", "cancel", box.mailbox_id, send_id, "-t", box.tenant_id).stdout.strip() == (
        f"cancelled {send_id}"
    )
    one_line_error(
        cli("outbox", "cancel", box.mailbox_id, send_id, "-t", box.tenant_id, ok=False),
        "send_not_cancellable",
    )
    cancelled = json.loads(
        cli("outbox", "list", box.mailbox_id, "-t", box.tenant_id, "--state", "cancelled", "--json").stdout
    )
    assert [item["id"] for item in cancelled["items"]] == [send_id]
    assert (
        json.loads(
            cli("outbox", "list", box.mailbox_id, "-t", box.tenant_id, "--state", "queued", "--json").stdout
        )["items"]
        == []
    )


def stored_message(box: Box, send_id: str) -> email.message.EmailMessage:
    """The queued bytes, parsed; read on a loop and a database connection of their own (the
    CLI tests are synchronous: each command runs its own loop)."""

    async def read() -> bytes:
        database = open_database(box.services.settings.database_url)
        try:
            async with database.connect() as conn:
                found = await conn.execute(
                    select(outbound_messages.c.raw).where(outbound_messages.c.id == send_id)
                )
                return bytes(found.scalar_one())
        finally:
            await database.aclose()

    return email.message_from_bytes(asyncio.run(read()), policy=policy.default)  # type: ignore[return-value]


def test_raw_files_replies_and_json(cli: Cli, box: Box, tmp_path: Path) -> None:
    raw = f"From: {box.email}\r\nTo: ann@example.test\r\nSubject: Handmade\r\n\r\nas written\r\n"
    (tmp_path / "mail.eml").write_text(raw)
    base = ("send", box.mailbox_id, "-t", box.tenant_id)
    sent = json.loads(cli(*base, "--raw-file", "mail.eml", "--no-sent-copy", "--json").stdout)
    assert sent["subject"] == "Handmade" and sent["state"] == "queued" and sent["sent_copy"] == "skipped"
    from_stdin = json.loads(
        cli(*base, "--raw-file", "-", "--json", input=raw.replace("Handmade", "Piped")).stdout
    )
    assert from_stdin["subject"] == "Piped"

    box.deliver(letter("Zimmer frei?"))
    ref = json.loads(cli("messages", "list", box.mailbox_id, "-t", box.tenant_id, "--json").stdout)["data"][
        0
    ]["ref"]
    reply = json.loads(cli(*base, "--reply", ref, "--text", "Ja.", "--json").stdout)
    assert reply["subject"] == "Re: Zimmer frei?" and reply["recipients"] == ["ann@example.test"]
    assert reply["in_reply_to"] is not None

    key = ("--idempotency-key", "ticket-9")
    first = json.loads(cli(*base, "--to", "a@example.test", "--text", "x", *key, "--json").stdout)
    again = json.loads(cli(*base, "--to", "a@example.test", "--text", "x", *key, "--json").stdout)
    assert again["id"] == first["id"]
    one_line_error(
        cli(*base, "--to", "a@example.test", "--text", "y", *key, ok=False), "idempotency_key_reused"
    )


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (("--to", "a@example.test"), "invalid_input", "give the message"),
        (("--to", "not an address", "--text", "x"), "invalid_input", "to.0"),
        (("--to", "a@example.test", "--text", "x", "--text-file", "f"), "invalid_input", "not both"),
        (("--raw-file", "mail.eml", "--to", "a@example.test"), "invalid_input", "leave out --to"),
        (("--raw-file", "missing.eml"), "invalid_input", "cannot read"),
        ((*TEXT, "--send-at", "tomorrow"), "invalid_input", "not a time"),
        ((*TEXT, "--send-at", "2030-01-01T09:00"), "invalid_input", "timezone"),
        ((*TEXT, "--send-at", "2099-01-01T09:00Z"), "invalid_input", "one year ahead"),
        ((*TEXT, "--header", "Bcc: x@example.test"), "invalid_input", "cannot be set"),
        ((*TEXT, "--header", "nonsense"), "invalid_input", "Name: value"),
        ((*TEXT, "--from", "ceo@example.test"), "sender_not_allowed", ""),
        ((*TEXT, "--attach", "nothing.pdf"), "invalid_input", "nothing.pdf"),
        ((*TEXT, "--idempotency-key", "has space"), "invalid_input", "ASCII"),
    ],
)  # fmt: skip
def test_send_errors_are_one_line(
    cli: Cli, box: Box, tmp_path: Path, args: tuple[str, ...], code: str, says: str
) -> None:
    (tmp_path / "mail.eml").write_text("From: a@example.test\r\n\r\nx\r\n")
    result = cli("send", box.mailbox_id, "-t", box.tenant_id, *args, ok=False)
    if result.returncode == 2:  # a usage error of the command line itself (click's)
        pytest.fail(result.stderr)
    one_line_error(result, code)
    assert says in result.stderr


def test_another_tenants_mailbox_and_unknown_sends(cli: Cli, box: Box, services: Services) -> None:
    one_line_error(
        cli(
            "send",
            "mbx_00000000000000000000000000",
            "-t",
            box.tenant_id,
            "--to",
            "a@example.test",
            "--text",
            "x",
            ok=False,
        ),
        "not_found",
    )
    one_line_error(
        cli(
            "outbox", "show", box.mailbox_id, "snd_00000000000000000000000000", "-t", box.tenant_id, ok=False
        ),
        "send_not_found",
    )
    assert cli("outbox", "list", box.mailbox_id, "-t", box.tenant_id).returncode == 0


def test_send_wait_with_a_running_worker(
    cli: Cli, box: Box, env: dict[str, str], smtp: SubmissionServer, tmp_path: Path
) -> None:
    worker_env = (
        clean_environment()
        | env
        | {"MAILPORT_SEND_POLL_SECONDS": "0.2", "MAILPORT_DATA_DIR": str(tmp_path / "var")}
    )
    log = tmp_path / "worker.log"
    proc = start_mailport("worker", cwd=tmp_path, env=worker_env, log_path=log)
    try:
        subject = f"Waited for {time.time_ns()}"
        printed = cli(
            "send", box.mailbox_id, "-t", box.tenant_id, "--to", box.email, "--subject", subject,
            "--text", "hello", "--no-sent-copy", "--wait", "60",
        )  # fmt: skip
        assert printed.stdout.startswith("sent snd_"), printed.stdout + log.read_text()
        assert "server said: 250" in printed.stdout
        assert len([m for m in smtp.handler.messages if subject.encode() in m.data]) == 1

        smtp.handler.script("DATA", "554 5.7.1 Relay access denied here")
        failed = cli(
            "send",
            box.mailbox_id,
            "-t",
            box.tenant_id,
            "--to",
            box.email,
            "--text",
            "x",
            "--wait",
            "60",
            ok=False,
        )
        assert failed.returncode == 1 and failed.stdout.startswith("failed snd_"), failed
        assert "554" in failed.stdout and "Relay access denied here" in failed.stdout
    finally:
        smtp.handler.reset()
        stop(proc)


def test_send_wait_without_a_worker_says_so(cli: Cli, box: Box, services: Services) -> None:
    result = cli(
        "send",
        box.mailbox_id,
        "-t",
        box.tenant_id,
        "--to",
        "a@example.test",
        "--text",
        "x",
        "--wait",
        "0.5",
        ok=False,
    )
    assert result.returncode == 1 and result.stdout.startswith("queued snd_")
    assert "is `mailport serve` or `mailport worker` running?" in result.stderr
