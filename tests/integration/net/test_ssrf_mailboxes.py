"""SSRF through mailboxes: create, update and the watcher never reach a host the guard refuses.

Names resolve through the local DNS server (``MAILPORT_DNS_NAMESERVERS``), never the system's.
A "trap" — a TCP listener on loopback standing for an internal service — counts every
connection and greets with a banner: a refused host must never be contacted, and its banner must
never appear in an answer. The operator allows exactly one name (``imap.allowed.test``, the
Dovecot bed) through ``MAILPORT_ALLOWED_HOSTS``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from mailport.bootstrap import Services
from mailport.config import Settings
from mailport.crypto import Secret
from mailport.mailboxes.models import AuthMethod, NewMailbox, ProcessingSettings, Security, ServerSettings
from mailport.sync import Orchestrator, WatcherOptions
from tests.fixtures.api import TenantHandle
from tests.fixtures.dns import LocalDNSServer
from tests.integration.api.helpers import mailbox_body
from tests.integration.sync.conftest import all_events, wait_for
from tests.mailstack.dovecot import Dovecot

BANNER = b"* OK internal-admin-console v9.9 ready\r\n"
ALLOWED = "imap.allowed.test"


class Trap:
    """An internal service on loopback: counts connections, greets with a recognisable banner."""

    def __init__(self) -> None:
        self.accepted = 0
        self.server: asyncio.Server | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        writer.write(BANNER)
        await writer.drain()
        await reader.read(1024)
        writer.close()

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])


@pytest.fixture
async def trap() -> AsyncIterator[Trap]:
    trap = Trap()
    trap.server = await asyncio.start_server(trap._handle, "127.0.0.1", 0)
    try:
        yield trap
    finally:
        trap.server.close()


@pytest.fixture
def ssrf_dns(dns_server: LocalDNSServer) -> Iterator[LocalDNSServer]:
    dns_server.add("trap.evil.test.", "A", "127.0.0.1")  # a public-looking name for loopback
    dns_server.add("metadata.evil.test.", "A", "169.254.169.254")
    dns_server.add(f"{ALLOWED}.", "A", "127.0.0.1")
    dns_server.add("imap.public.test.", "A", "93.184.215.14")
    yield dns_server


@pytest.fixture
def settings(settings: Settings, ssrf_dns: LocalDNSServer) -> Settings:
    """The service's guard: names from the local DNS, private addresses refused but one name."""
    return settings.model_copy(
        update={
            "dns_nameservers": [ssrf_dns.nameserver],
            "allow_private_hosts": False,
            "allowed_hosts": [ALLOWED],
        }
    )


def body_for(host: str, port: int, **overrides: Any) -> dict[str, Any]:
    body = mailbox_body(**overrides)
    body["imap"] = {"host": host, "port": port, "security": "none"}
    body["smtp"] = None
    return body


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("localhost", "loopback"),
        ("169.254.169.254", "metadata"),
        ("[::1]", "loopback"),
        ("10.1.2.3", "private"),
        ("trap.evil.test", "loopback"),  # a DNS name resolving to 127.0.0.1
        ("metadata.evil.test", "metadata"),
    ],
)
async def test_post_refuses_a_private_imap_host(
    tenant_client: httpx.AsyncClient, trap: Trap, host: str, reason: str
) -> None:
    response = await tenant_client.post("/v1/mailboxes", json=body_for(host, trap.port))

    assert response.status_code == 422, response.text
    error = response.json()
    assert error["error"] == "host_not_allowed"
    assert "MAILPORT_ALLOWED_HOSTS" in error["hint"]
    assert reason.replace("_", "-") in error["detail"]
    assert (await tenant_client.get("/v1/mailboxes")).json()["items"] == []
    assert trap.accepted == 0


