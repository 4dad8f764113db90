"""The live mailbox routes over the fake connector, for what the bed's Dovecot cannot show: a
connector without search or threads (422 ``unsupported_feature``), a busy mailbox (503
``mailbox_busy`` with Retry-After), a mailbox without a trash folder (422
``trash_folder_missing``), and labels (Gmail's, which Dovecot has not)."""

from __future__ import annotations

import httpx
import pytest

from mailport.bootstrap import Services
from mailport.connectors.base import Feature
from mailport.crypto import Secret
from mailport.errors import MailboxBusyError
from mailport.mailboxes.models import AuthMethod, NewMailbox, Security, ServerSettings
from tests.connectors.fake import ALL, FakeMail, FakeServer
from tests.fixtures.api import TenantHandle

MESSAGE = b"From: Ann <ann@example.test>\r\nSubject: hello\r\nMessage-ID: <h1@example.test>\r\n\r\nhi\r\n"


async def add(services: Services, tenant: TenantHandle, connector: str, email: str) -> str:
    mailbox = await services.mailboxes.create(
        tenant.id,
        NewMailbox(
            email=email,
            auth_method=AuthMethod.PASSWORD,
            imap=ServerSettings("imap.example.com", 993, Security.SSL),
            password=Secret("pw"),
            connector=connector,
        ),
    )
    return f"/v1/mailboxes/{mailbox.id}"


@pytest.fixture
async def fake(services: Services, tenant: TenantHandle, fake_connector: FakeServer) -> tuple[str, FakeMail]:
    email = "fake@example.test"
    return await add(services, tenant, "fake", email), fake_connector[email]


async def test_a_connector_without_search_or_threads_answers_unsupported_feature(
    services: Services, tenant: TenantHandle, tenant_client: httpx.AsyncClient, fake_connector: FakeServer
) -> None:
    fake_connector.register("fake_basic", ALL - {Feature.SEARCH, Feature.THREADS, Feature.MOVE})
    base = await add(services, tenant, "fake_basic", "basic@example.test")
    fake_connector["basic@example.test"].put("INBOX", MESSAGE)
    listed = await tenant_client.get(f"{base}/messages")
    assert listed.status_code == 200, listed.text
    item = listed.json()["data"][0]
    for answer in (
        await tenant_client.post(f"{base}/messages/search", json={"subject": "hello"}),
        await tenant_client.get(f"{base}/threads/{item['thread_key']}"),
        await tenant_client.post(f"{base}/messages/{item['ref']}/move", json={"folder": "Sent"}),
    ):
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"] == "unsupported_feature" and "fake_basic" in answer.json()["detail"]


async def test_a_criterion_the_connector_cannot_search_is_unsupported(
    tenant_client: httpx.AsyncClient, fake: tuple[str, FakeMail]
) -> None:
    base, _remote = fake
    answer = await tenant_client.post(f"{base}/messages/search", json={"flagged": True})
    assert answer.status_code == 422 and answer.json()["error"] == "unsupported_feature", answer.text


async def test_a_busy_mailbox_answers_503_with_retry_after(
    tenant_client: httpx.AsyncClient, fake: tuple[str, FakeMail]
) -> None:
    base, remote = fake
    remote.fail_next("connect", MailboxBusyError("every connection stayed busy", retry_after=7))
    answer = await tenant_client.get(f"{base}/messages")
    assert answer.status_code == 503 and answer.json()["error"] == "mailbox_busy", answer.text
    assert answer.headers["Retry-After"] == "7"
    assert (await tenant_client.get(f"{base}/messages")).status_code == 200  # the next one gets through


async def test_delete_without_a_trash_folder_is_refused_not_expunged(
    tenant_client: httpx.AsyncClient, fake: tuple[str, FakeMail]
) -> None:
    base, remote = fake
    remote.folders.discard("Trash")
    remote.put("INBOX", MESSAGE)
    ref = (await tenant_client.get(f"{base}/messages")).json()["data"][0]["ref"]
    answer = await tenant_client.delete(f"{base}/messages/{ref}")
    assert answer.status_code == 422 and answer.json()["error"] == "trash_folder_missing", answer.text
    assert len(remote.messages("INBOX")) == 1
    assert (
        await tenant_client.delete(f"{base}/messages/{ref}", params={"permanent": "true"})
    ).status_code == 204
    assert remote.messages("INBOX") == []


async def test_labels_are_added_and_removed(
    tenant_client: httpx.AsyncClient, fake: tuple[str, FakeMail]
) -> None:
    base, remote = fake
    remote.labels = True
    remote.put("INBOX", MESSAGE)
    ref = (await tenant_client.get(f"{base}/messages")).json()["data"][0]["ref"]
    change = {"add": ["seen"], "add_labels": ["Kunden/Größe", "Important"]}
    assert (await tenant_client.post(f"{base}/messages/{ref}/flags", json=change)).status_code == 204
    item = (await tenant_client.get(f"{base}/messages")).json()["data"][0]
    assert item["labels"] == ["Important", "Kunden/Größe"] and item["flags"] == ["seen"]
    bulk = {"refs": [ref], "remove_labels": ["Important"]}
    assert (await tenant_client.post(f"{base}/messages/flags", json=bulk)).status_code == 204
    assert (await tenant_client.get(f"{base}/messages")).json()["data"][0]["labels"] == ["Kunden/Größe"]
