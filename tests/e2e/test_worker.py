"""`mailport worker` as a process (SQLite and PostgreSQL): it watches the stored mailboxes,
delivers new mail to the tenant's webhook, and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path

from mailport.bootstrap import build
from mailport.crypto import Secret
from mailport.delivery.schemas import WebhookCreate
from mailport.mailboxes.models import AuthMethod, NewMailbox, ProcessingSettings, Security, ServerSettings
from tests.fixtures.api import make_settings
from tests.fixtures.process import clean_environment, start_mailport
from tests.fixtures.webhook_receiver import MakeReceiver
from tests.integration.sync.conftest import make_message
from tests.mailstack.dovecot import Dovecot


async def test_worker_delivers_new_mail_and_stops_on_sigterm(
    tmp_path: Path,
    fresh_database_url: str,
    secret_key: str,
    dovecot: Dovecot,
    password_user: tuple[str, str],
    make_receiver: MakeReceiver,
) -> None:
    user, password = password_user
    receiver = make_receiver()
    settings = make_settings(fresh_database_url, tmp_path / "var", secret_key).model_copy(
        update={"allow_private_hosts": True}
    )
    services = await build(settings, migrate=True)
    try:
        tenant, _key = await services.tenants.create_tenant("worker")
        await services.webhooks.create(tenant.id, WebhookCreate(url=receiver.url))
        mailbox = await services.mailboxes.create(
            tenant.id,
            NewMailbox(
                email=user,
                auth_method=AuthMethod.PASSWORD,
                imap=ServerSettings("127.0.0.1", dovecot.imap_port, Security.NONE),
                password=Secret(password),
                settings=ProcessingSettings(check_interval=60),
            ),
        )
    finally:
        await services.aclose()

    environment = clean_environment()
    environment.update(
        MAILPORT_DATABASE_URL=fresh_database_url,
        MAILPORT_DATA_DIR=str(tmp_path / "var"),
        MAILPORT_SECRET_KEYS=secret_key,
        MAILPORT_ALLOW_PRIVATE_HOSTS="true",
        MAILPORT_LOG_LEVEL="INFO",
    )
    log_path = tmp_path / "worker.log"
    proc = start_mailport("worker", cwd=tmp_path, env=environment, log_path=log_path)
    try:
        connected = await receiver.wait_for(1, timeout=30)  # mailbox.connected: it is watching
        assert connected[0].json()["type"] == "mailbox.connected", log_path.read_text()
        assert "watching 1 mailboxes" in log_path.read_text()
        await asyncio.to_thread(dovecot.deliver, user, make_message("for the worker"))
        got = await receiver.wait_for(2, timeout=10)
        event = json.loads(got[1].body)
        assert event["type"] == "message.received" and event["mailbox_id"] == mailbox.id
        assert event["data"]["subject"] == "for the worker"
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, 20)
        assert code == 0, log_path.read_text()
        assert time.monotonic() - started < 10
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert "Traceback" not in log_path.read_text()
    assert password not in log_path.read_text()
