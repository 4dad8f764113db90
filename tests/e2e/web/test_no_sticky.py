"""The wizard without sticky sessions: two API instances (two service graphs and apps on the SAME
PostgreSQL database) behind a round-robin balancer, one browser. Every request goes to the next
instance; where it matters a step is sent to one on purpose: the connection test starts on A and
is polled on B until done, "Trust this certificate" is posted to B (it reads A's run) and the new
run is polled on A. The OAuth sign-in through a connect link alternates too (start page,
callback, return, test, save). The check runs' rows never hold the password or the sealed draft;
another tenant cannot see a run (404); a run whose runner stopped is shown as stopped.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import select

from mailport.api import create_app
from mailport.bootstrap import Services
from mailport.check.runs import CheckRunStore
from mailport.clock import utc_now
from mailport.config import Settings
from mailport.crypto import Secret
from mailport.detect import DetectOptions, Detector
from mailport.net.trust import Certificate
from mailport.servers import Security, ServerSettings
from mailport.store.tables import check_runs
from mailport.web.checks import CheckTarget
from mailport.web.state import WebState
from tests.e2e.web.balancer import Balancer
from tests.e2e.web.polling import finished, run_of
from tests.fixtures.api import BASE_URL, TenantHandle, create_tenant, make_settings
from tests.fixtures.schema import build_migrated
from tests.mailstack.dovecot import Dovecot
from tests.mailstack.idp import MockIdP, idp_overrides
from tests.mailstack.smtp import SubmissionServer

pytestmark = pytest.mark.e2e

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
DRAFT = re.compile(r'name="draft" value="([^"]+)"')


@pytest.fixture
def database_url(postgres_url: str) -> str:
    """The fleet shares one PostgreSQL database (not SQLite: one file per machine)."""
    return postgres_url


@pytest.fixture
def settings(
    fresh_database_url: str,
    tmp_path: Path,
    secret_key: str,
    request: pytest.FixtureRequest,
    dovecot: Dovecot,
    smtp: SubmissionServer,
    idp: MockIdP,
) -> Settings:
    built = make_settings(fresh_database_url, tmp_path / "var", secret_key)
    built.allow_private_hosts = True  # the bed is on 127.0.0.1
    built.public_url = BASE_URL
    providers = idp_overrides(idp)
    for key in ("google", "microsoft"):
        providers[key]["imap"] = {"host": "127.0.0.1", "port": dovecot.imaps_port, "security": "ssl"}
        providers[key]["smtp"] = {"host": "127.0.0.1", "port": smtp.tls_port, "security": "ssl"}
    path = tmp_path / "providers.json"
    path.write_text(json.dumps(providers))
    built.oauth_providers_file = path
    built.google_client_id = "test-client"
    built.google_client_secret = SecretStr("test-secret")
    built.microsoft_client_id = "test-client"
    built.microsoft_client_secret = SecretStr("test-secret")
    built.microsoft_tenant = "organizations"
    param = getattr(request, "param", False)
    if param == "budget":
        built.check_rate_per_minute, built.check_burst = 1.0, 2  # two checks per two minutes
    elif param:
        built.mail_ca_file = Path(dovecot.ca_file)  # the bed's CA: tests pass without a pin
    return built


@pytest.fixture
async def services_b(settings: Settings, services: Services) -> AsyncIterator[Services]:
    """The second instance: its own service graph on the same database (A's is ``services``)."""
    built = await build_migrated(settings)
    try:
        yield built
    finally:
        await built.aclose()


@pytest.fixture
def apps(app: FastAPI, services_b: Services) -> dict[str, FastAPI]:
    both = {"a": app, "b": create_app(services=services_b)}
    for each in both.values():
        each.state.detector = Detector(options=DetectOptions(probe=False, timeout=1))
    return both


@pytest.fixture
def balancer(apps: dict[str, FastAPI]) -> Balancer:
    return Balancer(apps)


@pytest.fixture
async def browser(balancer: Balancer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=balancer, base_url=BASE_URL) as client:
        yield client


async def sign_in(browser: httpx.AsyncClient, api_key: str) -> None:
    """Sign in (sign-in page, sign-in, wizard: three requests, so both instances take part)."""
    token = CSRF.search((await browser.get("/signin")).text)
    assert token is not None
    signed = await browser.post("/signin", data={"csrf": token.group(1), "api_key": api_key})
    assert signed.status_code == 303, signed.text
    token = CSRF.search((await browser.get("/connect")).text)
    assert token is not None
    browser.headers["X-CSRF-Token"] = token.group(1)


def _form(fragment: str, action: str) -> dict[str, str]:
    start = fragment.index(f'action="{action}"')
    form = fragment[start : fragment.index("</form>", start)]
    return {name: html.unescape(value) for name, value in re.findall(r'name="([^"]+)" value="([^"]*)"', form)}


def runner_of(app: FastAPI) -> str:
    web: WebState = app.state.web
    return web.runs.runner


async def rows(services: Services) -> list[dict[str, object]]:
    async with services.database.connect() as conn:
        return [dict(row._mapping) for row in (await conn.execute(select(check_runs))).all()]


async def test_the_password_wizard_alternating_instances_with_the_trust_path(
    browser: httpx.AsyncClient,
    balancer: Balancer,
    apps: dict[str, FastAPI],
    services: Services,
    tenant: TenantHandle,
    tenant_client: httpx.AsyncClient,
    dovecot: Dovecot,
    smtp: SubmissionServer,
    password_user: tuple[str, str],
) -> None:
    user, password = password_user
    expected = Certificate.from_pem(Path(dovecot.ca_file).read_text())
    await sign_in(browser, tenant.api_key)
    detected = await browser.post("/connect/detect", data={"email": user})
    assert detected.status_code == 200, detected.text
    method = await browser.post("/connect/method", data={"email": user})
    assert method.status_code == 200, method.text
    draft = DRAFT.search(method.text)
    assert draft is not None
    servers = {
        "imap_host": "127.0.0.1",
        "imap_port": str(dovecot.imaps_port),
        "imap_security": "ssl",
        "imap_username": user,
        "use_smtp": "on",
        "smtp_host": "127.0.0.1",
        "smtp_port": str(smtp.port),
        "smtp_security": "starttls",
        "smtp_username": user,
    }
    with balancer.via("a"):  # the test starts on A ...
        page = await browser.post(
            "/connect/manual/save",
            data={"draft": html.unescape(draft.group(1)), "password": password, **servers},
        )
    assert page.status_code == 200, page.text[:500]
    first_run, _ = run_of(page.text)
    with balancer.via("b"):  # ... and B shows it, from the row A writes, until it is done
        failed = await finished(browser, page.text)
    assert 'data-ok="false"' in failed and "certificate_self_signed" in failed
    assert f'data-testid="fingerprint">{expected.sha256}<' in failed and "IMAP and SMTP" in failed
    [row] = await rows(services)
    assert row["id"] == first_run and row["runner"] == runner_of(apps["a"]) and row["state"] == "failed"

    with balancer.via("b"):  # "Trust this certificate" on B: the certificate comes from A's run
        trusted = await browser.post("/connect/trust", data=_form(failed, "/connect/trust"))
    assert trusted.status_code == 200, trusted.text[:500]
    second_run, _ = run_of(trusted.text)
    with balancer.via("a"):  # the new run is B's; A shows it
        passed = await finished(browser, trusted.text)
    assert 'data-ok="true"' in passed, passed
    assert {r["id"]: r["runner"] for r in await rows(services)}[second_run] == runner_of(apps["b"])

    settings_page = await browser.post("/connect/settings", data=_form(passed, "/connect/settings"))
    assert settings_page.status_code == 200, settings_page.text[:500]
    final = DRAFT.search(settings_page.text)
    assert final is not None
    saved = await browser.post(
        "/connect/save",
        data={"draft": html.unescape(final.group(1)), "check_interval": "60", "after_processing": "none"},
    )
    assert saved.status_code == 200, saved.text[:500]
    [mailbox] = (await tenant_client.get("/v1/mailboxes")).json()["items"]
    assert mailbox["email"] == user and mailbox["status"] == "connected"
    assert mailbox["imap"]["trusted_certificate"]["sha256"] == expected.sha256

    # Both instances answered the wizard, and each of them polled a run of the other.
    assert balancer.instances("/connect") == {"a", "b"}
    # The rows hold the steps and the certificate, never the password or the sealed draft.
    stored = json.dumps([r["data"] for r in await rows(services)])
    assert password not in stored and "BEGIN CERTIFICATE" in stored
    retry = _form(failed, "/connect/test")["draft"]
    assert retry not in stored and "gAAAA" not in stored  # no Fernet token of any kind


async def test_another_tenant_cannot_see_a_run(
    browser: httpx.AsyncClient,
    balancer: Balancer,
    apps: dict[str, FastAPI],
    services: Services,
    tenant: TenantHandle,
    password_user: tuple[str, str],
    dovecot: Dovecot,
) -> None:
    user, password = password_user
    await sign_in(browser, tenant.api_key)
    method = await browser.post("/connect/method", data={"email": user})
    draft = DRAFT.search(method.text)
    assert draft is not None
    page = await browser.post(
        "/connect/manual/save",
        data={
            "draft": html.unescape(draft.group(1)),
            "password": password,
            "imap_host": "127.0.0.1",
            "imap_port": str(dovecot.imaps_port),
            "imap_security": "ssl",
        },
    )
    run, values = run_of(page.text)
    other = await create_tenant(services)
    async with httpx.AsyncClient(transport=balancer, base_url=BASE_URL) as stranger:
        await sign_in(stranger, other.api_key)
        for instance in ("a", "b"):
            with balancer.via(instance):
                assert (await stranger.post(f"/connect/test/{run}", data=values)).status_code == 404
                assert (await stranger.get(f"/connect/test/{run}?panel=1")).status_code == 404
    done = await finished(browser, page.text)  # its own tenant still sees it
    assert 'data-done="true"' in done


async def test_each_step_is_visible_on_the_other_instance_within_half_a_second(
    services: Services, services_b: Services, tenant: TenantHandle
) -> None:
    """A server that accepts and never greets: DNS and the connection are recorded at once, then
    the greeting waits. B sees each step A records; then A stops (shutdown): B says so."""
    accepted: list[asyncio.StreamWriter] = []

    async def silent(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    web_a, web_b = WebState.build(services), WebState.build(services_b)
    try:
        target = CheckTarget(
            "quiet@example.test",
            imap=ServerSettings("127.0.0.1", port, Security.NONE),
            smtp=None,
            password=Secret("pw-quiet"),
        )
        run = await web_a.runs.start(tenant.id, target)
        seen_local: dict[str, float] = {}
        seen_remote: dict[str, float] = {}
        deadline = time.monotonic() + 5
        while len(seen_remote) < 2 and time.monotonic() < deadline:
            now = time.monotonic()
            for step in run.steps_of("imap"):
                seen_local.setdefault(step.step, now)
            remote = await web_b.runs.get(tenant.id, run.id)
            assert remote is not None and not remote.done
            for step in remote.steps_of("imap"):
                seen_remote.setdefault(step.step, time.monotonic())
            await asyncio.sleep(0.01)
        assert set(seen_remote) == {"dns", "tcp_connect"}, seen_remote
        delays = {step: seen_remote[step] - seen_local[step] for step in seen_remote}
        print(f"step published to the other instance after {delays}")
        assert max(delays.values()) < 0.5, delays

        await web_a.runs.aclose()  # A shuts down mid-check: the run is recorded as stopped
        stopped = await web_b.runs.get(tenant.id, run.id)
        assert stopped is not None and stopped.done and not stopped.ok
        assert stopped.lost is not None and stopped.lost.code == "check_interrupted"
    finally:
        await web_a.runs.aclose()
        await web_b.runs.aclose()
        for writer in accepted:
            writer.close()
        server.close()


async def test_a_run_whose_runner_went_silent_is_shown_as_stopped(
    browser: httpx.AsyncClient, balancer: Balancer, services: Services, tenant: TenantHandle
) -> None:
    """A runner on another machine (its pid cannot be looked at) that stopped writing 31 s ago:
    the page says the test stopped and offers to start again, instead of spinning."""
    store = CheckRunStore(services.database)
    then = utc_now() - timedelta(seconds=31)
    await store.create(
        "chk_silent",
        tenant_id=tenant.id,
        kind="imap",
        data={"context": {"incoming": "imap"}, "protocols": [{"protocol": "imap", "steps": []}], "ok": False},
        runner="elsewhere:4242:deadbeef",
        now=then,
        expires_at=then + timedelta(minutes=10),
    )
    await sign_in(browser, tenant.api_key)
    page = await browser.post("/connect/test/chk_silent", data={})
    assert page.status_code == 200, page.text
    assert 'data-done="true"' in page.text and 'data-ok="false"' in page.text
    assert "check_interrupted" in page.text and "The test stopped before it finished" in page.text
    assert 'data-testid="start-again"' in page.text and "hx-post" not in page.text
    record = await store.get(tenant.id, "chk_silent")
    assert record is not None and record.state == "failed"  # recorded: every instance agrees now
    # A runner that is alive keeps its run: the same row written a moment ago is still running.
    await store.create(
        "chk_alive",
        tenant_id=tenant.id,
        kind="imap",
        data={"context": {}, "protocols": [], "ok": False},
        runner="elsewhere:4242:deadbeef",
        now=utc_now(),
        expires_at=utc_now() + timedelta(minutes=10),
    )
    alive = await browser.post("/connect/test/chk_alive", data={})
    assert 'data-done="false"' in alive.text and "hx-post" in alive.text


async def test_expired_runs_are_purged_when_runs_start(services: Services, tenant: TenantHandle) -> None:
    store = CheckRunStore(services.database)
    old = utc_now() - timedelta(hours=1)
    await store.create(
        "chk_old", tenant_id=tenant.id, kind="imap", data={}, runner="x:1:y", now=old, expires_at=old
    )
    web = WebState.build(services)
    try:
        run = await web.runs.start_api(tenant.id, _never, context={})
        assert await store.get(tenant.id, "chk_old") is None
        assert await store.get(tenant.id, run.id) is not None
    finally:
        await web.runs.aclose()


async def _never():  # type: ignore[no-untyped-def]
    await asyncio.sleep(3600)


@pytest.mark.parametrize("settings", [True], indirect=True)
async def test_a_connect_link_with_oauth_alternating_instances(
    browser: httpx.AsyncClient,
    balancer: Balancer,
    apps: dict[str, FastAPI],
    services: Services,
    tenant: TenantHandle,
    tenant_client: httpx.AsyncClient,
) -> None:
    email = f"o{uuid.uuid4().hex[:10]}@gmail.com"
    link = await tenant_client.post(
        "/v1/connect-links", json={"return_url": "https://app.example.test/back", "purpose": "crm"}
    )
    assert link.status_code == 201, link.text
    path = urlsplit(link.json()["url"]).path
    with balancer.via("a"):
        opened = await browser.get(path)  # the link is consumed on A ...
    assert opened.status_code == 303, opened.text
    async with httpx.AsyncClient(transport=balancer, base_url=BASE_URL) as replayer:
        with balancer.via("b"):  # ... and is used up on B too
            again = await replayer.get(path)
    assert again.status_code >= 400 and "connect_link_used" in again.text
    token = CSRF.search((await browser.get("/connect")).text)
    assert token is not None
    browser.headers["X-CSRF-Token"] = token.group(1)

    method = await browser.post("/connect/method", data={"email": email})
    assert method.status_code == 200 and "Connect with Google" in method.text, method.text[:500]
    draft = DRAFT.search(method.text)
    assert draft is not None
    start = await browser.post(
        "/connect/oauth",
        data={"draft": html.unescape(draft.group(1)), "provider": "google", "connector": "imap"},
    )
    assert start.status_code == 303, start.text
    provider_page = await browser.get(start.headers["location"])  # the start page sets the binding cookie
    assert provider_page.status_code in (302, 303, 307), provider_page.text
    async with httpx.AsyncClient() as outside:  # the provider, on its own host
        signed = await outside.get(provider_page.headers["location"])
    assert signed.status_code == 302, signed.text
    callback = signed.headers["location"]
    assert callback.startswith(f"{BASE_URL}/v1/oauth/google/callback")
    returned = await browser.get(callback)  # the callback (the next instance) creates the mailbox
    assert returned.status_code in (302, 303), returned.text
    assert "/connect/oauth/return?" in returned.headers["location"]
    with balancer.via("a"):
        page = await browser.get(returned.headers["location"])  # the test starts on A
    assert page.status_code == 200, page.text[:500]
    with balancer.via("b"):
        passed = await finished(browser, page.text)
    assert 'data-ok="true"' in passed, passed
    settings_page = await browser.post("/connect/settings", data=_form(passed, "/connect/settings"))
    final = DRAFT.search(settings_page.text)
    assert final is not None, settings_page.text[:500]
    saved = await browser.post(
        "/connect/save",
        data={"draft": html.unescape(final.group(1)), "check_interval": "60", "purpose": "crm"},
    )
    assert saved.status_code == 303, saved.text[:500]
    back = parse_qs(urlsplit(saved.headers["location"]).query)
    assert back["status"] == ["connected"]
    mailbox = (await tenant_client.get(f"/v1/mailboxes/{back['mailbox_id'][0]}")).json()
    assert mailbox["email"] == email and mailbox["auth_method"] == "oauth2"
    assert mailbox["purpose"] == "crm" and mailbox["status"] == "connected"
    # The start page (binding cookie) and the callback (PKCE verifier, single-use state) were
    # answered by different instances, as were the link's use and its replay.
    [started] = balancer.instances("/v1/oauth/google/start")
    [called_back] = balancer.instances("/v1/oauth/google/callback")
    assert started != called_back
    assert balancer.instances("/connect") == {"a", "b"}


@pytest.mark.parametrize("settings", [True], indirect=True)
async def test_the_device_sign_in_alternating_instances(
    browser: httpx.AsyncClient,
    balancer: Balancer,
    tenant: TenantHandle,
    tenant_client: httpx.AsyncClient,
    idp: MockIdP,
) -> None:
    """The device code is started on A (A polls the provider); its status is asked of both;
    once the person has said yes, whichever instance is asked sends the browser on."""
    email = f"d{uuid.uuid4().hex[:10]}@outlook.com"
    await sign_in(browser, tenant.api_key)
    method = await browser.post("/connect/method", data={"email": email})
    draft = DRAFT.search(method.text)
    assert draft is not None and "Connect with Microsoft" in method.text, method.text[:500]
    with balancer.via("a"):
        device = await browser.post(
            "/connect/device",
            data={"draft": html.unescape(draft.group(1)), "provider": "microsoft", "connector": "imap"},
        )
    assert device.status_code == 200, device.text[:500]
    flow = re.search(r"/connect/device/(dev_[A-Za-z0-9_-]+)", device.text)
    code = re.search(r'data-testid="user-code"[^>]*>([0-9-]+)<', device.text)
    assert flow is not None and code is not None, device.text[:1500]
    for _ in range(2):  # pending, on both
        assert "Waiting for you to sign in" in (await browser.get(f"/connect/device/{flow.group(1)}")).text
    async with httpx.AsyncClient() as outside:
        approved = await outside.post(
            f"{idp.url}/_test/device/approve", json={"user_code": code.group(1), "email": email}
        )
    assert approved.status_code == 200
    for _ in range(100):
        status = await browser.get(f"/connect/device/{flow.group(1)}")
        if status.status_code in (302, 303) or "HX-Redirect" in status.headers:
            break
        await asyncio.sleep(0.2)
    target = status.headers.get("location") or status.headers.get("HX-Redirect")
    assert target is not None and "/connect/oauth/return?" in target, (status.status_code, status.text[:300])
    page = await browser.get(target)
    assert page.status_code == 200, page.text[:500]
    passed = await finished(browser, page.text)
    assert 'data-ok="true"' in passed, passed
    [mailbox] = (await tenant_client.get("/v1/mailboxes")).json()["items"]
    assert mailbox["email"] == email and mailbox["oauth"]["provider"] == "microsoft"
    assert balancer.instances("/connect/device/") == {"a", "b"}


@pytest.mark.parametrize("settings", ["budget"], indirect=True)
async def test_the_check_budget_is_the_fleets_not_each_instances(
    browser: httpx.AsyncClient, balancer: Balancer, tenant: TenantHandle, dovecot: Dovecot
) -> None:
    """Burst 2: each instance alone would allow two more; together they allow two."""
    await sign_in(browser, tenant.api_key)
    method = await browser.post("/connect/method", data={"email": "budget@example.test"})
    draft = DRAFT.search(method.text)
    assert draft is not None
    with balancer.via("a"):
        first = await browser.post(
            "/connect/manual/save",
            data={
                "draft": html.unescape(draft.group(1)),
                "password": "pw",
                "imap_host": "127.0.0.1",
                "imap_port": str(dovecot.imaps_port),
                "imap_security": "ssl",
            },
        )
    assert first.status_code == 200, first.text[:500]
    _run, values = run_of(first.text)
    with balancer.via("b"):
        second = await browser.post("/connect/test", data=values)
    assert second.status_code == 200, second.text[:500]
    for instance in ("a", "b"):
        with balancer.via(instance):
            third = await browser.post("/connect/test", data=values)
        assert third.status_code == 429 and "rate_limited" in third.text, third.text[:500]
