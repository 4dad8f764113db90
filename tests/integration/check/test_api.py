"""``POST /v1/check`` over the API: the real check against the bed, the SSRF guard (IPv4, IPv6,
IPv4-mapped and legacy spellings, names resolving to private addresses), the per-tenant rate
limit with ``Retry-After``, and no secret in any answer or log line."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from mailport.bootstrap import Services
from tests.fixtures.api import NewTenantClient, SecretWatch
from tests.integration.check.conftest import BedAccount
from tests.mailstack.dovecot import Dovecot

GUARDED = {"allow_private_hosts": False, "dns": True}


def body_for(account: BedAccount, password: str | None = None) -> dict[str, Any]:
    """``POST /v1/check`` for the account over implicit TLS, the bed's CA in the body."""
    return {
        "email": account.user,
        "imap": {"host": "127.0.0.1", "port": account.dovecot.imaps_port, "security": "ssl"},
        "smtp": {"host": "127.0.0.1", "port": account.smtp.tls_port, "security": "ssl"},
        "password": password or account.password,
        "ca_pem": open(account.dovecot.ca_file).read(),
    }


async def test_check_against_the_bed(tenant_client: httpx.AsyncClient, bed_account: BedAccount) -> None:
    response = await tenant_client.post("/v1/check", json=body_for(bed_account))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ok"] is True
    assert [s["step"] for s in body["imap"]["steps"]] == [
        "dns",
        "tcp_connect",
        "tls_handshake",
        "greeting",
        "authentication",
        "select",
    ]
    assert [s["step"] for s in body["smtp"]["steps"]][-1] == "smtp_auth"
    assert all(set(s) == {"step", "ok", "ms", "detail"} for s in body["imap"]["steps"])


async def test_a_failing_check_is_200_with_the_step_code_and_hint(
    tenant_client: httpx.AsyncClient, bed_account: BedAccount, secret_watch: SecretWatch
) -> None:
    wrong = "wrong-Pa55-word-x81"
    secret_watch.add(wrong)
    response = await tenant_client.post("/v1/check", json=body_for(bed_account, wrong))
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is False and body["imap"]["ok"] is False and body["smtp"]["ok"] is False
    failing = body["imap"]["steps"][-1]
    assert set(failing) >= {"step", "ok", "ms", "detail", "code", "hint", "server_said"}
    assert (failing["step"], failing["code"]) == ("authentication", "invalid_credentials")


async def test_smtp_is_optional_and_the_token_is_never_echoed(
    tenant_client: httpx.AsyncClient,
    dovecot: Dovecot,
    oauth_user: tuple[str, dict[str, object]],
    secret_watch: SecretWatch,
) -> None:
    email, token = oauth_user
    secret_watch.add(str(token["access_token"]))
    response = await tenant_client.post(
        "/v1/check",
        json={
            "username": email,
            "imap": {"host": "127.0.0.1", "port": dovecot.imaps_port, "security": "ssl"},
            "access_token": token["access_token"],
            "ca_pem": open(dovecot.ca_file).read(),
        },
    )
    assert response.status_code == 200
    assert response.json()["ok"] is True and response.json()["smtp"] is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"imap": {"host": "h.test", "port": 993, "security": "ssl"}, "password": "x"}, "body"),
        ({"email": "a@b.test", "imap": {"host": "h.test", "port": 993, "security": "ssl"}}, "body"),
        (
            {
                "email": "a@b.test",
                "imap": {"host": "h.test", "port": 993, "security": "ssl"},
                "password": "x",
                "access_token": "y",
            },
            "body",
        ),
        (
            {"email": "a@b.test", "imap": {"host": "h.test", "port": 0, "security": "ssl"}, "password": "x"},
            "imap.port",
        ),
        (
            {
                "email": "a@b.test",
                "imap": {"host": "h.test", "port": 993, "security": "tls"},
                "password": "x",
            },
            "imap.security",
        ),
        (
            {
                "email": "a@b.test",
                "imap": {"host": "h.test", "port": 993, "security": "ssl"},
                "password": "x",
                "extra": 1,
            },
            "extra",
        ),
        (
            {
                "email": "a@b.test",
                "imap": {"host": "h.test", "port": 993, "security": "ssl"},
                "password": "x",
                "ca_pem": "-----BEGIN CERTIFICATE-----\nzé\n-----END CERTIFICATE-----\n",
            },
            "ca_pem",
        ),
    ],
)
async def test_bad_requests_are_422(
    tenant_client: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    response = await tenant_client.post("/v1/check", json=body)
    assert response.status_code == 422
    assert response.json()["field"] == field
    assert "x" not in response.json().get("errors", [{}])[0].get("input", "")


async def test_unknown_key_is_401(app: Any) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        response = await client.post("/v1/check", json={})
    assert response.status_code == 401


# --------------------------------------------------------------------------- SSRF guard


@pytest.mark.parametrize("check_overrides", [GUARDED])
@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("192.168.1.10", "private"),
        ("169.254.169.254", "metadata"),
        ("100.64.0.1", "shared"),
        ("224.0.0.1", "multicast"),
        ("0x7f.1", "loopback"),  # a legacy spelling inet_aton accepts
        ("2130706433", "loopback"),
        ("::1", "loopback"),
        ("[::1]", "loopback"),
        ("fe80::1", "link_local"),
        ("fd12:3456::1", "private"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
        ("::ffff:10.0.0.1", "private"),
        ("64:ff9b::a9fe:a9fe", "metadata"),  # NAT64 of 169.254.169.254
    ],
)
async def test_private_addresses_are_refused(
    tenant_client: httpx.AsyncClient, host: str, reason: str, check_overrides: dict[str, Any]
) -> None:
    response = await tenant_client.post(
        "/v1/check",
        json={"email": "a@b.test", "imap": {"host": host, "port": 993, "security": "ssl"}, "password": "pw"},
    )
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "host_not_allowed"
    assert body["field"] == "imap.host"
    assert body["reason"] == reason
    assert "MAILPORT_ALLOW_PRIVATE_HOSTS" in body["hint"]