async def test_post_refuses_a_private_smtp_host(tenant_client: httpx.AsyncClient, dovecot: Dovecot) -> None:
    body = body_for(ALLOWED, dovecot.imap_port)
    body["smtp"] = {"host": "trap.evil.test", "port": 587, "security": "starttls"}
    response = await tenant_client.post("/v1/mailboxes", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "host_not_allowed"


async def test_patch_refuses_a_private_host_and_keeps_the_mailbox(
    tenant_client: httpx.AsyncClient, trap: Trap
) -> None:
    created = await tenant_client.post("/v1/mailboxes", json=body_for("imap.public.test", 993))
    assert created.status_code == 201, created.text
    mailbox = created.json()

    patched = await tenant_client.patch(
        f"/v1/mailboxes/{mailbox['id']}",
        json={"imap": {"host": "trap.evil.test", "port": trap.port, "security": "none"}},
    )

    assert patched.status_code == 422, patched.text
    assert patched.json()["error"] == "host_not_allowed"
    assert (await tenant_client.get(f"/v1/mailboxes/{mailbox['id']}")).json()["imap"][
        "host"
    ] == "imap.public.test"
    smtp = await tenant_client.patch(
        f"/v1/mailboxes/{mailbox['id']}", json={"smtp": {"host": "127.0.0.1", "port": 25, "security": "none"}}
    )
    assert smtp.status_code == 422 and smtp.json()["error"] == "host_not_allowed"
    assert trap.accepted == 0


async def test_the_operator_allowance_lets_a_private_host_be_saved(
    tenant_client: httpx.AsyncClient, dovecot: Dovecot
) -> None:
    response = await tenant_client.post("/v1/mailboxes", json=body_for(ALLOWED, dovecot.imap_port))
    assert response.status_code == 201, response.text


async def test_a_name_that_does_not_resolve_yet_is_saved(tenant_client: httpx.AsyncClient) -> None:
    """DNS may be down or the record not published yet: the watcher decides at connect time."""
    response = await tenant_client.post("/v1/mailboxes", json=body_for("imap.not-yet.test", 993))
    assert response.status_code == 201, response.text


async def test_the_cli_refuses_a_private_host_like_the_api(services: Services, tenant: TenantHandle) -> None:
    from mailport.errors import HostNotAllowedError
    from mailport.mailboxes.schemas import MailboxCreate

    body = MailboxCreate.model_validate(body_for("trap.evil.test", 143))
    with pytest.raises(HostNotAllowedError):
        await services.mailboxes.create_from(tenant.id, body)


# ------------------------------------------------------------------ the watcher


def orchestrator(services: Services) -> Orchestrator:
    return Orchestrator(
        services,
        reconcile_interval=0.1,
        stagger_seconds=0,
        options=WatcherOptions(backoff_base=0.05, backoff_cap=0.1, auth_retry_seconds=600),
    )


async def stored_mailbox(services: Services, tenant_id: str, host: str, port: int, user: str, pw: str) -> str:
    """A mailbox row written straight to the database, as an older version or a bug might have."""
    mailbox = await services.mailboxes.repository.create(
        tenant_id,
        NewMailbox(
            email=user,
            auth_method=AuthMethod.PASSWORD,
            imap=ServerSettings(host, port, Security.NONE),
            password=Secret(pw),
            settings=ProcessingSettings(check_interval=60),
        ),
        now=datetime.now(UTC),
    )
    return mailbox.id


async def health_of(client: httpx.AsyncClient, mailbox_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/mailboxes/{mailbox_id}/health")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.parametrize("host", ["127.0.0.1", "trap.evil.test"])
async def test_the_watcher_never_connects_to_a_refused_host(
    services: Services,
    tenant: TenantHandle,
    tenant_client: httpx.AsyncClient,
    trap: Trap,
    ssrf_dns: LocalDNSServer,
    password_user: tuple[str, str],
    host: str,
) -> None:
    user, password = password_user
    mailbox_id = await stored_mailbox(services, tenant.id, host, trap.port, user, password)
    running = orchestrator(services)
    await running.start()
    try:
        health = await wait_for(lambda: _error_health(tenant_client, mailbox_id), timeout=10)
        await asyncio.sleep(1.0)  # a hot loop would retry many times meanwhile
        again = await health_of(tenant_client, mailbox_id)
    finally:
        await running.stop()

    assert trap.accepted == 0
    assert health["status"] == "error"
    assert health["last_error"].startswith("[host_not_allowed]")
    assert "loopback" in health["last_error"]
    assert again["errors_24h"] == 1, again  # one attempt, then a long pause
    errors = await all_events(services, mailbox_id=mailbox_id, type="mailbox.error")
    assert [e.payload["error"] for e in errors] == ["host_not_allowed"]
    shown = (await tenant_client.get(f"/v1/mailboxes/{mailbox_id}")).text + str(again)
    assert "internal-admin-console" not in shown  # nothing of the internal service is echoed
    if host != "127.0.0.1":
        assert ssrf_dns.lookups(host).count("A") == 1


async def _error_health(client: httpx.AsyncClient, mailbox_id: str) -> dict[str, Any] | None:
    health = await health_of(client, mailbox_id)
    return health if health["status"] == "error" else None


async def test_dns_rebinding_at_connect_time_is_refused_and_a_patch_wakes_the_watcher(
    services: Services,
    tenant_client: httpx.AsyncClient,
    trap: Trap,
    ssrf_dns: LocalDNSServer,
    dovecot: Dovecot,
    password_user: tuple[str, str],
) -> None:
    """Saved while the name was public; by the time the watcher connects it points at loopback."""
    user, password = password_user
    ssrf_dns.add("imap.rebind.test.", "A", "93.184.215.14")
    ssrf_dns.rebind("imap.rebind.test.", "A", "127.0.0.1")
    body = body_for("imap.rebind.test", trap.port, email=user, password=password)
    created = await tenant_client.post("/v1/mailboxes", json=body)
    assert created.status_code == 201, created.text
    mailbox_id = created.json()["id"]

    running = orchestrator(services)
    await running.start()
    try:
        health = await wait_for(lambda: _error_health(tenant_client, mailbox_id), timeout=10)
        assert health["last_error"].startswith("[host_not_allowed]")
        assert "127.0.0.1" in health["last_error"]
        assert trap.accepted == 0

        # The tenant fixes the host: the watcher restarts at once (no 30-minute pause).
        fixed = await tenant_client.patch(
            f"/v1/mailboxes/{mailbox_id}",
            json={"imap": {"host": ALLOWED, "port": dovecot.imap_port, "security": "none"}},
        )
        assert fixed.status_code == 200, fixed.text

        async def connected() -> bool:
            return (await health_of(tenant_client, mailbox_id))["status"] == "connected"

        await wait_for(connected, timeout=10)
    finally:
        await running.stop()
    assert trap.accepted == 0


# ------------------------------------------------------------------ webhooks and OAuth endpoints


async def test_a_webhook_url_naming_a_private_host_is_refused(
    tenant_client: httpx.AsyncClient, trap: Trap
) -> None:
    for url in (f"http://trap.evil.test:{trap.port}/hook", "http://metadata.evil.test/latest/meta-data/"):
        answer = await tenant_client.post("/v1/webhooks", json={"url": url})
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"] == "host_not_allowed"
    assert trap.accepted == 0


async def test_a_webhook_name_rebound_to_loopback_is_never_posted_to(
    services: Services, trap: Trap, ssrf_dns: LocalDNSServer
) -> None:
    from mailport.delivery.sender import WebhookSender

    ssrf_dns.add("hooks.rebind.test.", "A", "127.0.0.1")
    sender = WebhookSender(services.guard, timeout=3)
    try:
        outcome = await sender.post(f"http://hooks.rebind.test:{trap.port}/hook", b"{}", {})
    finally:
        await sender.aclose()
    assert outcome.result == "refused" and outcome.error is not None
    assert outcome.error.startswith("host_not_allowed")
    assert trap.accepted == 0


def corp_provider(token_endpoint: str) -> Any:
    from mailport.oauth.providers import MailServer, OAuthProvider

    return OAuthProvider(
        key="corp",
        name="Corp",
        authorization_endpoint="https://login.corp.example/authorize",
        token_endpoint=token_endpoint,
        revocation_endpoint=token_endpoint.replace("/token", "/revoke"),
        scopes=["mail"],
        imap=MailServer(host="imap.corp.example", port=993),
    )


@pytest.mark.parametrize(
    ("endpoint", "tenant"),
    [
        ("http://trap.evil.test:{port}/token", None),  # the providers file names a private host
        ("http://127.0.0.1:{port}/token", None),
        ("http://{tenant}:{port}/token", "trap.evil.test"),  # a tenant's app chooses the host
    ],
)
async def test_oauth_endpoints_on_private_hosts_are_refused(
    services: Services, trap: Trap, endpoint: str, tenant: str | None
) -> None:
    from mailport.errors import HostNotAllowedError
    from mailport.oauth.providers import OAuthApp

    provider = corp_provider(endpoint.replace("{port}", str(trap.port)))
    app = OAuthApp("corp", "client", Secret("client-secret"), tenant=tenant, source="tenant")
    client = services.oauth.oauth.client  # the production wiring (bootstrap's guard)

    with pytest.raises(HostNotAllowedError):
        await client.refresh(provider, app, Secret("refresh-token"))
    with pytest.raises(HostNotAllowedError):
        await client.revoke(provider, app, Secret("refresh-token"))
    assert trap.accepted == 0


async def test_oauth_endpoints_on_an_allowed_host_are_reached(services: Services, idp: Any) -> None:
    """The operator's allowance applies to OAuth endpoints too (the IdP answers, a refusal)."""
    from mailport.errors import OAuthInvalidGrantError
    from mailport.oauth.providers import OAuthApp

    port = idp.url.rsplit(":", 1)[1].split("/")[0]
    provider = corp_provider(f"http://{ALLOWED}:{port}/google/token")
    with pytest.raises(OAuthInvalidGrantError):
        await services.oauth.oauth.client.refresh(
            provider, OAuthApp("corp", "test-client", Secret("test-secret")), Secret("no-such-token")
        )
