"""Key rotation: old + new key, rotate, then the new key alone; a wrong key fails at startup."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from mailport.bootstrap import Services, build
from mailport.crypto import KeyRing, Secret, generate_key
from mailport.errors import SecretKeyError
from mailport.mailboxes.models import AuthMethod, NewMailbox, OAuthGrant, Security, ServerSettings
from mailport.store.rotation import count_secret_rows, rotate_secrets
from mailport.store.tables import key_check, mailboxes
from tests.fixtures.api import make_settings


@asynccontextmanager
async def running(
    database_url: str, data_dir: Path, *keys: str, migrate: bool | None = None
) -> AsyncIterator[Services]:
    """mailport's services on ``keys`` (the first encrypts), closed on the way out."""
    services = await build(make_settings(database_url, data_dir, *keys), migrate=migrate)
    try:
        yield services
    finally:
        await services.aclose()


def new_mailbox(index: int) -> NewMailbox:
    return NewMailbox(
        email=f"user{index}@example.com",
        auth_method=AuthMethod.PASSWORD,
        imap=ServerSettings("imap.example.com", 993, Security.SSL),
        password=Secret(f"password-{index}"),
    )


async def stored_tokens(services) -> list[str]:
    async with services.database.connect() as conn:
        rows = (
            await conn.execute(select(mailboxes.c.password_enc, mailboxes.c.oauth_refresh_token_enc))
        ).all()
        canary = (await conn.execute(select(key_check.c.token))).scalar_one()
    return [t for row in rows for t in row if t is not None] + [canary]


async def test_rotate_from_old_to_new_key(fresh_database_url: str, tmp_path: Path):
    old, new = generate_key(), generate_key()
    async with running(fresh_database_url, tmp_path, old, migrate=True) as services:
        tenant, _ = await services.tenants.create_tenant("acme")
        for index in range(7):
            created = await services.mailboxes.create(tenant.id, new_mailbox(index))
        grant = OAuthGrant(provider="microsoft", refresh_token=Secret("refresh-secret"))
        await services.mailboxes.repository.update(tenant.id, created.id, now=datetime.now(UTC), oauth=grant)

    # both keys: everything readable, nothing current yet
    async with running(fresh_database_url, tmp_path, new, old) as services:
        assert await count_secret_rows(services.database) == 8  # 7 mailboxes + the key check
        assert not any(services.key_ring.is_current(t) for t in await stored_tokens(services))
        report = await rotate_secrets(services.database, services.key_ring, batch_size=3)
        assert (report.rows_rotated, report.values_rotated) == (8, 9)
        assert all(services.key_ring.is_current(t) for t in await stored_tokens(services))
        again = await rotate_secrets(services.database, services.key_ring, batch_size=3)
        assert again.rows_rotated == 0 and again.rows_seen == 8  # resumable: already-current rows skipped

    # the new key alone reads everything
    async with running(fresh_database_url, tmp_path, new) as services:
        listed = await services.mailboxes.list(tenant.id, limit=50)
        assert sorted(m.password.reveal() for m in listed.items if m.password) == sorted(
            f"password-{i}" for i in range(7)
        )
        last = await services.mailboxes.get(tenant.id, created.id)
        assert last.oauth is not None and last.oauth.refresh_token == Secret("refresh-secret")
        assert last.token_version == 1

    # the old key alone, or an unrelated key: a clear startup error, not unreadable data later
    for keys in ([old], [generate_key()]):
        with pytest.raises(SecretKeyError) as caught:
            await build(make_settings(fresh_database_url, tmp_path, *keys))
        assert caught.value.code == "secret_key_invalid"
        assert "cannot decrypt the secrets stored" in caught.value.message
        assert keys[0] not in caught.value.message


async def test_interrupted_rotation_resumes(fresh_database_url: str, tmp_path: Path):
    old, new = generate_key(), generate_key()
    async with running(fresh_database_url, tmp_path, old, migrate=True) as services:
        tenant, _ = await services.tenants.create_tenant("acme")
        for index in range(5):
            await services.mailboxes.create(tenant.id, new_mailbox(index))
    async with running(fresh_database_url, tmp_path, new, old) as services:

        class Interrupted(Exception):
            pass

        def stop_after_first_batch(_n: int) -> None:
            raise Interrupted

        with pytest.raises(Interrupted):
            await rotate_secrets(
                services.database, services.key_ring, batch_size=2, progress=stop_after_first_batch
            )
        tokens = await stored_tokens(services)
        assert sum(services.key_ring.is_current(t) for t in tokens) == 2  # the first batch committed
        resumed = await rotate_secrets(services.database, services.key_ring, batch_size=2)
        assert resumed.rows_rotated == 4 and resumed.rows_seen == 6
        ring = KeyRing.from_keys([new], source="test")
        assert all(ring.is_current(t) for t in await stored_tokens(services))
