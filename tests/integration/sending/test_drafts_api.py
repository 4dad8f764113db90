"""The drafts routes on the real Dovecot (both namespace layouts) with the aiosmtpd submission
bed as the mailbox's SMTP server: create, list, read, replace, delete, and send (queued as a
raw send that keeps the draft's Bcc and takes the send's own Date); refs outside the drafts
folder refused; errors in the one error body."""

from __future__ import annotations

import asyncio
import email
import time
import uuid
from collections.abc import AsyncIterator
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest

from mailport.bootstrap import Services
from mailport.config import Settings
from mailport.connectors.base import MessageRef
from mailport.connectors.mail import ListQuery, SearchQuery
from mailport.sending.worker import SendWorker
from tests.fixtures.api import NewTenantClient, TenantHandle
from tests.integration.sending.outbox_bed import Box, make_box, row
from tests.mailstack.dovecot import Dovecot
from tests.mailstack.smtp import SubmissionServer

DRAFT = {
    "to": ["Ann <ann@example.test>"],
    "bcc": ["Boss <boss@example.test>"],
    "subject": "Quarterly figures",
    "text": "Hi Ann,\nthe figures.\n",
    "headers": {"X-Ticket": "42"},
}


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """The drafts live on the mail server; the queue's storage is the outbox tests' (both)."""
    return sqlite_url


@pytest.fixture
def settings(settings: Settings, dovecot: Dovecot) -> Settings:
    """Loopback servers allowed, the bed's CA trusted (its SMTP listener's certificate)."""
    return settings.model_copy(update={"allowed_hosts": ["127.0.0.1"], "mail_ca_file": Path(dovecot.ca_file)})


@pytest.fixture
async def worker(services: Services) -> AsyncIterator[SendWorker]:
    running = SendWorker(services, poll_seconds=0.2)
    running.start()
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture(params=["standard", "dotted"])
async def draft_box(
    services: Services, tenant: TenantHandle, smtp: SubmissionServer, request: pytest.FixtureRequest
) -> Box:
    server: Dovecot = request.getfixturevalue("dovecot" if request.param == "standard" else "dovecot_dotted")
    return await make_box(services, server, smtp.port, tenant_id=tenant.id)


def drafts_path(box: Box) -> str:
    return box.dovecot.namespace_prefix + "Drafts"


def url(box: Box, tail: str = "") -> str:
    return f"/v1/mailboxes/{box.mailbox_id}/drafts{tail}"


def parsed(raw: bytes) -> EmailMessage:
    return email.message_from_bytes(raw, policy=policy.default)  # type: ignore[return-value]


async def create(client: httpx.AsyncClient, box: Box, body: dict[str, Any] = DRAFT) -> dict[str, Any]:
    response = await client.post(url(box), json=body)
    assert response.status_code == 201, response.text
    made: dict[str, Any] = response.json()
    return made


async def test_create_list_and_read_a_draft(tenant_client: httpx.AsyncClient, draft_box: Box) -> None:
    made = await create(tenant_client, draft_box)

    assert set(made) == {"ref", "message_id", "folder"}
    assert made["folder"] == drafts_path(draft_box)
    assert MessageRef.decode(made["ref"]).scope == drafts_path(draft_box)
    listed = (await tenant_client.get(url(draft_box))).json()
    assert [item["ref"] for item in listed["data"]] == [made["ref"]]
    assert set(listed["data"][0]["flags"]) == {"draft", "seen"}
    assert listed["data"][0]["message_id"] == made["message_id"]
    assert listed["next_cursor"] is None

    shown = await tenant_client.get(url(draft_box, f"/{made['ref']}"))
    assert shown.status_code == 200
    draft = shown.json()
    assert draft["subject"] == "Quarterly figures" and draft["text"].startswith("Hi Ann,")
    assert draft["from"] == [{"name": "Support Desk", "email": draft_box.email}]
    assert draft["bcc"] == [{"name": "Boss", "email": "boss@example.test"}]  # kept for sending later
    assert draft["message_id"] == made["message_id"]
    assert ["X-Ticket", "42"] in draft["headers"]


