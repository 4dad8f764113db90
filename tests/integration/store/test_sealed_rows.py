"""Secrets stay ciphertext until they are used: reading rows decrypts nothing; using one secret
decrypts that one. The stores get a counting cipher injected in place of the key ring."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mailport.bootstrap import Services
from mailport.crypto import Secret
from mailport.delivery.endpoints import EndpointRepository
from mailport.delivery.signing import generate_secret
from mailport.mailboxes.models import AuthMethod, NewMailbox, OAuthGrant, Security, ServerSettings
from mailport.mailboxes.service import MailboxService
from mailport.oauth.repository import OAuthAppRepository
from mailport.store.mailboxes import MailboxRepository
from tests.fixtures.ciphers import CountingCipher

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def _new(index: int, password: str) -> NewMailbox:
    return NewMailbox(
        email=f"box{index}@example.com",
        auth_method=AuthMethod.PASSWORD,
        imap=ServerSettings("imap.example.com", 993, Security.SSL),
        password=Secret(password),
    )


async def test_listing_mailboxes_decrypts_nothing_and_using_one_decrypts_that_one(services: Services):
    cipher = CountingCipher(services.key_ring)
    mailboxes = MailboxService(MailboxRepository(services.database, cipher), guard=services.guard)
    tenant, _ = await services.tenants.create_tenant("acme")
    passwords = [f"pw-{i}-plaintext" for i in range(5)]
    for index, password in enumerate(passwords):
        await mailboxes.create(tenant.id, _new(index, password))
    access, refresh = "ya29.access-plaintext", "1//refresh-plaintext"
    grant = OAuthGrant(
        provider="google",
        access_token=Secret(access),
        refresh_token=Secret(refresh),
        expires_at=NOW + timedelta(hours=1),
    )
    oauth_box = await mailboxes.create(
        tenant.id,
        NewMailbox(
            email="oauth@example.com",
            auth_method=AuthMethod.OAUTH2,
            imap=ServerSettings("imap.gmail.com", 993, Security.SSL),
            oauth=grant,
        ),
    )
    cipher.decrypted = 0

    listed = (await mailboxes.list(tenant.id, limit=50)).items
    everyone = await mailboxes.repository.page_all()
    one = await mailboxes.get(tenant.id, oauth_box.id)
    assert len(listed) == 6 and len(everyone) >= 6 and one.oauth is not None
    assert cipher.decrypted == 0
    shown = repr(listed) + str(listed) + repr(everyone) + repr(one)
    assert not [s for s in (*passwords, access, refresh) if s in shown]
    assert cipher.decrypted == 0

    by_email = {m.email: m for m in listed}
    chosen = by_email["box3@example.com"].password
    assert chosen is not None and chosen.reveal() == passwords[3]
    assert cipher.decrypted == 1
    assert one.oauth.access_token is not None and one.oauth.access_token.reveal() == access
    assert cipher.decrypted == 2


async def test_endpoint_and_oauth_app_secrets_stay_sealed_until_used(services: Services):
    cipher = CountingCipher(services.key_ring)
    tenant, _ = await services.tenants.create_tenant("acme")
    endpoints = EndpointRepository(services.database, cipher)
    secrets = [generate_secret() for _ in range(3)]
    for index, secret in enumerate(secrets):
        await endpoints.create(
            tenant.id,
            url=f"https://hooks.example.com/{index}",
            types=None,
            description=None,
            secret=secret,
            now=NOW,
        )
    apps = OAuthAppRepository(services.database, cipher)
    await apps.put(
        tenant.id,
        "google",
        client_id="cid",
        client_secret=Secret("app-secret-plaintext"),
        directory_tenant=None,
        now=NOW,
    )
    cipher.decrypted = 0

    listed = await endpoints.page(tenant.id, after_id=None, limit=10)
    app = await apps.app(tenant.id, "google")
    assert len(listed) == 3 and app is not None and app.client_secret is not None
    shown = repr(listed) + str(listed) + repr(app)
    assert not [s for s in (*(s.reveal() for s in secrets), "app-secret-plaintext") if s in shown]
    assert cipher.decrypted == 0

    assert listed[1].secret.reveal() in {s.reveal() for s in secrets}
    assert cipher.decrypted == 1
    assert app.client_secret.reveal() == "app-secret-plaintext"
    assert cipher.decrypted == 2
