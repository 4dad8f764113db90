"""``mailport connect``: the device sign-in from a terminal, and the browser link."""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from mailport.crypto import KeyRing, generate_key
from mailport.oauth import StateCodec
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


# --- API connectors (gmail_api, graph): add then connect, validated like the API


@pytest.mark.usefixtures("api_connectors_registered")
def test_add_an_api_mailbox_then_get_its_sign_in_link(oauth_cli: Cli):
    added = oauth_cli(
        "mailboxes", "add", "ann@example.test", "-t", "cli-co", "--connector", "graph",
        "--auth-method", "oauth2", "--json",
    )  # fmt: skip
    mailbox = json.loads(added.stdout)
    assert mailbox["connector"] == "graph" and mailbox["provider_id"] == "microsoft"
    assert mailbox["imap"] is None and mailbox["smtp"] is None
    linked = oauth_cli("connect", "microsoft", "--mailbox", mailbox["id"], "-t", "cli-co")
    start = linked.stdout.strip()
    assert start.startswith("https://mailport.example.test/v1/oauth/microsoft/start?state=")


@pytest.mark.usefixtures("api_connectors_registered")
def test_add_refuses_what_the_connector_cannot_take(oauth_cli: Cli):
    wrong = oauth_cli(
        "mailboxes", "add", "bo@example.test", "-t", "cli-co", "--connector", "gmail_api",
        "--auth-method", "oauth2", "--imap-host", "imap.example.com", ok=False,
    )  # fmt: skip
    one_line_error(wrong, "invalid_input")
    assert "imap: the gmail_api connector takes no IMAP settings" in wrong.stderr
    missing = oauth_cli("mailboxes", "add", "bo@example.test", "-t", "cli-co", ok=False)
    one_line_error(missing, "invalid_input")
    assert "the imap connector needs IMAP settings" in missing.stderr


@pytest.mark.usefixtures("api_connectors_registered")
def test_connect_with_a_connector_its_provider_lacks_is_one_line(oauth_cli: Cli):
    result = oauth_cli("connect", "google", "--connector", "graph", "-t", "cli-co", ok=False)
    one_line_error(result, "invalid_input")
    assert "connector: graph needs provider microsoft" in result.stderr


@pytest.mark.usefixtures("api_connectors_registered")
def test_device_sign_in_for_graph_from_a_terminal(oauth_cli: Cli, idp):
    helper = approve_when_shown(idp)
    result = oauth_cli(
        "connect", "microsoft", "--device", "--connector", "graph", "-t", "cli-co",
        "--poll-seconds", "0.1",
    )  # fmt: skip
    helper.join(5)
    found = re.search(r"connected: mailbox (\S+)", result.stdout)
    assert found
    shown = json.loads(oauth_cli("mailboxes", "show", found.group(1), "-t", "cli-co", "--json").stdout)
    assert shown["connector"] == "graph" and shown["imap"] is None


@pytest.mark.usefixtures("api_connectors_registered")
def test_the_browser_link_carries_the_connector(oauth_cli: Cli):
    result = oauth_cli("connect", "google", "ann@example.test", "--connector", "gmail_api", "-t", "cli-co")
    token = parse_qs(urlsplit(result.stdout.strip()).query)["state"][0]
    keys = KeyRing.from_keys([oauth_cli.env["MAILPORT_SECRET_KEYS"]], source="test")
    state = StateCodec(keys).open(token, provider="google")
    assert state.connector == "gmail_api" and state.login_hint == "ann@example.test"
    assert "completes the connection" in result.stderr