async def test_replace_stores_a_new_draft_and_deletes_the_old(
    tenant_client: httpx.AsyncClient, draft_box: Box
) -> None:
    old = await create(tenant_client, draft_box)

    response = await tenant_client.put(url(draft_box, f"/{old['ref']}"), json={**DRAFT, "subject": "v2"})

    assert response.status_code == 200, response.text
    new = response.json()
    assert new["ref"] != old["ref"] and new["message_id"] != old["message_id"]
    listed = (await tenant_client.get(url(draft_box))).json()["data"]
    assert [(item["ref"], item["subject"]) for item in listed] == [(new["ref"], "v2")]
    gone = await tenant_client.get(url(draft_box, f"/{old['ref']}"))
    assert gone.status_code == 404 and gone.json()["error"] == "message_not_found"
    again = await tenant_client.put(url(draft_box, f"/{old['ref']}"), json=DRAFT)  # nothing stored
    assert again.status_code == 404 and again.json()["error"] == "message_not_found"
    assert len((await tenant_client.get(url(draft_box))).json()["data"]) == 1


async def test_delete_is_permanent_and_a_second_delete_is_404(
    services: Services, tenant_client: httpx.AsyncClient, draft_box: Box
) -> None:
    made = await create(tenant_client, draft_box)

    assert (await tenant_client.delete(url(draft_box, f"/{made['ref']}"))).status_code == 204

    assert (await tenant_client.get(url(draft_box))).json()["data"] == []
    trash_folder = draft_box.dovecot.namespace_prefix + "Trash"
    trash = await services.mail.list_messages(
        draft_box.tenant_id, draft_box.mailbox_id, ListQuery(folder=trash_folder)
    )
    assert trash.items == []  # expunged, not moved to the trash
    again = await tenant_client.delete(url(draft_box, f"/{made['ref']}"))
    assert again.status_code == 404
    assert again.json()["error"] == "message_not_found" and again.json()["hint"]


async def test_send_queues_the_draft_with_its_bcc_and_a_fresh_date(
    services: Services, tenant_client: httpx.AsyncClient, draft_box: Box
) -> None:
    made = await create(tenant_client, draft_box)

    response = await tenant_client.post(url(draft_box, f"/{made['ref']}/send"))

    assert response.status_code == 202, response.text
    send = response.json()
    assert send["id"].startswith("snd_") and send["state"] == "queued"
    assert response.headers["Location"] == f"/v1/mailboxes/{draft_box.mailbox_id}/outbox/{send['id']}"
    assert "Idempotent-Replayed" not in response.headers
    assert send["message_id"] == made["message_id"]
    assert sorted(send["recipients"]) == ["ann@example.test", "boss@example.test"]
    assert send["subject"] == "Quarterly figures"
    queued = await row(services, send["id"])
    assert queued.draft_ref == made["ref"]  # the worker deletes the draft once sent
    message = parsed(bytes(queued.raw))
    assert message["Bcc"] is None  # never in the message sent
    assert message["Date"] is not None and message["X-Ticket"] == "42"
    assert message.get_content().startswith("Hi Ann,")


async def test_send_honours_the_idempotency_key(tenant_client: httpx.AsyncClient, draft_box: Box) -> None:
    made = await create(tenant_client, draft_box)
    key = {"Idempotency-Key": f"draft-{uuid.uuid4().hex}"}

    first = await tenant_client.post(url(draft_box, f"/{made['ref']}/send"), headers=key)
    second = await tenant_client.post(url(draft_box, f"/{made['ref']}/send"), headers=key)

    assert first.status_code == second.status_code == 202
    assert second.json()["id"] == first.json()["id"]
    assert second.headers["Idempotent-Replayed"] == "true"
    other = await create(tenant_client, draft_box, {**DRAFT, "subject": "another"})
    reused = await tenant_client.post(url(draft_box, f"/{other['ref']}/send"), headers=key)
    assert reused.status_code == 409 and reused.json()["error"] == "idempotency_key_reused"
    bad = await tenant_client.post(url(draft_box, f"/{made['ref']}/send"), headers={"Idempotency-Key": "a b"})
    assert bad.status_code == 422 and bad.json()["field"] == "Idempotency-Key"


