"""POP3 through the check's front doors: ``POST /v1/check`` with a ``pop3`` server,
``POST /v1/mailboxes/{id}/test`` of a pop3-connector mailbox (the outcome recorded on it), and
``mailport check --pop3-host`` as a real process — all against Dovecot's POP3 server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.api import SecretWatch
from tests.integration.check.conftest import BedAccount
from tests.integration.check.test_cli import run
from tests.mailstack.dovecot import Dovecot
from tests.mailstack.smtp import SubmissionServer

POP3_STEPS = [
    "dns",
    "tcp_connect",
    "tls_handshake",
    "greeting",
    "pop3_capa",
    "pop3_auth",
    "pop3_uidl",
    "pop3_stat",
]


@pytest.fixture
def check_overrides(dovecot: Dovecot) -> dict[str, Any]:
    """The bed on 127.0.0.1 and its CA as the operator adds one (stored mailboxes have none)."""
    return {"allow_private_hosts": True, "mail_ca_file": Path(dovecot.ca_file)}


def pop3_server(dovecot: Dovecot) -> dict[str, Any]:
    return {"host": "127.0.0.1", "port": dovecot.pop3s_port, "security": "ssl"}


async def test_check_pop3_settings(tenant_client: httpx.AsyncClient, bed_account: BedAccount) -> None:
    body = {
        "email": bed_account.user,
        "pop3": pop3_server(bed_account.dovecot),
        "password": bed_account.password,
    }
    response = await tenant_client.post("/v1/check", json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["ok"] is True and answer["imap"] is None and answer["smtp"] is None
    assert [s["step"] for s in answer["pop3"]["steps"]] == POP3_STEPS


async def test_check_wants_exactly_one_incoming_server(
    tenant_client: httpx.AsyncClient, bed_account: BedAccount
) -> None:
    both = bed_account.check_body() | {"pop3": pop3_server(bed_account.dovecot)}
    neither = {k: v for k, v in bed_account.check_body().items() if k != "imap"}
    for body in (both, neither):
        response = await tenant_client.post("/v1/check", json=body)
        assert response.status_code == 422, response.text
        assert "exactly one of `imap` and `pop3`" in response.text


async def test_a_pop3_mailbox_is_tested_over_pop3_and_recorded(
    tenant_client: httpx.AsyncClient, bed_account: BedAccount, secret_watch: SecretWatch
) -> None:
    mailbox = {
        "email": bed_account.user,
        "connector": "pop3",
        "auth_method": "password",
        "password": bed_account.password,
        "pop3": pop3_server(bed_account.dovecot),
        "smtp": {"host": "127.0.0.1", "port": bed_account.smtp.port, "security": "starttls"},
    }
    created = await tenant_client.post("/v1/mailboxes", json=mailbox)
    assert created.status_code == 201, created.text
    box = created.json()["id"]
    response = await tenant_client.post(f"/v1/mailboxes/{box}/test")
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["ok"] is True and answer["imap"] is None
    assert [s["step"] for s in answer["pop3"]["steps"]] == POP3_STEPS
    assert answer["smtp"]["ok"] is True
    assert (await tenant_client.get(f"/v1/mailboxes/{box}")).json()["status"] == "connected"

    wrong = "wrong-pop3-Pa55-17"
    secret_watch.add(wrong)
    assert (await tenant_client.patch(f"/v1/mailboxes/{box}", json={"password": wrong})).status_code == 200
    failed = (await tenant_client.post(f"/v1/mailboxes/{box}/test")).json()
    assert failed["ok"] is False and failed["pop3"]["steps"][-1]["code"] == "invalid_credentials"
    stored = (await tenant_client.get(f"/v1/mailboxes/{box}")).json()
    assert stored["status"] == "error"
    assert stored["last_error"].startswith("pop3 pop3_auth [invalid_credentials]")


def test_cli_checks_a_pop3_server_with_stls(
    dovecot: Dovecot, smtp: SubmissionServer, password_user: tuple[str, str]
) -> None:
    user, password = password_user
    done = run(
        user,
        *("--pop3-host", "127.0.0.1", "--pop3-port", str(dovecot.pop3_port), "--pop3-security", "starttls"),
        *("--only", "pop3", "--ca-file", dovecot.ca_file, "--password-env", "BOX_PW"),
        env={"BOX_PW": password},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"POP3 127.0.0.1:{dovecot.pop3_port} (starttls): ok" in done.stdout
    assert "✓ pop3_stls" in done.stdout and "✓ pop3_uidl" in done.stdout
    assert password not in done.stdout + done.stderr

    wrong = run(
        user, "--pop3-host", "127.0.0.1", "--pop3-port", str(dovecot.pop3s_port), "--only", "pop3",
        "--ca-file", dovecot.ca_file, "--password-stdin", "--json", stdin="wrong-cli-pop3-pw\n",
    )  # fmt: skip
    assert wrong.returncode == 1, wrong.stdout + wrong.stderr
    body = json.loads(wrong.stdout)
    assert body["pop3"]["steps"][-1]["code"] == "invalid_credentials"
    assert "wrong-cli-pop3-pw" not in wrong.stdout + wrong.stderr
