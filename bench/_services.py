"""The service graph and the password mailboxes of the ingestion benchmarks (``ingest_backlog.py``,
``ingest_latency.py``, ``watchers.py``, ``host_apps.py``), built one way so that their figures compare."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from mailport.bootstrap import Services, build
from mailport.config import Settings
from mailport.crypto import Secret, generate_key
from mailport.delivery.process import DeliveryProcess
from mailport.mailboxes.models import AuthMethod, Mailbox, NewMailbox, ProcessingSettings, ServerSettings


async def bench_services(
    database_url: str, data_dir: Path, *, secret_key: str | None = None, **settings: Any
) -> Services:
    """mailport's services on a fresh key (or ``secret_key``, to share it with another process)
    and a migrated database, logging warnings only."""
    built = Settings(
        _env_file=None,
        database_url=database_url,
        data_dir=data_dir,
        secret_keys=SecretStr(secret_key or generate_key()),
        log_level="WARNING",
        **settings,
    )
    return await build(built, migrate=True)


async def start_delivery_process(services: Services) -> DeliveryProcess:
    """Webhook delivery in a child, as ``mailport serve`` runs it with
    ``MAILPORT_DELIVERY_PROCESS=true``, once the child's dispatcher runs. The child takes this
    process's environment, as it takes serve's: ``services``' settings go there."""
    settings = services.settings
    assert settings.secret_keys is not None
    for name in [n for n in os.environ if n.startswith("MAILPORT_")]:
        del os.environ[name]
    os.environ.update(
        {
            "MAILPORT_DATABASE_URL": settings.database_url,
            "MAILPORT_SECRET_KEYS": settings.secret_keys.get_secret_value(),
            "MAILPORT_DATA_DIR": str(settings.data_dir),
            "MAILPORT_ALLOW_PRIVATE_HOSTS": "true" if settings.allow_private_hosts else "false",
            "MAILPORT_LOG_LEVEL": "WARNING",
        }
    )
    child = DeliveryProcess(services.events)
    child.start()
    deadline = time.monotonic() + 60
    while not child.ready:
        if time.monotonic() > deadline or child.restarts:
            await child.stop()
            raise SystemExit("the delivery process did not become ready")
        await asyncio.sleep(0.05)
    return child


async def password_mailbox(
    services: Services,
    tenant_id: str,
    user: str,
    password: str,
    server: ServerSettings,
    *,
    pop3: bool = False,
) -> Mailbox:
    """A password mailbox on ``server`` (IMAP; POP3 when ``pop3``), checked on the same
    one-minute schedule in every benchmark."""
    return await services.mailboxes.create(
        tenant_id,
        NewMailbox(
            email=user,
            auth_method=AuthMethod.PASSWORD,
            imap=None if pop3 else server,
            connector="pop3" if pop3 else "imap",
            pop3=server if pop3 else None,
            password=Secret(password),
            settings=ProcessingSettings(check_interval=60),
        ),
    )
