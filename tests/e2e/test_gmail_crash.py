"""`mailport serve` with a ``gmail_api`` mailbox SIGKILLed in the middle of a backlog, then
restarted: every message is in the event log exactly once (idempotency keys) and reaches the
webhook receiver, a duplicate only ever with the same ``webhook-id``; none lost. The Gmail API
is the fake (``tests/fakes/gmail.py``); everything of ours runs for real."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from mailport.bootstrap import build
from mailport.config import Settings
from mailport.crypto import generate_key
from mailport.mailboxes.models import ProcessingSettings
from tests.e2e.test_ingest_crash import _delivered_keys, _received
from tests.e2e.test_serve import start_serve, stop, wait_healthy
from tests.fakes.gmail import GmailFake, make_message
from tests.fixtures.gmail import connect_gmail_mailbox, gmail_email, gmail_provider_overrides
from tests.fixtures.webhook_receiver import MakeReceiver
from tests.mailstack.idp import MockIdP

ADMIN = "admin-key-for-gmail-crash-0123456789"
TOTAL = 300


async def _add_mailbox(settings: Settings, tenant_id: str, idp: MockIdP, fake: GmailFake, email: str) -> str:
    """The mailbox, written by a service graph of the test on serve's database (serve's
    orchestrator notices it within half a second)."""
    services = await build(settings)
    try:
        mailbox, _account = await connect_gmail_mailbox(
            services,
            idp,
            fake,
            email=email,
            tenant_id=tenant_id,
            provider_id="google",
            settings=ProcessingSettings(check_interval=1),
        )
        return mailbox.id
    finally:
        await services.aclose()


@pytest.mark.slow
def test_sigkill_mid_gmail_backlog_then_restart_delivers_every_message_once(
    tmp_path: Path, idp: MockIdP, gmail_fake: GmailFake, make_receiver: MakeReceiver
) -> None:
    receiver = make_receiver(delay_seconds=0.005)  # slow enough to be killed mid-way
    providers = tmp_path / "providers.json"
    providers.write_text(json.dumps(gmail_provider_overrides(idp, gmail_fake)))
    key = generate_key()
    env = {
        "MAILPORT_ADMIN_KEY": ADMIN,
        "MAILPORT_ALLOW_PRIVATE_HOSTS": "true",
        "MAILPORT_LOG_LEVEL": "WARNING",
        "MAILPORT_SECRET_KEYS": key,
        "MAILPORT_OAUTH_PROVIDERS_FILE": str(providers),
        "MAILPORT_GOOGLE_CLIENT_ID": "test-client",
        "MAILPORT_GOOGLE_CLIENT_SECRET": "test-secret",
    }
    db = tmp_path / "var" / "mailport.db"
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path / "var",
        secret_keys=SecretStr(key),
        oauth_providers_file=providers,
        google_client_id="test-client",
        google_client_secret=SecretStr("test-secret"),
        allow_private_hosts=True,
    )
    email = gmail_email()
    account = gmail_fake.account(email)
    for i in range(TOTAL):  # the backlog is waiting when the mailbox is added
        account.add_message(make_message(subject=f"backlog {i}"), internal_date=datetime.now(UTC))

    def delivered() -> list[tuple[str, bytes]]:
        return [(r.headers["webhook-id"], r.body) for r in receiver.succeeded()]

    proc, url, log_path = start_serve(tmp_path, **env)
    killed_at = -1
    try:
        wait_healthy(proc, url, log_path)
        admin = {"Authorization": f"Bearer {ADMIN}"}
        tenant = httpx.post(f"{url}/v1/tenants", json={"name": "gmail-crash"}, headers=admin)
        assert tenant.status_code == 201, tenant.text
        tenant_key = {"Authorization": f"Bearer {tenant.json()['api_key']}"}
        hook = httpx.post(f"{url}/v1/webhooks", json={"url": receiver.url}, headers=tenant_key)
        assert hook.status_code == 201, hook.text
        asyncio.run(_add_mailbox(settings, tenant.json()["id"], idp, gmail_fake, email))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            count = len(delivered())
            if count > 0:
                killed_at = count
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
                break
            time.sleep(0.002)
        assert killed_at > 0, log_path.read_text()
    finally:
        if proc.poll() is None:
            stop(proc)
    proc, url, log_path = start_serve(tmp_path, **env)
    try:
        wait_healthy(proc, url, log_path)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (
            len(_received(db)) < TOTAL or len(_delivered_keys(delivered())) < TOTAL
        ):
            time.sleep(0.1)
        time.sleep(1.0)  # anything extra (a duplicate) would show up now
        rows = _received(db)
    finally:
        stop(proc)
    keys = [k for k, _ in rows]
    assert len(keys) == TOTAL, (killed_at, len(keys), log_path.read_text()[-2000:])
    assert len(set(keys)) == TOTAL
    subjects = sorted(json.loads(p)["subject"] for _, p in rows)
    assert subjects == sorted(f"backlog {i}" for i in range(TOTAL))
    assert all(json.loads(p)["connector"] == "gmail_api" for _, p in rows)
    assert killed_at < TOTAL, f"the kill came after the whole backlog ({killed_at})"
    by_key = _delivered_keys(delivered())
    assert set(by_key) == set(keys)
    assert all(len(ids) == 1 for ids in by_key.values()), [k for k, v in by_key.items() if len(v) > 1]