@pytest.mark.parametrize("check_overrides", [GUARDED])
@pytest.mark.parametrize(
    ("records", "address"),
    [
        ([("A", "10.20.30.40")], "10.20.30.40"),
        ([("A", "127.0.0.1")], "127.0.0.1"),
        ([("AAAA", "::1")], "::1"),
        ([("AAAA", "::ffff:192.168.0.7")], "::ffff:c0a8:7"),  # IPv4-mapped, as Python 3.11 prints it
        ([("A", "93.184.215.14"), ("A", "192.168.0.7")], "192.168.0.7"),  # one private address is enough
    ],
)
async def test_names_resolving_to_private_addresses_are_refused(
    tenant_client: httpx.AsyncClient,
    dns_server: Any,
    records: list[tuple[str, str]],
    address: str,
    check_overrides: dict[str, Any],
) -> None:
    for rdtype, value in records:
        dns_server.add("smtp.internal.test", rdtype, value)
    dns_server.add("imap.public.test", "A", "93.184.215.14")
    response = await tenant_client.post(
        "/v1/check",
        json={
            "email": "a@b.test",
            "imap": {"host": "imap.public.test", "port": 993, "security": "ssl"},
            "smtp": {"host": "smtp.internal.test", "port": 465, "security": "ssl"},
            "password": "pw",
        },
    )
    assert response.status_code == 422, response.text
    body = response.json()
    assert (body["error"], body["field"], body["address"]) == ("host_not_allowed", "smtp.host", address)
    assert f"resolves to {address}" in body["detail"]


@pytest.mark.parametrize("check_overrides", [{"allow_private_hosts": False, "allowed_hosts": ["127.0.0.1"]}])
async def test_allowed_hosts_lets_the_operator_allow_one_host(
    tenant_client: httpx.AsyncClient,
    dovecot: Dovecot,
    bed_account: BedAccount,
    check_overrides: dict[str, Any],
) -> None:
    allowed = await tenant_client.post(
        "/v1/check",
        json={
            "email": bed_account.user,
            "imap": {"host": "127.0.0.1", "port": dovecot.imaps_port, "security": "ssl"},
            "password": bed_account.password,
            "ca_pem": open(dovecot.ca_file).read(),
        },
    )
    assert allowed.status_code == 200 and allowed.json()["ok"] is True
    refused = await tenant_client.post(
        "/v1/check",
        json={
            "email": bed_account.user,
            "imap": {"host": "127.0.0.2", "port": dovecot.imaps_port, "security": "ssl"},
            "password": "x",
        },
    )
    assert refused.json()["error"] == "host_not_allowed"


async def test_the_address_checked_is_the_address_connected_to(
    services: Services, dns_server: Any, dovecot: Dovecot
) -> None:
    """No DNS rebinding: the check connects to the vetted address; a second lookup never happens."""
    from mailport.check import CheckCredentials, ConnectionChecker, ServerTarget
    from mailport.crypto import Secret
    from mailport.net.guard import HostGuard
    from mailport.net.resolve import DnsResolver

    dns_server.add("imap.rebind.test", "A", "127.0.0.1")
    guard = HostGuard(resolver=DnsResolver([dns_server.nameserver]), allowed_hosts=["127.0.0.1/32"])
    checker = ConnectionChecker(guard, timeout=5)
    result = await checker.check(
        ServerTarget("imap.rebind.test", dovecot.imap_port, "starttls"),
        None,
        CheckCredentials("a@dyn.example.test", password=Secret("x")),
        ca_file=dovecot.ca_file,
    )
    lookups = [q for q in dns_server.queries if q[0] == "imap.rebind.test."]
    assert len({q[1] for q in lookups}) == len(lookups)  # A and AAAA once each, never again
    steps = {s["step"]: s for s in result.to_dict()["imap"]["steps"]}
    assert steps["tcp_connect"]["detail"] == f"connected to 127.0.0.1 port {dovecot.imap_port}"
    assert steps["starttls"]["ok"] is False  # the certificate names localhost/127.0.0.1, not the name


# --------------------------------------------------------------------------- rate limit


@pytest.mark.parametrize(
    "check_overrides", [{"allow_private_hosts": False, "check_burst": 2, "check_rate_per_minute": 1}]
)
async def test_rate_limited_per_tenant_with_retry_after(
    tenant_client: httpx.AsyncClient, new_tenant_client: NewTenantClient, check_overrides: dict[str, Any]
) -> None:
    body = {
        "email": "a@b.test",
        "imap": {"host": "127.0.0.1", "port": 993, "security": "ssl"},
        "password": "pw",
    }
    for _ in range(2):  # refused by the guard, but each still costs a token
        assert (await tenant_client.post("/v1/check", json=body)).status_code == 422
    limited = await tenant_client.post("/v1/check", json=body)
    assert limited.status_code == 429
    assert limited.json()["error"] == "rate_limited"
    retry_after = int(limited.headers["Retry-After"])
    assert 1 <= retry_after <= 60 and limited.json()["retry_after"] == retry_after
    _, other = await new_tenant_client()
    assert (await other.post("/v1/check", json=body)).status_code == 422  # another tenant has its own bucket
