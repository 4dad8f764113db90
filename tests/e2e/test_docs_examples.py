"""Every shell example of README.md and docs/ runs, as written, against a live ``mailport serve``.

One ``mailport serve`` serves the whole module: SQLite, the test bed's Dovecot for mailboxes,
and a local DNS server that resolves the example hosts to the bed; ``MAILPORT_ALLOWED_HOSTS``
lets those names through while the SSRF guard refuses everything else, as in production. The
``mailport`` CLI of the examples works on the same database. Each example runs in
``bash -euo pipefail`` with the documented variables set; ``curl`` fails on an HTTP error
(``--fail-with-body``), so an example that answers 4xx fails here. The conventions (markers,
setups, shown output) are in :mod:`tests.fixtures.docs_examples`.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest

from mailport import leases
from mailport.clock import utc_now
from mailport.crypto import generate_key
from mailport.fleet import registry
from mailport.store import open_database
from tests.fixtures.dns import LocalDNSServer
from tests.fixtures.docs_examples import Example, examples, missing_output
from tests.fixtures.process import clean_environment, start_mailport, stop, wait_until_healthy
from tests.mailstack.dovecot import Dovecot, free_port
from tests.mailstack.smtp import SubmissionServer

EXAMPLES = [example for example in examples() if example.skip is None]  # tests/unit/test_docs.py
# checks that every excluded one says why
# Host names the examples use resolve to the test bed and are allowed by name; everything else
# meets the SSRF guard as in production (an example may show 127.0.0.1 being refused).
EXAMPLE_HOSTS = (
    "example.com",
    "imap.example.com",
    "smtp.example.com",
    "app.example.com",
    "mail.example.com",
    "company.com",
)
BED_HOST = "bed.docs-examples.test"  # the test bed's Dovecot, for the mailbox setup
CURL = "/usr/bin/curl"
PUSH_TOPIC = "projects/acme-mail/topics/gmail-push"  # the push-channel setup's (docs/api-connectors.md)
# Seconds an example may take: at least 240, and 45 per CLI command. Each command is a Python
# process that imports the whole service (~2.5 s alone on a slow 2-core machine, several times
# that beside a full run's other workers): an example of ten commands once took over 120 s, and
# one of six mailbox commands did not finish within 120 s in a CI run whose pytest took 27 min.
EXAMPLE_TIMEOUT = 240
COMMAND_TIMEOUT = 45
# The first test's setup runs every example (``runs``: each a few CLI processes, four examples at a
# time): ~150 s alone on that machine, so beside other workers longer than the 120 s of one test.
pytestmark = pytest.mark.timeout(900)


@dataclass
class DocsServer:
    url: str
    env: dict[str, str]
    dovecot: Dovecot
    log: Path
    smtp: SubmissionServer

    def api(self, key: str | None = None) -> httpx.Client:
        token = key or self.env["MAILPORT_KEY"]
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=15)


@pytest.fixture(scope="module")
def docs_server(
    dovecot: Dovecot, smtp: SubmissionServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DocsServer]:
    root = tmp_path_factory.mktemp("docs-examples")
    bin_dir = root / "bin"
    bin_dir.mkdir()
    # `curl -s` exits 0 on a 404: the examples' curl fails on any HTTP error instead (body kept).
    (bin_dir / "curl").write_text(f'#!/bin/sh\nexec {CURL} --fail-with-body --max-time 20 "$@"\n')
    (bin_dir / "curl").chmod(0o755)
    (bin_dir / "mailport").symlink_to(Path(sys.executable).parent / "mailport")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    admin_key = "mp_admin_" + uuid.uuid4().hex
    with LocalDNSServer() as dns:
        for host in (*EXAMPLE_HOSTS, BED_HOST):
            dns.add(f"{host}.", "A", "127.0.0.1")
        env = clean_environment()
        env.update(
            {
                "HOME": str(root),
                "PATH": f"{bin_dir}:{env.get('PATH', '/usr/bin:/bin')}",
                "MAILPORT_PORT": str(port),
                "MAILPORT_DATA_DIR": str(root / "var"),
                "MAILPORT_DATABASE_URL": f"sqlite+aiosqlite:///{root / 'mailport.db'}",
                "MAILPORT_SECRET_KEYS": generate_key(),
                "MAILPORT_PUBLIC_URL": url,
                "MAILPORT_ADMIN_KEY": admin_key,
                "MAILPORT_ALLOWED_HOSTS": ",".join((*EXAMPLE_HOSTS, BED_HOST)),
                "MAILPORT_DNS_NAMESERVERS": dns.nameserver,
                "MAILPORT_DETECT_PROBE": "false",
                "MAILPORT_DETECT_TIMEOUT": "3",
                "MAILPORT_CHECK_TIMEOUT": "5",
                "MAILPORT_CHECK_BURST": "1000",
                "SSL_CERT_FILE": str(dovecot.ca_file),
            }
        )
        log = root / "serve.log"
        proc = start_mailport("serve", cwd=root, env=env, log_path=log)
        try:
            wait_until_healthy(proc, url, log)
            with httpx.Client(base_url=url, timeout=15) as client:
                made = client.post(
                    "/v1/tenants",
                    json={"name": "docs-examples"},
                    headers={"Authorization": f"Bearer {admin_key}"},
                )
            assert made.status_code == 201, made.text
            env.update(
                {
                    "MAILPORT_URL": url,
                    "MAILPORT_KEY": made.json()["api_key"],
                    "TENANT_ID": made.json()["id"],
                    "PASSWORD": "an example password",
                }
            )
            yield DocsServer(url, env, dovecot, log, smtp)
        finally:
            stop(proc)
            shutil.copy(log, Path(str(tmp_path_factory.getbasetemp())) / "docs-examples-serve.log")


def _mailbox(server: DocsServer, *, sends: bool = False) -> tuple[str, str]:
    """A mailbox of the tenant on the bed's Dovecot: its id and its IMAP user. ``sends``: with
    the bed's submission server as its SMTP server (its certificate pinned: it names 127.0.0.1,
    not the bed's host name)."""
    email, password = server.dovecot.dyn_user(f"d{uuid.uuid4().hex[:10]}")
    body: dict[str, object] = {
        "email": email,
        "auth_method": "password",
        "password": password,
        "imap": {"host": BED_HOST, "port": server.dovecot.imap_port, "security": "none"},
    }
    if sends:
        pem = Path(server.dovecot.ca_file).read_text()
        body["smtp"] = {
            "host": BED_HOST,
            "port": server.smtp.port,
            "security": "starttls",
            "trusted_certificate": pem,
        }
    with server.api() as api:
        made = api.post("/v1/mailboxes", json=body)
    assert made.status_code == 201, made.text
    return str(made.json()["id"]), email