async def test_a_message_outside_the_drafts_folder_is_refused(
    tenant_client: httpx.AsyncClient, draft_box: Box, services: Services
) -> None:
    draft_box.deliver(b"From: a@example.test\r\nTo: b@example.test\r\nSubject: inbox mail\r\n\r\nhi\r\n")
    page = await services.mail.list_messages(draft_box.tenant_id, draft_box.mailbox_id, ListQuery())
    inbox_ref = page.items[0].ref.encode()

    for method, tail, body in (
        ("GET", "", None),
        ("PUT", "", DRAFT),
        ("DELETE", "", None),
        ("POST", "/send", None),
    ):
        response = await tenant_client.request(method, url(draft_box, f"/{inbox_ref}{tail}"), json=body)
        assert response.status_code == 422, (method, response.text)
        error = response.json()
        assert error["error"] == "invalid_input" and "not a draft" in error["detail"]
        assert "GET /v1/mailboxes/{id}/drafts" in error["hint"]
    inbox = await services.mail.list_messages(draft_box.tenant_id, draft_box.mailbox_id, ListQuery())
    assert len(inbox.items) == 1
    garbage = await tenant_client.get(url(draft_box, "/ref_nonsense"))
    assert garbage.status_code == 422 and garbage.json()["error"] == "invalid_input"


async def test_bad_bodies_and_other_tenants(
    tenant_client: httpx.AsyncClient, draft_box: Box, new_tenant_client: NewTenantClient
) -> None:
    for body, code in (
        ({**DRAFT, "colour": "red"}, "unknown_field"),
        ({"subject": "no one"}, "invalid_input"),
        ({**DRAFT, "to": ["not an address"]}, "invalid_input"),
        ({**DRAFT, "from": "someone.else@example.test"}, "sender_not_allowed"),
        ({**DRAFT, "send_at": "2030-01-01T00:00:00Z"}, "unknown_field"),
    ):
        response = await tenant_client.post(url(draft_box), json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["error"] == code, (body, response.json())
    assert (await tenant_client.get(url(draft_box))).json()["data"] == []

    _, stranger = await new_tenant_client()
    assert (await stranger.get(url(draft_box))).status_code == 404
    assert (await stranger.post(url(draft_box), json=DRAFT)).status_code == 404


async def test_a_sent_draft_reaches_the_server_and_leaves_drafts_for_sent(
    services: Services,
    tenant_client: httpx.AsyncClient,
    draft_box: Box,
    smtp: SubmissionServer,
    worker: SendWorker,
) -> None:
    subject = f"Sent from drafts {time.time_ns()}"
    made = await create(tenant_client, draft_box, {**DRAFT, "subject": subject})

    queued = await tenant_client.post(url(draft_box, f"/{made['ref']}/send"))
    assert queued.status_code == 202, queued.text
    location = queued.headers["Location"]
    deadline = time.monotonic() + 30
    while True:  # sent, then the Sent copy stored and the draft deleted (the after-send step)
        send = (await tenant_client.get(location)).json()
        if (send["state"] == "sent" and send["sent_copy"] != "pending") or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)

    assert send["state"] == "sent" and send["smtp_reply"].startswith("250"), send
    accepted = [m for m in smtp.handler.messages if subject.encode() in m.data]
    assert len(accepted) == 1
    assert sorted(accepted[0].rcpt_tos) == ["ann@example.test", "boss@example.test"]
    assert b"boss@example.test" not in accepted[0].data  # Bcc: envelope only
    assert (await tenant_client.get(url(draft_box))).json()["data"] == []  # the draft is gone
    assert send["sent_copy"] == "stored" and send["sent_copy_ref"] is not None
    sent_folder = draft_box.dovecot.namespace_prefix + "Sent"
    assert MessageRef.decode(send["sent_copy_ref"]).scope == sent_folder
    copies = await services.mail.search(
        draft_box.tenant_id,
        draft_box.mailbox_id,
        SearchQuery(folder=sent_folder, message_id=f"<{made['message_id']}>"),
    )
    assert len(copies.items) == 1 and copies.items[0].flags == ("seen",)
    again = await tenant_client.post(url(draft_box, f"/{made['ref']}/send"))  # no key: it is gone
    assert again.status_code == 404 and again.json()["error"] == "message_not_found"


