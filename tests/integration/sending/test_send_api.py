"""``POST /v1/mailboxes/{id}/send`` and the outbox routes over HTTP (ASGI, no worker running, so
sends stay in the queue): 202 with the documented shape and Location, the Idempotency-Key replay
and 409, the raw forms (JSON and message/rfc822), validation 422s with their codes, tenant
isolation, cancel, paging and the state filter, and the body limit. Real store (SQLite and
PostgreSQL), real Dovecot for the mailbox."""

from __future__ import annotations

import base64
import email
from datetime import UTC, datetime, timedelta
from email import policy
from typing import Any

import httpx
import pytest

from mailport.config import Settings
from tests.fixtures.api import NewTenantClient
from tests.integration.sending.outbox_bed import Box, count_rows, letter, make_box, row
from tests.mailstack.dovecot import Dovecot

HELLO = {"to": ["Ann <ann@example.test>"], "subject": "Hello", "text": "Hi Ann"}
OUTBOUND_FIELDS = {
    "id", "mailbox_id", "state", "message_id", "from", "recipients", "subject", "size", "send_at",
    "next_attempt_at", "attempts", "last_error", "smtp_reply", "confirmed", "refused", "sent_copy",
    "sent_copy_ref", "in_reply_to", "created_at", "updated_at", "sent_at",
}  # fmt: skip


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # a small message limit, so that the body limit can be met cheaply
    return settings.model_copy(update={"allowed_hosts": ["127.0.0.1"], "max_message_bytes": 200_000})


def url(box: Box, path: str = "/send") -> str:
    return f"/v1/mailboxes/{box.mailbox_id}{path}"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def send(client: httpx.AsyncClient, box: Box, body: Any = None, **kwargs: Any) -> httpx.Response:
    return await client.post(url(box), json=HELLO if body is None else body, **kwargs)


def error_of(response: httpx.Response) -> tuple[int, str, str | None]:
    body = response.json()
    assert set(body) >= {"error", "detail", "hint"}, body
    return response.status_code, body["error"], body.get("field")


async def test_a_send_is_queued_202_with_its_location(tenant_client: httpx.AsyncClient, box: Box) -> None:
    queued = await send(tenant_client, box, {**HELLO, "bcc": ["hidden@example.test"]})
    assert queued.status_code == 202, queued.text
    body = queued.json()
    assert set(body) == OUTBOUND_FIELDS
    assert body["id"].startswith("snd_") and body["mailbox_id"] == box.mailbox_id
    assert body["state"] == "queued" and body["from"] == box.email and body["subject"] == "Hello"
    assert body["recipients"] == ["ann@example.test", "hidden@example.test"]  # the envelope, Bcc too
    assert "<" not in body["message_id"] and body["message_id"].endswith("@" + box.email.split("@")[1])
    assert body["attempts"] == 0 and body["last_error"] is None and body["sent_copy"] == "pending"
    assert body["size"] > 0 and body["confirmed"] is True and body["refused"] == {}
    assert queued.headers["location"] == f"/v1/mailboxes/{box.mailbox_id}/outbox/{body['id']}"
    assert "idempotent-replayed" not in queued.headers

    got = await tenant_client.get(queued.headers["location"])
    assert got.status_code == 200 and got.json() == body
    stored = email.message_from_bytes(bytes((await row(box.services, body["id"])).raw), policy=policy.default)
    assert "hidden@example.test" not in stored.as_string() and stored["Subject"] == "Hello"