def sample_mail() -> list[tuple[str, bytes]]:
    """The ``messages`` setup's mail, oldest first: (folder, source). docs/mailbox-access.md
    shows these subjects, senders and attachments."""

    def message(subject: str, sender: str, to: str, **headers: str) -> EmailMessage:
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = sender, to, subject
        msg["Date"] = "Mon, 05 Feb 2024 09:30:00 +0000"
        for name, value in headers.items():
            msg[name.replace("_", "-")] = value
        return msg

    welcome = message(
        "Welcome", "Alice <alice@example.com>", "support@example.com", Message_ID="<w1@example.com>"
    )
    welcome.set_content("Hello, can you help me with my booking?")
    reply = message(
        "Re: Welcome", "Support <support@example.com>", "alice@example.com",
        Message_ID="<w2@example.com>", In_Reply_To="<w1@example.com>", References="<w1@example.com>",
    )  # fmt: skip
    reply.set_content("Of course. What is the booking number?")
    greeting = message("Grüße aus Köln", "Jürgen <juergen@example.com>", "support@example.com")
    greeting.set_content("Viele Grüße!")
    invoice = message(
        "Invoice 2024-001",
        "Billing <billing@example.com>",
        "support@example.com",
        Message_ID="<inv-1@example.com>",
    )
    invoice.set_content("Your invoice is attached.")
    invoice.add_alternative(
        '<p>Your invoice is attached.<script>track()</script></p><img src="cid:logo@example.com">'
        '<img src="https://tracker.example.com/open.gif">',
        subtype="html",
    )
    invoice.get_payload()[1].add_related(b"\x89PNG\r\n\x1a\n", "image", "png", cid="<logo@example.com>")
    invoice.add_attachment(b"%PDF-1.4\n%docs example\n", maintype="application", subtype="pdf",
                           filename="invoice.pdf")  # fmt: skip
    return [
        ("INBOX", welcome.as_bytes()),
        ("Sent", reply.as_bytes()),
        ("INBOX", greeting.as_bytes()),
        ("INBOX", invoice.as_bytes()),
    ]


