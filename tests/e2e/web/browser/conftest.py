"""A live ``mailport serve`` wired to the test bed, and one headless Chromium for the session.

* ``web`` — ``mailport serve`` as a subprocess on SQLite with: the bed's CA trusted
  (``MAILPORT_MAIL_CA_FILE``), private hosts allowed (the bed is on 127.0.0.1), detection's DNS pointed at
  a local DNS server that publishes SRV records for ``dyn.example.test`` (the bed's password
  users), and Google/Microsoft pointed at the local authorization server and the bed's
  IMAP/SMTP (``MAILPORT_OAUTH_PROVIDERS_FILE``).
* ``browser`` — Debian's Chromium (``/usr/bin/chromium``) through Playwright, once per session;
  each test gets a fresh context (``page``) and its own tenant (``tenant``).
* ``shot(page, name)`` saves a screenshot; with ``MAILPORT_TEST_SCREENSHOTS=1`` into ``docs/images/``
  (the README shows them).

The browser and the server are package-scoped, not session-scoped: Playwright's sync API keeps an
event loop running in the main thread while it is open, and every asyncio test that runs after it
(pytest-asyncio's ``asyncio.run``) would fail. Closing it at the end of this package keeps the rest
of the suite free of it; keep asyncio tests out of this package (``tests/e2e/web/api`` has them).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.fakes.gmail import GmailFake
from tests.fakes.graph import GraphFake
from tests.fixtures.dns import LocalDNSServer
from tests.fixtures.gmail import gmail_provider_overrides
from tests.fixtures.graph import GRAPH_SCOPES
from tests.fixtures.parallel import worker_id
from tests.fixtures.process import clean_environment, start_mailport, stop, wait_until_healthy
from tests.mailstack.dovecot import Dovecot, free_port
from tests.mailstack.idp import MockIdP, idp_overrides
from tests.mailstack.smtp import SubmissionServer

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
IMAGES = Path(__file__).resolve().parents[4] / "docs" / "images"
ADMIN_KEY = "mp_admin_" + uuid.uuid4().hex


@dataclass
class WebServer:
    url: str
    data_dir: Path
    log: Path
    dovecot: Dovecot
    smtp: SubmissionServer
    idp: MockIdP

    def create_tenant(self, name: str | None = None) -> tuple[str, str]:
        """(tenant id, API key) made through the admin API."""
        response = httpx.post(
            f"{self.url}/v1/tenants",
            json={"name": name or f"web-{uuid.uuid4().hex[:8]}"},
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            timeout=10,
        )
        assert response.status_code == 201, response.text
        body = response.json()
        return body["id"], body["api_key"]

    def api(self, key: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {key}"}, timeout=15)


def _providers_file(
    path: Path, idp: MockIdP, dovecot: Dovecot, smtp: SubmissionServer, gmail: GmailFake, graph: GraphFake
) -> Path:
    """Google and Microsoft on the local IdP, their IMAP/SMTP on the bed, the Gmail API and
    Microsoft Graph on their fakes."""
    bed = {
        "imap": {"host": "localhost", "port": dovecot.imaps_port, "security": "ssl"},
        "smtp": {"host": "localhost", "port": smtp.tls_port, "security": "ssl"},
    }
    providers = {key: {**fields, **bed} for key, fields in idp_overrides(idp).items()}
    providers["google"]["apis"] = gmail_provider_overrides(idp, gmail)["google"]["apis"]
    providers["microsoft"]["apis"] = {"graph": {"base_url": graph.url, "scopes": list(GRAPH_SCOPES)}}
    path.write_text(json.dumps(providers))
    return path


@pytest.fixture(scope="package")
def web_dns(dovecot: Dovecot, smtp: SubmissionServer) -> Iterator[LocalDNSServer]:
    with LocalDNSServer() as server:
        server.add("localhost.", "A", "127.0.0.1")
        server.add("_imaps._tcp.dyn.example.test.", "SRV", f"0 1 {dovecot.imaps_port} localhost.")
        server.add("_submissions._tcp.dyn.example.test.", "SRV", f"0 1 {smtp.tls_port} localhost.")
        server.add("dyn.example.test.", "MX", "10 localhost.")
        yield server


@pytest.fixture(scope="package")
def web(
    dovecot: Dovecot,
    smtp: SubmissionServer,
    idp: MockIdP,
    web_dns: LocalDNSServer,
    gmail_fake: GmailFake,
    graph_fake: GraphFake,
) -> Iterator[WebServer]:
    root = Path(tempfile.mkdtemp(prefix=f"mailport-web-{worker_id()}-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = clean_environment()
    env.update(
        {
            "MAILPORT_PORT": str(port),
            "MAILPORT_DATA_DIR": str(root / "var"),
            "MAILPORT_PUBLIC_URL": url,
            "MAILPORT_ADMIN_KEY": ADMIN_KEY,
            "MAILPORT_ALLOW_PRIVATE_HOSTS": "true",
            "MAILPORT_DNS_NAMESERVERS": web_dns.nameserver,
            "MAILPORT_DETECT_PROBE": "false",
            "MAILPORT_DETECT_TIMEOUT": "3",
            "MAILPORT_CHECK_TIMEOUT": "10",
            "MAILPORT_OAUTH_PROVIDERS_FILE": str(
                _providers_file(root / "providers.json", idp, dovecot, smtp, gmail_fake, graph_fake)
            ),
            "MAILPORT_GOOGLE_CLIENT_ID": "test-client",
            "MAILPORT_GOOGLE_CLIENT_SECRET": "test-secret",
            "MAILPORT_MICROSOFT_CLIENT_ID": "test-client",
            "MAILPORT_MICROSOFT_CLIENT_SECRET": "test-secret",
            "MAILPORT_MAIL_CA_FILE": str(dovecot.ca_file),
        }
    )
    log = root / "serve.log"
    proc = start_mailport("serve", cwd=root, env=env, log_path=log)
    wait_until_healthy(proc, url, log)
    try:
        yield WebServer(url, root / "var", log, dovecot, smtp, idp)
    finally:
        stop(proc)
        # Kept for post-mortems of a failed run (the data directory is removed).
        shutil.copy(log, Path(tempfile.gettempdir()) / f"mailport-web-serve-{worker_id()}.log")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="package")
def browser():  # type: ignore[no-untyped-def]
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} is missing: apt-get install chromium (`make test` installs it)", pytrace=False
        )
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def page(browser, web: WebServer):  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 1100, "height": 860}, base_url=web.url)
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def web_tenant(web: WebServer) -> tuple[str, str]:
    return web.create_tenant()


Shot = Callable[..., None]


@pytest.fixture
def shot(tmp_path: Path) -> Shot:
    """Screenshots go to docs/images/ with ``MAILPORT_TEST_SCREENSHOTS=1`` (so a normal run does not
    rewrite tracked files), to the test's temporary directory otherwise."""
    folder = IMAGES if os.environ.get("MAILPORT_TEST_SCREENSHOTS") == "1" else tmp_path

    def save(page, name: str, *, full_page: bool = True) -> None:  # type: ignore[no-untyped-def]
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        assert path.stat().st_size > 1000

    return save


def sign_in(page, key: str) -> None:  # type: ignore[no-untyped-def]
    page.goto("/signin")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/")


def start_connect(page, key: str, email: str) -> None:  # type: ignore[no-untyped-def]
    """Sign in with ``key``, open the connect wizard and continue with ``email``."""
    sign_in(page, key)
    page.goto("/connect")
    page.get_by_label("Email address").fill(email)
    page.get_by_role("button", name="Continue").click()