async def test_the_same_idempotency_key_replays_and_another_body_is_409(
    tenant_client: httpx.AsyncClient, box: Box
) -> None:
    key = {"Idempotency-Key": "order-4711/confirmation"}
    first = await send(tenant_client, box, headers=key)
    assert first.status_code == 202 and "idempotent-replayed" not in first.headers
    again = await send(tenant_client, box, headers=key)
    assert again.status_code == 202 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json() and again.headers["location"] == first.headers["location"]
    assert await count_rows(box.services, box.mailbox_id) == 1

    other = await send(tenant_client, box, {**HELLO, "text": "Another text"}, headers=key)
    assert error_of(other)[:2] == (409, "idempotency_key_reused")
    assert first.json()["id"] in other.json()["detail"]
    assert await count_rows(box.services, box.mailbox_id) == 1

    fresh = await send(tenant_client, box, headers={"Idempotency-Key": "another"})
    assert fresh.status_code == 202 and fresh.json()["id"] != first.json()["id"]


@pytest.mark.parametrize("key", ["", "has space", "x" * 256, "ünicode"])
async def test_a_bad_idempotency_key_is_422(tenant_client: httpx.AsyncClient, box: Box, key: str) -> None:
    refused = await send(tenant_client, box, headers={"Idempotency-Key": key.encode()})
    assert error_of(refused) == (422, "invalid_input", "Idempotency-Key"), refused.text
    assert await count_rows(box.services, box.mailbox_id) == 0


async def test_the_raw_form_as_json_and_as_message_rfc822(tenant_client: httpx.AsyncClient, box: Box) -> None:
    source = (
        f"From: Desk <{box.email}>\r\nTo: ann@example.test\r\nBcc: secret@example.test\r\n"
        "Subject: Raw one\r\n\r\nwritten by hand\r\n"
    ).encode()
    as_json = await send(tenant_client, box, {"raw": b64(source), "sent_copy": False})
    assert as_json.status_code == 202, as_json.text
    body = as_json.json()
    assert body["subject"] == "Raw one" and body["sent_copy"] == "skipped"
    assert body["recipients"] == ["ann@example.test", "secret@example.test"]
    stored = bytes((await row(box.services, body["id"])).raw)
    assert b"Bcc" not in stored and b"written by hand" in stored and b"Message-ID: <" in stored

    later = datetime.now(UTC) + timedelta(days=2)
    as_message = await tenant_client.post(
        url(box),
        content=source.replace(b"Raw one", b"Raw two"),
        headers={"Content-Type": "message/rfc822"},
        params={"send_at": later.isoformat(), "sent_copy": "true"},
    )
    assert as_message.status_code == 202, as_message.text
    scheduled = as_message.json()
    assert scheduled["subject"] == "Raw two" and scheduled["state"] == "scheduled"
    assert datetime.fromisoformat(scheduled["send_at"]) == later.replace(microsecond=later.microsecond)
    assert scheduled["sent_copy"] == "pending"

    naive = await tenant_client.post(
        url(box),
        content=source,
        headers={"Content-Type": "message/rfc822"},
        params={"send_at": "2030-01-01T09:00"},
    )
    assert error_of(naive) == (422, "invalid_input", "send_at")
    in_json_query = await tenant_client.post(url(box), json=HELLO, params={"sent_copy": "false"})
    assert error_of(in_json_query) == (422, "invalid_input", "sent_copy")
    empty = await tenant_client.post(url(box), content=b"", headers={"Content-Type": "message/rfc822"})
    assert error_of(empty) == (422, "invalid_input", "body")
    not_a_message = await tenant_client.post(
        url(box), content=b"hello there", headers={"Content-Type": "message/rfc822"}
    )
    assert error_of(not_a_message)[:2] == (422, "invalid_input")
    form = await tenant_client.post(url(box), data={"to": "a@example.test"})
    assert error_of(form) == (422, "invalid_input", "content-type")


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({**HELLO, "to": ["not an address"]}, "invalid_input", "to.0"),
        ({**HELLO, "cc": ["a@example.test, b@example.test"]}, "invalid_input", "cc.0"),
        ({**HELLO, "headers": {"Bcc": "x@example.test"}}, "invalid_input", "headers"),
        ({**HELLO, "send_at": "2030-01-01T09:00:00"}, "invalid_input", "send_at"),
        ({**HELLO, "raw": b64(b"From: a@example.test\r\n\r\nx")}, "invalid_input", "body"),
        ({"subject": "nobody to"}, "invalid_input", "body"),
        ({**HELLO, "attachments": [{"filename": "a", "content_base64": "!!"}]}, "invalid_input",
         "attachments.0.inline.content_base64"),
        ({**HELLO, "priority": "high"}, "unknown_field", "priority"),
        ({**HELLO, "from": "stranger@example.test"}, "sender_not_allowed", None),
        ({**HELLO, "send_at": "2099-01-01T09:00:00Z"}, "invalid_input", "send_at"),
        ([HELLO], "invalid_input", "body"),
    ],
)  # fmt: skip
async def test_bad_requests_are_422_with_their_code(
    tenant_client: httpx.AsyncClient, box: Box, body: Any, code: str, field: str | None
) -> None:
    refused = await send(tenant_client, box, body)
    status, error, where = error_of(refused)
    assert (status, error) == (422, code), refused.text
    if field is not None:
        assert where == field, refused.text
    assert await count_rows(box.services, box.mailbox_id) == 0


