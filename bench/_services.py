"""The service graph and the password mailboxes of the ingestion benchmarks (``ingest_backlog.py``,
``ingest_latency.py``, ``watchers.py``, ``host_apps.py``), built one way so that their figures compare."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import SecretStr

from mailport.bootstrap import Services, build
from mailport.config import Settings
from mailport.crypto import Secret, generate_key
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
