"""``POST /v1/mailboxes/{id}/test``: the stored settings and secrets, checked against the bed,
and the outcome recorded on the mailbox (status, last tested at, last error, error count) — on
SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import urllib.parse
import urllib.request
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from mailport.bootstrap import Services
from mailport.crypto import Secret
from mailport.mailboxes.models import AuthMethod, NewMailbox, OAuthGrant, Security, ServerSettings
from tests.conftest import issue_token
from tests.fixtures.api import SecretWatch, TenantHandle
from tests.fixtures.bodies import mailbox_body
from tests.integration.check.conftest import BedAccount
from tests.integration.oauth.conftest import idp_overrides
from tests.mailstack.dovecot import Dovecot
from tests.mailstack.idp import MockIdP
from tests.mailstack.smtp import SubmissionServer


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'mailport.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def check_overrides(idp: MockIdP, dovecot: Dovecot, tmp_path: Path) -> dict[str, Any]:
    """The bed on 127.0.0.1, its CA added the way an operator adds one (``MAILPORT_MAIL_CA_FILE``:
    stored mailboxes have no CA of their own), and Google's OAuth pointed at the local
    authorization server (the token manager refreshes there)."""
    providers = tmp_path / "providers.json"
    providers.write_text(json.dumps(idp_overrides(idp)))
    return {
        "allow_private_hosts": True,
        "mail_ca_file": Path(dovecot.ca_file),
        "oauth_providers_file": providers,
        "google_client_id": "test-client",
        "google_client_secret": SecretStr("test-secret"),
    }


async def test_a_working_mailbox_becomes_connected(
    tenant_client: httpx.AsyncClient,
    bed_account: BedAccount,
) -> None:
    created = (await tenant_client.post("/v1/mailboxes", json=bed_account.mailbox_body())).json()
    assert created["status"] == "pending"
    response = await tenant_client.post(f"/v1/mailboxes/{created['id']}/test")
    assert response.status_code == 200, response.text
    assert response.json()["ok"] is True
    assert [s["step"] for s in response.json()["smtp"]["steps"]][-2:] == ["smtp_starttls", "smtp_auth"]
    mailbox = (await tenant_client.get(f"/v1/mailboxes/{created['id']}")).json()
    assert mailbox["status"] == "connected"
    assert mailbox["last_tested_at"] is not None and mailbox["last_success_at"] is not None
    assert mailbox["last_error"] is None and mailbox["error_count_24h"] == 0


async def test_a_wrong_password_records_the_error_and_counts_it(
    tenant_client: httpx.AsyncClient,
    bed_account: BedAccount,
    secret_watch: SecretWatch,
) -> None:
    wrong = "wrong-stored-pw-7d2"
    secret_watch.add(wrong)
    created = (await tenant_client.post("/v1/mailboxes", json=bed_account.mailbox_body(wrong))).json()
    for attempt in (1, 2):
        response = await tenant_client.post(f"/v1/mailboxes/{created['id']}/test")
        assert response.status_code == 200 and response.json()["ok"] is False
        mailbox = (await tenant_client.get(f"/v1/mailboxes/{created['id']}")).json()
        assert mailbox["status"] == "error"
        assert mailbox["error_count_24h"] == attempt
    assert mailbox["last_error"].startswith("imap authentication [invalid_credentials]: ")
    assert "AUTHENTICATIONFAILED" in mailbox["last_error"]
    assert mailbox["last_success_at"] is None


async def test_unknown_and_foreign_mailboxes_are_404(
    tenant_client: httpx.AsyncClient, new_tenant_client: Any, dovecot: Dovecot, smtp: SubmissionServer
) -> None:
    assert (await tenant_client.post("/v1/mailboxes/mbx_nope/test")).status_code == 404
    created = (
        await tenant_client.post("/v1/mailboxes", json=mailbox_body(dovecot, smtp, "x@dyn.example.test", "p"))
    ).json()
    _, other = await new_tenant_client()
    response = await other.post(f"/v1/mailboxes/{created['id']}/test")
    assert response.status_code == 404 and response.json()["error"] == "not_found"


async def _oauth_mailbox(
    services: Services,
    tenant: TenantHandle,
    dovecot: Dovecot,
    smtp: SubmissionServer,
    email: str,
    token: str,
    refresh: str = "refresh-unknown-to-the-provider",
) -> str:
    mailbox = await services.mailboxes.create(
        tenant.id,
        NewMailbox(
            email=email,
            auth_method=AuthMethod.OAUTH2,
            imap=ServerSettings("127.0.0.1", dovecot.imaps_port, Security.SSL),
            smtp=ServerSettings("127.0.0.1", smtp.tls_port, Security.SSL),
            oauth=OAuthGrant(
                provider="google",
                access_token=Secret(token),
                refresh_token=Secret(refresh),
                expires_at=datetime.now(UTC) + timedelta(hours=1),
                connected_email=email,
            ),
        ),
    )
    return mailbox.id


IssuedMailbox = Callable[[str], Awaitable[tuple[str, dict[str, object], str]]]


@pytest.fixture
def issued_oauth_mailbox(
    services: Services,
    tenant: TenantHandle,
    dovecot: Dovecot,
    smtp: SubmissionServer,
    idp: MockIdP,
    secret_watch: SecretWatch,
) -> IssuedMailbox:
    """``await issued_oauth_mailbox(prefix)`` -> (a fresh address, a token the local authorization
    server issued for it, the id of a mailbox holding that token). The tokens are watched: no
    response or log line may carry them."""

    async def issue(prefix: str) -> tuple[str, dict[str, object], str]:
        email = f"{prefix}-{uuid.uuid4().hex[:8]}@example.test"
        token = issue_token(idp, email)
        secret_watch.add(str(token["access_token"]), str(token["refresh_token"]))
        mailbox_id = await _oauth_mailbox(
            services, tenant, dovecot, smtp, email, str(token["access_token"]), str(token["refresh_token"])
        )
        return email, token, mailbox_id

    return issue


async def test_an_oauth_mailbox_uses_the_token_manager(
    services: Services,
    tenant: TenantHandle,
    tenant_client: httpx.AsyncClient,
    dovecot: Dovecot,
    smtp: SubmissionServer,
    oauth_user: tuple[str, dict[str, object]],
    secret_watch: SecretWatch,
) -> None:
    email, token = oauth_user
    secret_watch.add(str(token["access_token"]))
    mailbox_id = await _oauth_mailbox(services, tenant, dovecot, smtp, email, str(token["access_token"]))
    response = await tenant_client.post(f"/v1/mailboxes/{mailbox_id}/test")
    assert response.json()["ok"] is True, response.text
    assert response.json()["imap"]["steps"][-2]["detail"].endswith("with XOAUTH2")
    assert (await tenant_client.get(f"/v1/mailboxes/{mailbox_id}")).json()["status"] == "connected"


async def _revoke(idp: MockIdP, token: str) -> None:
    form = urllib.parse.urlencode({"token": token}).encode()
    await asyncio.to_thread(urllib.request.urlopen, f"{idp.url}/revoke", form, 10)


async def test_a_refused_token_is_refreshed_once_and_the_mailbox_connects(
    tenant_client: httpx.AsyncClient, issued_oauth_mailbox: IssuedMailbox, idp: MockIdP
) -> None:
    email, token, mailbox_id = await issued_oauth_mailbox("refresh")
    await _revoke(idp, str(token["access_token"]))  # the access token dies before its expiry
    body = (await tenant_client.post(f"/v1/mailboxes/{mailbox_id}/test")).json()
    assert body["ok"] is True, body
    assert (await tenant_client.get(f"/v1/mailboxes/{mailbox_id}")).json()["status"] == "connected"
    async with httpx.AsyncClient() as http:  # the token manager did refresh, once
        stats = (await http.get(f"{idp.url}/_test/stats", params={"email": email})).json()
    assert stats["refresh_grants"] == 1


async def test_a_refused_token_with_a_dead_grant_sets_reauth_required(
    tenant_client: httpx.AsyncClient, issued_oauth_mailbox: IssuedMailbox, idp: MockIdP
) -> None:
    _email, token, mailbox_id = await issued_oauth_mailbox("revoked")
    await _revoke(idp, str(token["refresh_token"]))  # the user removed the app's access
    await _revoke(idp, str(token["access_token"]))
    body = (await tenant_client.post(f"/v1/mailboxes/{mailbox_id}/test")).json()
    auth = body["imap"]["steps"][-1]
    assert (auth["step"], auth["code"]) == ("authentication", "reauth_required")
    assert "Token has been expired or revoked." in auth["server_said"]
    mailbox = (await tenant_client.get(f"/v1/mailboxes/{mailbox_id}")).json()
    assert mailbox["status"] == "reauth_required"
    assert "[reauth_required]" in mailbox["last_error"]


async def test_a_dead_refresh_token_sets_reauth_required_without_connecting(
    services: Services,
    tenant: TenantHandle,
    tenant_client: httpx.AsyncClient,
    dovecot: Dovecot,
    smtp: SubmissionServer,
) -> None:
    mailbox_id = await _oauth_mailbox(
        services, tenant, dovecot, smtp, "gone@example.test", "tok-abcdef123456"
    )
    await services.mailboxes.mark_reauth_required(
        mailbox_id, error="invalid_grant: Token has been expired or revoked."
    )
    body = (await tenant_client.post(f"/v1/mailboxes/{mailbox_id}/test")).json()
    auth = body["imap"]["steps"][-1]
    assert (auth["step"], auth["code"]) == ("authentication", "reauth_required")
    assert auth["server_said"] == "invalid_grant: Token has been expired or revoked."
    mailbox = (await tenant_client.get(f"/v1/mailboxes/{mailbox_id}")).json()
    assert mailbox["status"] == "reauth_required"


async def test_an_unavailable_auth_server_is_an_error_not_reauth_required(
    tenant_client: httpx.AsyncClient,
    issued_oauth_mailbox: IssuedMailbox,
    idp: MockIdP,
    idp_outage: Callable[[bool], None],
) -> None:
    """Dovecot cannot reach the introspection endpoint: NO [UNAVAILABLE]. The test reports it,
    the mailbox goes to `error` (the grant is fine), no refresh is spent, and the next test
    after the outage connects."""
    email, _token, mailbox_id = await issued_oauth_mailbox("outage")
    idp_outage(True)
    body = (await tenant_client.post(f"/v1/mailboxes/{mailbox_id}/test")).json()
    idp_outage(False)
    auth = body["imap"]["steps"][-1]
    assert body["ok"] is False and "[UNAVAILABLE]" in auth["server_said"]
    smtp_auth = body["smtp"]["steps"][-1]  # the SMTP server cannot check the token either
    assert smtp_auth["server_said"] == "454 4.7.0 Temporary authentication failure"
    mailbox = (await tenant_client.get(f"/v1/mailboxes/{mailbox_id}")).json()
    assert mailbox["status"] == "error"
    assert idp.state.refresh_grants.get(email, 0) == 0
    again = (await tenant_client.post(f"/v1/mailboxes/{mailbox_id}/test")).json()
    assert again["ok"] is True, again
    assert (await tenant_client.get(f"/v1/mailboxes/{mailbox_id}")).json()["status"] == "connected"