async def test_broken_json_is_invalid_json(tenant_client: httpx.AsyncClient, box: Box) -> None:
    broken = await tenant_client.post(
        url(box), content=b'{"to": [', headers={"Content-Type": "application/json"}
    )
    assert error_of(broken)[:2] == (422, "invalid_json")


async def test_a_reply_and_an_attachment_by_reference(tenant_client: httpx.AsyncClient, box: Box) -> None:
    box.deliver(letter("Where is my invoice?"))
    listed = await tenant_client.get(url(box, "/messages"))
    ref = listed.json()["data"][0]["ref"]
    replied = await send(
        tenant_client,
        box,
        {"text": "Here it is.", "reply": {"ref": ref}, "attachments": [{"ref": ref, "attachment_id": "0"}]},
    )
    assert replied.status_code == 202, replied.text
    body = replied.json()
    assert body["subject"] == "Re: Where is my invoice?" and body["recipients"] == ["ann@example.test"]
    assert body["in_reply_to"] is not None
    stored = email.message_from_bytes(bytes((await row(box.services, body["id"])).raw), policy=policy.default)
    assert [part.get_filename() for part in stored.iter_attachments()] == ["invoice.pdf"]

    missing = await send(tenant_client, box, {**HELLO, "attachments": [{"ref": ref, "attachment_id": "9"}]})
    assert error_of(missing)[:2] == (404, "attachment_not_found")


async def test_a_mailbox_without_smtp_cannot_send(
    tenant_client: httpx.AsyncClient, box: Box, dovecot: Dovecot
) -> None:
    no_smtp = await make_box(box.services, dovecot, None, tenant_id=box.tenant_id)
    refused = await send(tenant_client, no_smtp)
    assert error_of(refused)[:2] == (422, "smtp_not_configured")


async def test_another_tenants_mailbox_and_sends_are_404(
    tenant_client: httpx.AsyncClient, box: Box, new_tenant_client: NewTenantClient
) -> None:
    queued = (await send(tenant_client, box)).json()
    _, stranger = await new_tenant_client()
    assert error_of(await send(stranger, box))[:2] == (404, "not_found")
    raw = await stranger.post(
        url(box), content=b"From: a@b.test\r\n\r\nx", headers={"Content-Type": "message/rfc822"}
    )
    assert error_of(raw)[:2] == (404, "not_found")
    for response in (
        await stranger.get(url(box, "/outbox")),
        await stranger.get(url(box, f"/outbox/{queued['id']}")),
        await stranger.delete(url(box, f"/outbox/{queued['id']}")),
    ):
        assert response.status_code == 404, response.text
    mine = await tenant_client.get(url(box, f"/outbox/{queued['id']}"))
    assert mine.status_code == 200 and mine.json()["state"] == "queued"  # the stranger cancelled nothing

    other_box = await make_box(box.services, box.dovecot, None, tenant_id=box.tenant_id)
    elsewhere = await tenant_client.get(f"/v1/mailboxes/{other_box.mailbox_id}/outbox/{queued['id']}")
    assert error_of(elsewhere)[:2] == (404, "send_not_found")
    unknown = await tenant_client.get(url(box, "/outbox/snd_nonsense"))
    assert error_of(unknown)[:2] == (404, "send_not_found")