def _wait_connected(server: DocsServer, mailbox_id: str, timeout: float = 30.0) -> None:
    """Until the mailbox's watcher has its folder open (its ``mailbox.connected`` event).

    Dovecot's maildir gives a message saved while a session is opening the folder a UID after
    the ones saved just after it (seen in about one try in twenty): the docs show the mail in
    delivery order, so it arrives once the watcher's session is open (UID order is the only
    order IMAP has, and the one mailport ingests in)."""
    deadline = time.monotonic() + timeout
    with server.api() as api:
        while time.monotonic() < deadline:
            page = api.get("/v1/events", params={"mailbox_id": mailbox_id, "limit": 100})
            assert page.status_code == 200, page.text
            if any(e["type"] == "mailbox.connected" for e in page.json()["items"]):
                return
            time.sleep(0.1)
    raise AssertionError(f"the watcher of {mailbox_id} did not connect within {timeout} s")


def _setup(server: DocsServer, name: str) -> dict[str, str]:
    """The variables a ``setup=`` marker promises."""
    if name == "mailbox":
        return {"MAILBOX_ID": _mailbox(server)[0]}
    if name == "messages":
        mailbox_id, user = _mailbox(server)
        _wait_connected(server, mailbox_id)
        for folder, raw in sample_mail():
            server.dovecot.deliver(user, raw, folder)
        with server.api() as api:
            listed = api.get(f"/v1/mailboxes/{mailbox_id}/messages")
        assert listed.status_code == 200, listed.text
        by_subject = {item["subject"]: item for item in listed.json()["data"]}
        return {
            "MAILBOX_ID": mailbox_id,
            "REF": by_subject["Invoice 2024-001"]["ref"],
            "THREAD_KEY": by_subject["Welcome"]["thread_key"],
        }
    if name == "sending":
        mailbox_id, user = _mailbox(server, sends=True)
        server.dovecot.deliver(user, sample_mail()[0][1], "INBOX")  # Alice's "Welcome"
        with server.api() as api:
            listed = api.get(f"/v1/mailboxes/{mailbox_id}/messages")
        assert listed.status_code == 200, listed.text
        return {"MAILBOX_ID": mailbox_id, "MAILBOX_EMAIL": user, "REF": listed.json()["data"][0]["ref"]}
    if name == "push-channel":
        with server.api(server.env["MAILPORT_ADMIN_KEY"]) as admin:
            tenant = admin.post("/v1/tenants", json={"name": f"docs-push-{uuid.uuid4().hex[:8]}"})
        assert tenant.status_code == 201, tenant.text
        key = tenant.json()["api_key"]
        with server.api(key) as api:
            made = api.post("/v1/push-channels/gmail_api", json={"topic": PUSH_TOPIC})
        assert made.status_code == 201, made.text
        return {"MAILPORT_KEY": key, "TENANT_ID": tenant.json()["id"], "CHANNEL_ID": made.json()["id"]}
    if name == "key":
        with server.api(server.env["MAILPORT_ADMIN_KEY"]) as admin:
            made = admin.post(f"/v1/tenants/{server.env['TENANT_ID']}/keys")
        assert made.status_code == 201, made.text
        return {"KEY_ID": made.json()["id"]}
    if name == "worker":
        return {"WORKER_ID": asyncio.run(_register_worker(server.env["MAILPORT_DATABASE_URL"]))}
    raise AssertionError(f"unknown setup {name!r}")


