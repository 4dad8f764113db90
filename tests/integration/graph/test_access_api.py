"""The mailbox-access, sending and drafts routes of a ``graph`` mailbox over HTTP: the same
paths and answers as for IMAP, 4xx with a stable code for what Graph cannot do, another
tenant's mailbox a 404."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from mailport.api import create_app
from mailport.bootstrap import Services
from tests.fakes.graph import GraphFake
from tests.fixtures.api import BASE_URL, TenantHandle, create_tenant
from tests.fixtures.graph import GraphMailbox, MakeGraphMailbox, new_email
from tests.integration.sync.conftest import make_message


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """This is about Graph, not storage: one database (storage runs on both elsewhere)."""
    return sqlite_url


@pytest.fixture
async def tenant(graph_services: Services) -> TenantHandle:
    return await create_tenant(graph_services)


@pytest.fixture
async def made(
    graph_services: Services, graph_mailbox: MakeGraphMailbox, tenant: TenantHandle
) -> GraphMailbox:
    return await graph_mailbox(graph_services, tenant_id=tenant.id)


def http_client(services: Services, api_key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(services=services)),
        base_url=BASE_URL,
        headers={"Authorization": f"Bearer {api_key}"},
    )


@pytest.fixture
async def client(graph_services: Services, tenant: TenantHandle) -> AsyncIterator[httpx.AsyncClient]:
    async with http_client(graph_services, tenant.api_key) as http:
        yield http


async def test_the_routes_answer_for_a_graph_mailbox(
    client: httpx.AsyncClient, made: GraphMailbox, graph: GraphFake
) -> None:
    base = f"/v1/mailboxes/{made.mailbox.id}"
    made.account.add(make_message("Hello Graph"), "inbox")
    folders = (await client.get(f"{base}/folders")).json()
    paths = {f["path"]: f["role"] for f in folders["data"]}
    assert paths["INBOX"] == "inbox" and paths["Sent Items"] == "sent"
    listing = (await client.get(f"{base}/messages", params={"folder": "INBOX"})).json()
    [item] = listing["data"]
    assert item["subject"] == "Hello Graph" and item["folder"] == "INBOX" and listing["next_cursor"] is None
    message = (await client.get(f"{base}/messages/{item['ref']}")).json()
    assert message["subject"] == "Hello Graph" and message["text"] == "hello\n"
    raw = await client.get(f"{base}/messages/{item['ref']}/raw")
    assert raw.status_code == 200 and raw.content == make_message("Hello Graph")
    flagged = await client.post(f"{base}/messages/{item['ref']}/flags", json={"add": ["flagged"]})
    assert flagged.status_code == 204
    refused = await client.post(f"{base}/messages/{item['ref']}/flags", json={"add": ["answered"]})
    assert refused.status_code == 422 and refused.json()["error"] == "unsupported_feature"
    search = await client.post(f"{base}/messages/search", json={"folder": "INBOX", "answered": True})
    assert search.status_code == 422 and "answered" in search.json()["detail"]
    found = (
        await client.post(f"{base}/messages/search", json={"folder": "INBOX", "subject": "graph"})
    ).json()
    assert [m["subject"] for m in found["data"]] == ["Hello Graph"]
    bob = graph.account(new_email())
    sent = await client.post(f"{base}/send", json={"to": [bob.email], "subject": "Hi", "text": "there"})
    assert sent.status_code == 202 and sent.json()["state"] == "queued"
    draft = await client.post(f"{base}/drafts", json={"to": [bob.email], "subject": "Later", "text": "x"})
    assert draft.status_code == 201 and draft.json()["folder"] == "Drafts"
    drafts = (await client.get(f"{base}/drafts")).json()
    assert [d["subject"] for d in drafts["data"]] == ["Later"]
    gone = await client.delete(f"{base}/drafts/{draft.json()['ref']}")
    assert gone.status_code == 204 and made.account.in_folder("drafts") == []


async def test_another_tenants_graph_mailbox_is_not_found(
    graph_services: Services, made: GraphMailbox
) -> None:
    other = await create_tenant(graph_services)
    async with http_client(graph_services, other.api_key) as http:
        answer = await http.get(f"/v1/mailboxes/{made.mailbox.id}/folders")
    assert answer.status_code == 404