async def test_a_retry_with_the_key_after_the_draft_was_sent_answers_the_first_send(
    tenant_client: httpx.AsyncClient, draft_box: Box, worker: SendWorker
) -> None:
    made = await create(tenant_client, draft_box)
    key = {"Idempotency-Key": f"draft-{uuid.uuid4().hex}"}
    first = await tenant_client.post(url(draft_box, f"/{made['ref']}/send"), headers=key)
    assert first.status_code == 202
    deadline = time.monotonic() + 30
    while (await tenant_client.get(url(draft_box))).json()["data"] and time.monotonic() < deadline:
        await asyncio.sleep(0.1)  # until the worker has sent it and deleted the draft

    retry = await tenant_client.post(url(draft_box, f"/{made['ref']}/send"), headers=key)

    assert retry.status_code == 202, retry.text
    assert retry.json()["id"] == first.json()["id"] and retry.json()["state"] == "sent"
    assert retry.headers["Idempotent-Replayed"] == "true"


async def test_a_drafts_folder_renamed_meanwhile_is_looked_up_again(
    services: Services,
    tenant: TenantHandle,
    tenant_client: httpx.AsyncClient,
    bare_dovecots: dict[str, Dovecot],
    smtp: SubmissionServer,
) -> None:
    # A server without SPECIAL-USE: Drafts is created on first use, found by its name after.
    box = await make_box(services, bare_dovecots["imap"], smtp.port, tenant_id=tenant.id)
    made = await create(tenant_client, box)
    assert made["folder"] == "Drafts"
    await services.mail.list_messages(box.tenant_id, box.mailbox_id, ListQuery())  # Drafts unselected
    other = await box.dovecot.client(box.email, box.password)
    try:
        await other.rename("Drafts", "Draft")  # another client renames it (still a well-known name)
    finally:
        await other.logout()

    listed = (await tenant_client.get(url(box))).json()["data"]
    assert [MessageRef.decode(item["ref"]).scope for item in listed] == ["Draft"]
    moved_ref = listed[0]["ref"]
    shown = await tenant_client.get(url(box, f"/{moved_ref}"))
    assert shown.status_code == 200 and shown.json()["subject"] == "Quarterly figures"
    stale = await tenant_client.get(url(box, f"/{made['ref']}"))  # the old folder's ref
    assert stale.status_code == 422 and "not a draft" in stale.json()["detail"]


async def test_drafts_work_without_smtp_but_sending_one_needs_it(
    services: Services, tenant: TenantHandle, tenant_client: httpx.AsyncClient, dovecot: Dovecot
) -> None:
    box = await make_box(services, dovecot, None, tenant_id=tenant.id)
    made = await create(tenant_client, box)

    refused = await tenant_client.post(url(box, f"/{made['ref']}/send"))

    assert refused.status_code == 422 and refused.json()["error"] == "smtp_not_configured"
    assert [item["ref"] for item in (await tenant_client.get(url(box))).json()["data"]] == [made["ref"]]