async def _register_worker(database_url: str) -> str:
    """A worker row as a live ``mailport worker`` heartbeats it (docs/fleet.md), written straight
    into the docs server's database: its SQLite file admits no second process with watchers.
    Its weight is 0, so the fleet assigns it no mailbox: with a weight, the docs server would
    leave it a share of the other examples' mailboxes, which nobody would then watch."""
    worker_id = f"docs-node:4242:{uuid.uuid4().hex[:8]}"
    now, ttl = utc_now(), timedelta(hours=1)
    stats = {
        "mailboxes": 2,
        "watchers": 3,
        "connects_per_minute": 4.0,
        "queues": {"connect_waiting": 0, "events_unaccepted": 7, "sends_due": 1},
        "lease_losses": 0,
        "fenced_writes_refused": 0,
        "rss_bytes": 183500800,
    }
    database = open_database(database_url)
    try:
        async with database.transaction() as conn:
            await registry.register(conn, worker_id, roles=["watchers"], weight=0.0, now=now, ttl=ttl)
            await registry.heartbeat(conn, worker_id, now=now, ttl=ttl, stats=stats)
            for _ in range(2):
                mailbox = f"mbx_docs{uuid.uuid4().hex[:12]}"
                assert await leases.acquire(
                    conn, leases.name("watcher", mailbox), worker_id, now=now, until=now + ttl
                )
    finally:
        await database.aclose()
    return worker_id


@dataclass(frozen=True)
class Run:
    returncode: int
    outputs: list[str]  # what each command printed
    stdout: str
    stderr: str


def _run(server: DocsServer, example: Example, workdir: Path) -> Run:
    env = dict(server.env)
    try:
        for name in example.setups:
            env.update(_setup(server, name))
    except (AssertionError, httpx.HTTPError) as exc:  # this example fails, the others still report
        return Run(-1, [], "", f"setup {example.setups} failed: {exc}")
    commands = example.commands()
    separator = f"--docs-example-{uuid.uuid4().hex}--"
    script = "\n".join(f"echo {separator}\n{command.script}" for command in commands)
    limit = max(EXAMPLE_TIMEOUT, COMMAND_TIMEOUT * len(commands))
    try:
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=limit,
        )
    except subprocess.TimeoutExpired as exc:  # this example fails, the others still report
        printed = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else exc.stdout or ""
        return Run(-1, [], printed, f"did not finish within {limit} s")
    return Run(done.returncode, done.stdout.split(separator + "\n")[1:], done.stdout, done.stderr)


@pytest.fixture(scope="module")
def runs(docs_server: DocsServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """Every example, run once, side by side (each CLI command starts a Python process, ~1-3 s):
    an example gets what it needs from its setups, never from an example before it."""

    def run(example: Example) -> tuple[str, Run]:
        return example.id, _run(docs_server, example, tmp_path_factory.mktemp("docs-run"))

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(pool.map(run, [example for example in EXAMPLES if not example.problems]))


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.id for e in EXAMPLES])
def test_docs_example(example: Example, runs: dict[str, Run], docs_server: DocsServer) -> None:
    assert not example.problems, example.problems
    run = runs[example.id]
    if example.fails is not None:
        assert run.returncode != 0 and example.fails in run.stdout + run.stderr, (
            f"{example.id} should fail with {example.fails} (exit {run.returncode}):\n"
            f"--- stdout\n{run.stdout}\n--- stderr\n{run.stderr}"
        )
        return
    assert run.returncode == 0, (
        f"{example.id} failed (exit {run.returncode}):\n{example.body}\n"
        f"--- stdout\n{run.stdout}\n--- stderr\n{run.stderr}"
    )
    commands = example.commands()
    assert len(run.outputs) == len(commands), run.stdout
    for command, printed in zip(commands, run.outputs, strict=True):
        missing = missing_output(command.expected, printed, docs_server.url)
        assert not missing, (
            f"{example.id}: `{command.script}` did not print what the docs show: {missing}\n"
            f"--- it printed\n{printed}"
        )
