"""``POST /v1/detect`` with a real tenant key, and ``mailport detect`` as a process."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from rich.console import Console

from mailport.cli.detect import render
from mailport.config import Settings
from mailport.detect import Detector, make_resolver
from tests.fixtures.api import make_settings
from tests.fixtures.dns import LocalDNSServer
from tests.fixtures.process import clean_environment, run_mailport

KEYS = {
    "email",
    "domain",
    "provider",
    "protocol",
    "imap",
    "pop3",
    "smtp",
    "auth_methods",
    "oauth",
    "hints",
    "source",
    "confidence",
    "alternatives",
}


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """Detection never touches the database: SQLite is enough for the tenant keys."""
    return sqlite_url


@pytest.fixture
def settings(
    fresh_database_url: str, tmp_path: Path, secret_key: str, dns_server: LocalDNSServer
) -> Settings:
    settings = make_settings(fresh_database_url, tmp_path / "var", secret_key)
    settings.dns_nameservers = [dns_server.nameserver]
    settings.detect_probe = False
    settings.detect_timeout = 3.0
    settings.microsoft_client_id = "mailport-test-client"
    return settings


async def test_detect_custom_domain_with_a_tenant_key(
    tenant_client: httpx.AsyncClient, dns_server: LocalDNSServer
) -> None:
    dns_server.add("acme.example.", "MX", "0 acme-example.mail.protection.outlook.com.")
    response = await tenant_client.post("/v1/detect", json={"email": "support@acme.example"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == KEYS
    assert body["provider"] == {"id": "microsoft365", "name": "Microsoft 365"}
    assert body["imap"] == {
        "host": "outlook.office365.com",
        "port": 993,
        "security": "ssl",
        "username": "support@acme.example",
    }
    assert body["oauth"] == {"provider": "microsoft", "usable": True}  # microsoft_client_id is set
    assert (body["source"], body["confidence"]) == ("mx", "high")


async def test_known_domain_and_oauth_not_configured(tenant_client: httpx.AsyncClient) -> None:
    body = (await tenant_client.post("/v1/detect", json={"email": "a@gmail.com"})).json()
    assert body["source"] == "database" and body["oauth"] == {"provider": "google", "usable": False}
    assert body["smtp"]["host"] == "smtp.gmail.com"


async def test_a_tenants_own_oauth_app_makes_oauth_usable(tenant_client: httpx.AsyncClient) -> None:
    app = {"client_id": "tenant-app", "client_secret": "x"}
    put = await tenant_client.put("/v1/oauth-apps/google", json=app)
    assert put.status_code == 200
    body = (await tenant_client.post("/v1/detect", json={"email": "a@gmail.com"})).json()
    assert body["oauth"] == {"provider": "google", "usable": True}


async def test_invalid_email_is_422_invalid_email(tenant_client: httpx.AsyncClient) -> None:
    response = await tenant_client.post("/v1/detect", json={"email": "not-an-address"})
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "invalid_email" and body["hint"] and body["detail"]


async def test_detection_accepts_the_addresses_mailboxes_accept(tenant_client: httpx.AsyncClient) -> None:
    """One rule (mailport.validation.parse_email): a `.test` address, which a mailbox accepts,
    is detected (nothing found: manual settings), not refused as invalid_email."""
    imap = {"host": "imap.example.com", "port": 993, "security": "ssl"}
    for email, valid in (
        ("someone@dyn.example.test", True),
        ("Jörg@Bücher.example", True),
        ("a@localhost", False),
        ("a@x.local", False),
        ("no-at-sign", False),
    ):
        detect = await tenant_client.post("/v1/detect", json={"email": email})
        mailbox = await tenant_client.post(
            "/v1/mailboxes", json={"email": email, "auth_method": "oauth2", "imap": imap}
        )
        if valid:
            assert (detect.status_code, mailbox.status_code) == (200, 201), (detect.text, mailbox.text)
            assert detect.json()["email"] == mailbox.json()["email"]
        else:
            assert detect.status_code == 422 and detect.json()["error"] == "invalid_email"
            assert mailbox.status_code == 422 and mailbox.json()["field"] == "email"


async def test_unknown_field_and_missing_email_are_422(tenant_client: httpx.AsyncClient) -> None:
    assert (await tenant_client.post("/v1/detect", json={"email": "a@b.example", "x": 1})).status_code == 422
    assert (await tenant_client.post("/v1/detect", json={})).status_code == 422


async def test_domain_that_does_not_exist_is_200_with_source_none(tenant_client: httpx.AsyncClient) -> None:
    response = await tenant_client.post("/v1/detect", json={"email": "a@nowhere-at-all.example"})
    assert response.status_code == 200
    body = response.json()
    assert body["source"] == "none" and body["provider"] is None
    assert "manual_configuration" in [h["code"] for h in body["hints"]]


async def test_without_a_key_is_401(app: FastAPI) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        response = await client.post("/v1/detect", json={"email": "a@gmail.com"})
    assert response.status_code == 401 and response.json()["error"] == "unauthorized"


def _cli(*args: str, dns_server: LocalDNSServer) -> subprocess.CompletedProcess[str]:
    env = clean_environment()
    env["MAILPORT_DNS_NAMESERVERS"] = dns_server.nameserver
    env["MAILPORT_DETECT_TIMEOUT"] = "3"
    return run_mailport("detect", *args, env=env)


async def test_cli_table_rendering(dns_server: LocalDNSServer) -> None:
    detector = Detector(resolver=make_resolver([dns_server.nameserver], timeout=2))
    dns_server.add("acme.example.", "MX", "10 alt1.aspmx.l.google.com.")
    out = io.StringIO()
    render(await detector.detect("help@acme.example", probe=False), Console(file=out, width=200))
    text = out.getvalue()
    assert "Google Workspace (source: mx, confidence: high)" in text
    assert "imap.gmail.com" in text and "[app_password_required]" in text


@pytest.mark.slow
def test_cli_json_and_errors(dns_server: LocalDNSServer) -> None:
    dns_server.add("acme.example.", "MX", "10 alt1.aspmx.l.google.com.")
    done = _cli("help@acme.example", "--json", "--no-probe", dns_server=dns_server)
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert set(body) == KEYS and body["provider"]["id"] == "google-workspace"

    bad = _cli("nobody", dns_server=dns_server)
    assert bad.returncode == 1
    assert bad.stderr.startswith("error [invalid_email]:") and "Traceback" not in bad.stderr