async def test_cancel_a_queued_send_and_not_a_cancelled_one(
    tenant_client: httpx.AsyncClient, box: Box
) -> None:
    queued = (await send(tenant_client, box)).json()
    cancelled = await tenant_client.delete(url(box, f"/outbox/{queued['id']}"))
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["state"] == "cancelled" and cancelled.json()["id"] == queued["id"]
    again = await tenant_client.delete(url(box, f"/outbox/{queued['id']}"))
    assert error_of(again)[:2] == (409, "send_not_cancellable")

    later = (datetime.now(UTC) + timedelta(hours=3)).isoformat()
    scheduled = (await send(tenant_client, box, {**HELLO, "send_at": later})).json()
    assert scheduled["state"] == "scheduled"
    assert (await tenant_client.delete(url(box, f"/outbox/{scheduled['id']}"))).json()["state"] == "cancelled"


async def test_the_outbox_pages_newest_first_and_filters_by_state(
    tenant_client: httpx.AsyncClient, box: Box
) -> None:
    made = [(await send(tenant_client, box, {**HELLO, "subject": f"n{n}"})).json()["id"] for n in range(5)]
    await tenant_client.delete(url(box, f"/outbox/{made[1]}"))
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = await tenant_client.get(url(box, "/outbox"), params=params)
        assert page.status_code == 200, page.text
        assert set(page.json()) == {"items", "next_cursor"} and len(page.json()["items"]) <= 2
        seen += [item["id"] for item in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == made[::-1]

    only = await tenant_client.get(url(box, "/outbox"), params={"state": "cancelled"})
    assert [item["id"] for item in only.json()["items"]] == [made[1]]
    queued = await tenant_client.get(url(box, "/outbox"), params={"state": "queued"})
    assert [item["id"] for item in queued.json()["items"]] == [made[4], made[3], made[2], made[0]]
    for params, field in (
        ({"state": "lost"}, "state"),
        ({"limit": 0}, "limit"),
        ({"cursor": "garbage!"}, None),
    ):
        refused = await tenant_client.get(url(box, "/outbox"), params=params)
        assert refused.status_code == 422, refused.text
        if field:
            assert refused.json()["field"] == field


async def test_a_body_over_the_limit_is_413(tenant_client: httpx.AsyncClient, box: Box) -> None:
    limit = 200_000  # the settings above
    big = b"From: a@example.test\r\nTo: b@example.test\r\n\r\n" + b"x" * limit
    raw = await tenant_client.post(url(box), content=big, headers={"Content-Type": "message/rfc822"})
    assert error_of(raw)[:2] == (413, "message_too_large")
    as_json = await send(tenant_client, box, {"raw": b64(big)})
    assert error_of(as_json)[:2] == (413, "message_too_large")
    attached = await send(
        tenant_client,
        box,
        {**HELLO, "attachments": [{"filename": "big.bin", "content_base64": b64(b"y" * (limit + 1))}]},
    )
    assert error_of(attached)[:2] == (413, "message_too_large")
    way_over = await send(tenant_client, box, {"raw": b64(big * 2)})  # over the route's body limit
    assert error_of(way_over)[:2] == (413, "message_too_large")
    assert await count_rows(box.services, box.mailbox_id) == 0
    fits = await send(
        tenant_client,
        box,
        {**HELLO, "attachments": [{"filename": "ok.bin", "content_base64": b64(b"y" * 100_000)}]},
    )
    assert fits.status_code == 202, fits.text
