"""``mailport connect``: the device sign-in from a terminal, and the browser link."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import httpx
import pytest

from mailport.crypto import generate_key
from tests.integration.store.test_cli import Cli, one_line_error
from tests.mailstack.idp import MockIdP


@pytest.fixture
def oauth_cli(
    sqlite_url: str,
    tmp_path: Path,
    providers_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Cli:
    cli = Cli(
        monkeypatch,
        capsys,
        tmp_path,
        MAILPORT_DATABASE_URL=sqlite_url,
        MAILPORT_SECRET_KEYS=generate_key(),
        MAILPORT_OAUTH_PROVIDERS_FILE=str(providers_file),
        MAILPORT_MICROSOFT_CLIENT_ID="test-client",
        MAILPORT_MICROSOFT_CLIENT_SECRET="test-secret",
        MAILPORT_GOOGLE_CLIENT_ID="test-client",
        MAILPORT_PUBLIC_URL="https://mailport.example.test",
        MAILPORT_ALLOWED_HOSTS="127.0.0.1",  # the bed's IdP: the operator allows exactly that address
    )
    cli("db", "upgrade")
    cli("tenants", "create", "cli-co")
    return cli


def approve_when_shown(idp: MockIdP, *, deny: bool = False) -> threading.Thread:
    """Play the user on the other device: approve (or deny) the next pending device code."""
    known = {d["user_code"] for d in idp.state.devices.values()}

    def run() -> None:
        for _ in range(200):
            pending = [d for d in list(idp.state.devices.values()) if d["user_code"] not in known]
            if pending:
                body = {"user_code": pending[0]["user_code"], "email": "jo@example.test", "deny": deny}
                httpx.post(f"{idp.url}/_test/device/approve", json=body)
                return
            time.sleep(0.05)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_connect_with_a_device_code(oauth_cli, idp):
    helper = approve_when_shown(idp)
    result = oauth_cli(
        "connect", "microsoft", "jo@example.test", "--device", "-t", "cli-co", "--poll-seconds", "0.1"
    )
    helper.join(5)
    assert re.search(r"enter the code \d{4}-\d{4}", result.stdout)
    mailbox_id = re.search(r"connected: mailbox (\S+)", result.stdout)
    assert mailbox_id
    shown = oauth_cli("mailboxes", "show", mailbox_id.group(1), "-t", "cli-co", "--json")
    assert '"auth_method": "oauth2"' in shown.stdout and "jo@example.test" in shown.stdout


def test_denied_device_sign_in_is_one_line(oauth_cli, idp):
    helper = approve_when_shown(idp, deny=True)
    result = oauth_cli("connect", "microsoft", "--device", "-t", "cli-co", "--poll-seconds", "0.1", ok=False)
    helper.join(5)
    one_line_error(result, "oauth_denied")


def test_browser_link_and_google_device_refusal(oauth_cli):
    link = oauth_cli("connect", "google", "kim@example.test", "-t", "cli-co")
    # the sign-in link is mailport's start page, which binds the browser that opens it
    assert link.stdout.startswith("https://mailport.example.test/v1/oauth/google/start?state=")
    refused = oauth_cli("connect", "google", "--device", "-t", "cli-co", ok=False)
    one_line_error(refused, "oauth_device_flow_unsupported")
    assert "https://mail.google.com/" in refused.stderr
