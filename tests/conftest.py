"""Session fixtures: the real mail test bed and the databases.

* ``idp``      local OAuth2 authorization server playing Google and Microsoft (thread)
* ``dovecot``  Dovecot 2.3 with IMAP and POP3 (STARTTLS/STLS + implicit TLS), IDLE, LMTP, XOAUTH2 (subprocess)
* ``dovecot_dotted`` a second Dovecot whose personal namespace is ``INBOX.`` with separator ``.``
* ``smtp``     aiosmtpd submission server delivering into Dovecot over LMTP (thread)
* ``postfix``  Postfix as a submission server, SASL through Dovecot, delivering into it over LMTP
  (subprocess, root only; ``tests/fixtures/postfix.py``)
* ``postgres_url`` a fresh PostgreSQL database for the run, dropped afterwards
* ``database_url`` parametrized over SQLite and PostgreSQL for storage tests

Everything binds free loopback ports and is torn down at the end. In a parallel run (pytest-xdist,
see ``tests/fixtures/parallel.py``) each worker has its own of each, named with its worker id.
A missing server makes the run fail, never skip (``make test`` installs Dovecot; PostgreSQL runs
on the machine).
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import shutil
import sqlite3
import ssl
import tempfile
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest

from tests.mailstack.dovecot import Dovecot, free_port
from tests.mailstack.idp import MockIdP
from tests.mailstack.smtp import SubmissionHandler, SubmissionServer, introspection_validator

pytest_plugins = [
    "tests.connectors.fake",
    "tests.fixtures.api",
    "tests.fixtures.big_mailbox",
    "tests.fixtures.dns",
    "tests.fixtures.gmail",
    "tests.fixtures.graph",
    "tests.fixtures.http",
    "tests.fixtures.imap",
    "tests.fixtures.parallel",
    "tests.fixtures.postfix",
    "tests.fixtures.tls",
    "tests.fixtures.webhook_receiver",
]

POSTGRES_ADMIN_URL = os.environ.get(
    "MAILPORT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def pytest_configure(config: pytest.Config) -> None:
    """Full collections of a test process's heap are rarer. A worker of a CI run holds 0.5-1.4
    million objects (measured), so each full collection stopped its event loop for 1-5 s on the
    loaded machine, in the middle of a test's timed bounds. Garbage in cycles now waits five
    times longer for one; tests that count on a collection call ``gc.collect()`` themselves."""
    young, middle, old = gc.get_threshold()
    gc.set_threshold(young, middle, old * 5)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark tests by folder: tests/unit -> unit, tests/integration -> integration, tests/e2e -> e2e."""
    for item in items:
        parts = Path(str(item.fspath)).parts
        for kind in ("unit", "integration", "e2e"):
            if kind in parts:
                item.add_marker(getattr(pytest.mark, kind))


@pytest.fixture(autouse=True)
def no_default_datetime_adapter() -> Iterator[None]:
    """No datetime reaches ``sqlite3``'s default adapter in this process: it is deprecated since
    Python 3.12, and it stores other text than SQLAlchemy's (the fast paths' timestamps go as
    text, :func:`mailport.store.many_rows.stored_form`)."""
    key = (datetime, sqlite3.PrepareProtocol)
    default = sqlite3.adapters.get(key)
    if default is None:  # a Python without it: nothing can reach it
        yield
        return
    used: list[str] = []

    def noted(value: datetime) -> object:
        used.append(value.isoformat())
        return default(value)

    sqlite3.adapters[key] = noted
    try:
        yield
    finally:
        sqlite3.adapters[key] = default
    assert not used, f"{len(used)} datetimes went to sqlite3's default adapter, e.g. {used[0]}"


def require_binary(name: str, install_hint: str) -> None:
    """A server the suite needs is missing: fail (never skip), saying how to install it."""
    if shutil.which(name) is None:
        pytest.fail(f"{name} is not installed: {install_hint} (`make test` installs it)", pytrace=False)


# --------------------------------------------------------------------------- mail bed


