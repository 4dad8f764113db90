"""Secrets are ciphertext at rest: the SQLite file's bytes and PostgreSQL's column values
never contain a stored password or token, and no object prints one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import make_url, text

from mailport.bootstrap import Services
from mailport.crypto import Secret
from mailport.mailboxes.models import OAuthGrant
from tests.fixtures.api import SecretWatch, TenantHandle
from tests.integration.api.helpers import mailbox_body


async def stored_bytes(services: Services) -> bytes:
    """Every byte the database holds for our tables."""
    url = make_url(services.settings.effective_database_url)
    if url.get_backend_name() == "sqlite":
        await services.database.aclose()  # flush; files stay: -wal and -shm are read too
        path = Path(str(url.database))
        return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
    chunks = []
    async with services.database.connect() as conn:
        for table in ("tenants", "api_keys", "key_check", "mailboxes"):
            rows = await conn.execute(text(f"SELECT row_to_json(t)::text FROM {table} t"))
            chunks += [row[0].encode() for row in rows]
    return b"\n".join(chunks)


async def test_plaintext_secrets_never_reach_the_database(
    services: Services, tenant: TenantHandle, tenant_client: httpx.AsyncClient, secret_watch: SecretWatch
):
    passwords = []
    for _ in range(3):
        body = mailbox_body()
        passwords.append(body["password"])
        secret_watch.add(body["password"])
        assert (await tenant_client.post("/v1/mailboxes", json=body)).status_code == 201
    mailbox_id = (await tenant_client.get("/v1/mailboxes")).json()["items"][0]["id"]
    changed = "changed-" + passwords[0]
    secret_watch.add(changed)
    assert (
        await tenant_client.patch(f"/v1/mailboxes/{mailbox_id}", json={"password": changed})
    ).status_code == 200

    oauth_id = (
        await tenant_client.post("/v1/mailboxes", json=mailbox_body(auth_method="oauth2", password=None))
    ).json()["id"]
    access, refresh = "ya29.access-" + "a" * 40, "1//refresh-" + "r" * 40
    secret_watch.add(access, refresh)
    grant = OAuthGrant(
        provider="google",
        access_token=Secret(access),
        refresh_token=Secret(refresh),
        expires_at=datetime.now(UTC) + timedelta(hours=1),
        scopes=("https://mail.google.com/",),
        connected_email="someone@example.com",
    )
    assert await services.mailboxes.repository.save_oauth_tokens(
        oauth_id, grant, expected_version=0, now=datetime.now(UTC)
    )
    shown = (await tenant_client.get(f"/v1/mailboxes/{oauth_id}")).json()
    assert (
        shown["oauth"]["provider"] == "google" and shown["oauth"]["connected_email"] == "someone@example.com"
    )
    assert shown["oauth"]["scopes"] == ["https://mail.google.com/"] and shown["has_password"] is False

    loaded = await services.mailboxes.repository.get(tenant.id, oauth_id)
    assert loaded.oauth is not None and loaded.oauth.access_token is not None
    assert loaded.oauth.access_token.reveal() == access
    assert access not in repr(loaded) and refresh not in str(loaded)

    data = await stored_bytes(services)
    assert b"someone@example.com" in data  # the scan does see the rows
    leaked = [s for s in (*passwords, changed, access, refresh, tenant.api_key) if s.encode() in data]
    assert not leaked, leaked
