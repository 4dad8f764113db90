"""``GET /v1/mailboxes/{id}/folders`` against the real Dovecot: roles, decoded names and counts;
tenants isolated; 422 ``unsupported_feature`` for a connector without folders; a refused login
422; a server that cannot be reached 503 ``mailbox_unreachable`` with Retry-After (never 500)."""

from __future__ import annotations

import uuid

import httpx
import pytest

from mailport.bootstrap import Services
from mailport.config import Settings
from mailport.connectors.base import Feature
from mailport.crypto import Secret
from mailport.mailboxes.models import AuthMethod, NewMailbox, Security, ServerSettings
from tests.connectors.fake import FakeServer
from tests.fixtures.api import NewTenantClient, TenantHandle
from tests.integration.sync.conftest import make_message
from tests.mailstack.dovecot import Dovecot, free_port

FOLDER = "Kundenanfragen/Größe"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"allowed_hosts": ["127.0.0.1"]})


async def _add(client: httpx.AsyncClient, email: str, password: str, port: int) -> str:
    made = await client.post(
        "/v1/mailboxes",
        json={
            "email": email,
            "auth_method": "password",
            "password": password,
            "imap": {"host": "127.0.0.1", "port": port, "security": "none"},
        },
    )
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


async def test_folders_of_a_mailbox_with_roles_counts_and_names(
    tenant_client: httpx.AsyncClient, dovecot: Dovecot, new_tenant_client: NewTenantClient
) -> None:
    user, password = dovecot.dyn_user(f"api{uuid.uuid4().hex[:10]}")
    client = await dovecot.client(user, password)
    try:
        await client.create(FOLDER)
    finally:
        await client.logout()
    for n in range(2):
        dovecot.deliver(user, make_message(f"hello {n}"), FOLDER)
    mailbox_id = await _add(tenant_client, user, password, dovecot.imap_port)

    answer = await tenant_client.get(f"/v1/mailboxes/{mailbox_id}/folders")
    assert answer.status_code == 200, answer.text
    folders = answer.json()["data"]
    assert folders[0] == {
        "path": "INBOX",
        "delimiter": "/",
        "name": "INBOX",
        "role": "inbox",
        "messages": 0,
        "unseen": 0,
        "subscribed": False,  # the bed subscribes its special folders only
        "selectable": True,
    }
    by_path = {f["path"]: f for f in folders}
    assert by_path["Sent"]["subscribed"] and by_path["Sent"]["role"] == "sent"
    made = by_path[FOLDER]
    assert (made["name"], made["messages"], made["unseen"], made["role"]) == ("Größe", 2, 2, None)
    assert by_path["Kundenanfragen"]["messages"] in (0, None)  # the parent Dovecot made for it
    assert {f["role"] for f in folders} >= {"inbox", "sent", "drafts", "trash", "junk"}

    _other, other_client = await new_tenant_client()
    stranger = await other_client.get(f"/v1/mailboxes/{mailbox_id}/folders")
    assert stranger.status_code == 404 and stranger.json()["error"] == "not_found"


async def test_a_connector_without_folders_answers_unsupported_feature(
    services: Services, tenant: TenantHandle, tenant_client: httpx.AsyncClient, fake_connector: FakeServer
) -> None:
    fake_connector.register("fake_pop", frozenset({Feature.FLAGS}))
    mailbox = await services.mailboxes.create(
        tenant.id,
        NewMailbox(
            email="pop@example.test",
            auth_method=AuthMethod.PASSWORD,
            imap=ServerSettings("imap.example.com", 993, Security.SSL),
            password=Secret("pw"),
            connector="fake_pop",
        ),
    )
    answer = await tenant_client.get(f"/v1/mailboxes/{mailbox.id}/folders")
    assert answer.status_code == 422
    body = answer.json()
    assert body["error"] == "unsupported_feature" and "fake_pop" in body["detail"] and body["hint"]


async def test_a_server_that_cannot_be_reached_answers_503(tenant_client: httpx.AsyncClient) -> None:
    mailbox_id = await _add(tenant_client, "nobody@example.test", "pw-nobody", free_port())
    answer = await tenant_client.get(f"/v1/mailboxes/{mailbox_id}/folders")
    assert answer.status_code == 503, answer.text
    body = answer.json()
    assert body["error"] == "mailbox_unreachable" and body["hint"]
    assert int(answer.headers["Retry-After"]) > 0


async def test_a_refused_login_answers_422(tenant_client: httpx.AsyncClient, dovecot: Dovecot) -> None:
    user, _password = dovecot.dyn_user(f"api{uuid.uuid4().hex[:10]}")
    mailbox_id = await _add(tenant_client, user, "not-the-password", dovecot.imap_port)
    answer = await tenant_client.get(f"/v1/mailboxes/{mailbox_id}/folders")
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"] in ("invalid_credentials", "auth_failed")