@pytest.fixture(scope="session")
def idp() -> Iterator[MockIdP]:
    with MockIdP() as server:
        yield server


@pytest.fixture(scope="session")
def mail_root() -> Iterator[Path]:
    # Not under pytest's tmp_path: that tree is 0700 and, when the tests run as root,
    # Dovecot's mail processes run as `nobody` and must be able to traverse into it.
    # Imported here: a plugin imported before pytest_plugins registers it loses assertion rewriting.
    from tests.fixtures.parallel import worker_id

    root = Path(tempfile.mkdtemp(prefix=f"mailport-bed-{worker_id()}-"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def dovecot(idp: MockIdP, mail_root: Path) -> Iterator[Dovecot]:
    require_binary("dovecot", "apt-get install dovecot-core dovecot-imapd dovecot-lmtpd")
    server = Dovecot(
        mail_root / "dovecot",
        oauth2_introspection_url=f"{idp.url}/introspect",
        auth_port=free_port(),  # SMTP AUTH for the Postfix bed
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def dovecot_dotted(mail_root: Path) -> Iterator[Dovecot]:
    """A second Dovecot whose personal namespace is ``INBOX.`` with separator ``.`` (folder
    names must be resolved through NAMESPACE there); password users only."""
    require_binary("dovecot", "apt-get install dovecot-core dovecot-imapd dovecot-lmtpd")
    server = Dovecot.dotted(mail_root / "dovecot-dotted")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def smtp(dovecot: Dovecot, idp: MockIdP) -> Iterator[SubmissionServer]:
    handler = SubmissionHandler(
        users=dovecot.users,
        lmtp_port=dovecot.lmtp_port,
        token_validator=introspection_validator(f"{idp.url}/introspect"),
    )
    server = SubmissionServer(
        handler,
        cert=str(dovecot.root / "ssl/cert.pem"),
        key=str(dovecot.root / "ssl/key.pem"),
        port=free_port(),
        tls_port=free_port(),
    )
    with server:
        yield server


@pytest.fixture
def tls_ctx(dovecot: Dovecot) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=dovecot.ca_file)


@pytest.fixture
def password_user(dovecot: Dovecot) -> tuple[str, str]:
    """A fresh mailbox per test (static passdb: <name>@dyn.example.test / pw-<name>)."""
    return dovecot.dyn_user(f"u{uuid.uuid4().hex[:10]}")


def issue_token(idp: MockIdP, email: str, **extra: object) -> dict[str, object]:
    """Ask the authorization server's test control for a token (expires_in, pad, scope …)."""
    request = urllib.request.Request(
        f"{idp.url}/_test/issue",
        data=json.dumps({"email": email, **extra}).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        result: dict[str, object] = json.load(response)
    return result


@pytest.fixture
def idp_outage(idp: MockIdP) -> Iterator[Callable[[bool], None]]:
    """Switch the authorization server's outage mode (503 on token, introspection, device and
    userinfo: Dovecot then answers ``NO [UNAVAILABLE]``); always switched off afterwards."""

    def switch(on: bool) -> None:
        idp.state.outage = on

    try:
        yield switch
    finally:
        idp.state.outage = False


@pytest.fixture
def oauth_user(idp: MockIdP) -> tuple[str, dict[str, object]]:
    """A fresh OAuth-only mailbox (the static userdb accepts any user) plus a token for it."""
    email = f"o{uuid.uuid4().hex[:10]}@example.test"
    return email, issue_token(idp, email)


# --------------------------------------------------------------------------- databases


async def _admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this run (SQLAlchemy asyncpg URL), dropped at the end;
    one per xdist worker (the name says whose)."""
    from tests.fixtures.parallel import worker_id

    name = f"mailport_test_{worker_id()}_{uuid.uuid4().hex[:12]}"
    try:
        asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    except (OSError, Exception) as exc:
        pytest.fail(f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL}: {exc}", pytrace=False)
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    yield f"{base}/{name}"
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'mailport.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Storage tests run once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'mailport.db'}"
    return str(request.getfixturevalue("postgres_url"))
