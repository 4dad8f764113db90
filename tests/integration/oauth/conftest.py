"""Fixtures for the OAuth tests: providers pointed at the local authorization server, real
SQLite behind the storage ports, and the flows wired as the service will wire them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from mailport.api import create_app
from mailport.bootstrap import Services
from mailport.config import Settings
from mailport.connectors import registry as connector_registry
from mailport.connectors.base import Feature
from mailport.crypto import KeyRing, generate_key
from mailport.oauth import (
    AuthorizationCodeFlow,
    DeviceFlow,
    InstanceApps,
    OAuthClient,
    ProviderRegistry,
    StateCodec,
)
from tests.connectors.fake import FakeServer
from tests.fixtures.api import SecretWatch, TenantHandle, api_client, create_tenant
from tests.fixtures.schema import build_migrated
from tests.integration.oauth.sqlite_store import SQLiteStateStore, SQLiteTokenStore, open_engine
from tests.mailstack.dovecot import Dovecot
from tests.mailstack.idp import MockIdP, idp_overrides
from tests.mailstack.smtp import SubmissionServer

PUBLIC_URL = "https://mailport.example.test"


def plain_provider(idp: MockIdP, **fields: object) -> dict[str, object]:
    """A provider without OpenID Connect (the IdP's /plain profile): no id_token, no userinfo."""
    base = f"{idp.url}/plain"
    return {
        "name": "Plain Mail",
        "authorization_endpoint": f"{base}/authorize",
        "token_endpoint": f"{base}/token",
        "device_authorization_endpoint": f"{base}/device/code",
        "revocation_endpoint": f"{base}/revoke",
        "scopes": ["mail"],
        "client_id": "test-client",
        "client_secret": "test-secret",
        "imap": {"host": "imap.plain.example.test", "port": 993},
        **fields,
    }


@pytest.fixture
def providers_file(idp: MockIdP, tmp_path: Path) -> Path:
    path = tmp_path / "oauth-providers.json"
    path.write_text(json.dumps(idp_overrides(idp)))
    return path


@pytest.fixture
def bed_providers_file(idp: MockIdP, dovecot: Dovecot, smtp: SubmissionServer, tmp_path: Path) -> Path:
    """Also point the mail servers at the Dovecot/SMTP bed."""
    overrides = idp_overrides(idp)
    overrides["plain"] = plain_provider(idp)
    for key in ("google", "microsoft", "plain"):
        overrides[key]["imap"] = {"host": "127.0.0.1", "port": dovecot.imaps_port, "security": "ssl"}
        overrides[key]["smtp"] = {"host": "127.0.0.1", "port": smtp.tls_port, "security": "ssl"}
    path = tmp_path / "oauth-providers-bed.json"
    path.write_text(json.dumps(overrides))
    return path


@pytest.fixture
def settings(providers_file: Path, tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path,
        public_url=PUBLIC_URL,
        oauth_providers_file=providers_file,
        google_client_id="test-client",
        google_client_secret="test-secret",
        microsoft_client_id="test-client",
        microsoft_client_secret="test-secret",
        microsoft_tenant="organizations",
    )


@pytest.fixture
def registry(settings: Settings) -> ProviderRegistry:
    return ProviderRegistry.from_settings(settings)


@pytest.fixture
def apps(registry: ProviderRegistry, settings: Settings) -> InstanceApps:
    return InstanceApps(registry, settings)


@pytest.fixture
def key_ring() -> KeyRing:
    return KeyRing.from_keys([generate_key()], source="test")


@pytest.fixture
async def oauth_client() -> AsyncIterator[OAuthClient]:
    async with httpx.AsyncClient(timeout=10) as http:
        yield OAuthClient(http)


@pytest.fixture
async def sqlite_engine(sqlite_url: str):  # type: ignore[no-untyped-def]
    engine = await open_engine(sqlite_url)
    yield engine
    await engine.dispose()


@pytest.fixture
def token_store(sqlite_engine, key_ring: KeyRing) -> SQLiteTokenStore:  # type: ignore[no-untyped-def]
    return SQLiteTokenStore(sqlite_engine, key_ring)


@pytest.fixture
def state_store(sqlite_engine) -> SQLiteStateStore:  # type: ignore[no-untyped-def]
    return SQLiteStateStore(sqlite_engine)


@pytest.fixture
def code_flow(
    registry: ProviderRegistry,
    oauth_client: OAuthClient,
    apps: InstanceApps,
    key_ring: KeyRing,
    state_store: SQLiteStateStore,
) -> AuthorizationCodeFlow:
    return AuthorizationCodeFlow(
        registry=registry,
        client=oauth_client,
        apps=apps,
        states=StateCodec(key_ring),
        state_store=state_store,
        public_url=PUBLIC_URL,
    )


@pytest.fixture
def device_flow(registry: ProviderRegistry, oauth_client: OAuthClient, apps: InstanceApps) -> DeviceFlow:
    return DeviceFlow(registry=registry, client=oauth_client, apps=apps)


# --------------------------------------------------------------------------- the service over HTTP


@pytest.fixture
def api_settings(
    fresh_database_url: str, tmp_path: Path, secret_key: str, bed_providers_file: Path, dovecot: Dovecot
) -> Settings:
    """The store fixtures' settings (SQLite and PostgreSQL) plus OAuth pointed at the test bed."""
    from tests.fixtures.api import make_settings

    settings = make_settings(fresh_database_url, tmp_path / "var", secret_key)
    settings.public_url = PUBLIC_URL
    settings.oauth_providers_file = bed_providers_file
    settings.google_client_id = "test-client"
    settings.google_client_secret = SecretStr("test-secret")
    settings.microsoft_client_id = "test-client"
    settings.microsoft_client_secret = SecretStr("test-secret")
    # The IdP, Dovecot and SMTP of the bed listen on 127.0.0.1: the operator allows exactly that.
    settings.allowed_hosts = ["127.0.0.1"]
    settings.mail_ca_file = Path(dovecot.ca_file)  # the bed's mail servers' CA
    return settings


@pytest.fixture
async def api_services(api_settings: Settings) -> AsyncIterator[Services]:
    built = await build_migrated(api_settings)
    try:
        yield built
    finally:
        await built.aclose()


@pytest.fixture
def api_app(api_services: Services) -> FastAPI:
    return create_app(services=api_services)


@pytest.fixture
async def api_tenant(api_services: Services) -> TenantHandle:
    return await create_tenant(api_services, "oauth-co")


@pytest.fixture
async def client(
    api_app: FastAPI, api_tenant: TenantHandle, secret_watch: SecretWatch
) -> AsyncIterator[httpx.AsyncClient]:
    """The tenant's API client (its real key)."""
    async with api_client(api_app, api_tenant.api_key, secret_watch) as c:
        yield c


@pytest.fixture
async def browser(api_app: FastAPI, secret_watch: SecretWatch) -> AsyncIterator[httpx.AsyncClient]:
    """The user's browser reaching the callback: no API key."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=api_app),
        base_url=PUBLIC_URL,
        event_hooks={"response": [secret_watch.record]},
    ) as c:
        yield c


@pytest.fixture
def api_connectors_registered() -> Iterator[None]:
    """The connectors' own modules register ``gmail_api`` and ``graph``; where this build has
    not got them yet, an in-memory stand-in is registered for the test (creating a mailbox
    asks the registry what its connector can do)."""
    added = [key for key in ("gmail_api", "graph") if key not in connector_registry.keys()]
    server = FakeServer()
    for key in added:
        server.register(key, frozenset(Feature))
    yield
    for key in added:
        connector_registry.unregister(key)
