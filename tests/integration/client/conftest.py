"""A live ``mailport serve`` for the client's tests: a subprocess on a free port, SQLite, an admin
key, private hosts allowed (the test bed's Dovecot and the webhook receiver are on 127.0.0.1)."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mailport.client import Client, models
from mailport.crypto import generate_key
from tests.fixtures.process import clean_environment, start_mailport, stop, wait_until_healthy
from tests.mailstack.dovecot import Dovecot, free_port


@dataclass
class LiveServe:
    url: str
    admin_key: str
    log: Path

    def tenant(self) -> tuple[str, str]:
        """A new tenant: its id and API key, made with the admin key through the client."""
        with Client(self.url, self.admin_key) as admin:
            made = admin.tenants.create(models.TenantCreate(name=f"t-{uuid.uuid4().hex[:10]}"))
        return made.id, made.api_key


@pytest.fixture(scope="session")  # one serve per worker: its tenants keep the tests apart
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServe]:
    root = tmp_path_factory.mktemp("client-serve")
    port = free_port()
    admin_key = "mp_admin_" + uuid.uuid4().hex
    env = clean_environment()
    env.update(
        {
            "MAILPORT_PORT": str(port),
            "MAILPORT_DATA_DIR": str(root / "var"),
            "MAILPORT_DATABASE_URL": f"sqlite+aiosqlite:///{root / 'mailport.db'}",
            "MAILPORT_SECRET_KEYS": generate_key(),
            "MAILPORT_ADMIN_KEY": admin_key,
            "MAILPORT_ALLOW_PRIVATE_HOSTS": "true",
            "MAILPORT_LOG_LEVEL": "WARNING",
        }
    )
    log = root / "serve.log"
    url = f"http://127.0.0.1:{port}"
    proc = start_mailport("serve", cwd=root, env=env, log_path=log)
    try:
        wait_until_healthy(proc, url, log)
        yield LiveServe(url, admin_key, log)
    finally:
        stop(proc)
        shutil.copy(log, Path(str(tmp_path_factory.getbasetemp())) / "client-serve.log")


def imap_mailbox(dovecot: Dovecot, email: str, password: str) -> models.MailboxCreate:
    """The body that adds ``email`` on the bed's Dovecot (plaintext loopback port)."""
    return models.MailboxCreate(
        email=email,
        auth_method="password",
        password=password,
        imap=models.ServerIn(host="127.0.0.1", port=dovecot.imap_port, security="none"),
    )
