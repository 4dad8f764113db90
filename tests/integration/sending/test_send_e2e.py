"""A send from the API to the recipient's mailbox, through the real send worker: POST …/send ->
the aiosmtpd submission bed accepts it -> Dovecot delivers it (LMTP) -> the outbox shows it
``sent`` with the server's reply -> ``message.sent`` is in the tenant's events. And a permanent
refusal: ``failed`` with the server's own words, and ``message.send_failed``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mailport.bootstrap import Services
from mailport.config import Settings
from mailport.sending.worker import SendWorker
from tests.integration.sending.outbox_bed import Box
from tests.mailstack.dovecot import Dovecot
from tests.mailstack.smtp import SubmissionServer


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


async def until_done(client: httpx.AsyncClient, location: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        got = (await client.get(location)).json()
        if got["state"] in ("sent", "failed", "cancelled"):
            return dict(got)
        if time.monotonic() > deadline:
            raise AssertionError(f"still {got['state']} after {timeout} s: {got}")
        await asyncio.sleep(0.1)


async def events_of(client: httpx.AsyncClient, kind: str) -> list[dict[str, Any]]:
    page = (await client.get("/v1/events", params={"limit": 500})).json()
    return [event for event in page["items"] if event["type"] == kind]


async def test_a_message_sent_through_the_api_arrives(
    tenant_client: httpx.AsyncClient, box: Box, smtp: SubmissionServer, worker: SendWorker
) -> None:
    subject = f"Booking confirmed {time.time_ns()}"
    queued = await tenant_client.post(
        f"/v1/mailboxes/{box.mailbox_id}/send",
        json={
            "to": [f"Myself <{box.email}>"],
            "subject": subject,
            "text": "See you on Friday.",
            "sent_copy": False,
        },
        headers={"Idempotency-Key": subject.replace(" ", "-")},
    )
    assert queued.status_code == 202, queued.text
    sent = await until_done(tenant_client, queued.headers["location"])
    assert sent["state"] == "sent", sent
    assert sent["smtp_reply"].startswith("250") and sent["confirmed"] is True and sent["attempts"] == 1
    assert sent["sent_at"] is not None and sent["last_error"] is None and sent["sent_copy"] == "skipped"

    accepted = [m for m in smtp.handler.messages if subject.encode() in m.data]
    assert len(accepted) == 1 and accepted[0].rcpt_tos == [box.email]
    listed = await tenant_client.get(f"/v1/mailboxes/{box.mailbox_id}/messages")
    arrived = [m for m in listed.json()["data"] if m["subject"] == subject]
    assert len(arrived) == 1 and arrived[0]["message_id"] == sent["message_id"]

    events = [e for e in await events_of(tenant_client, "message.sent") if e["data"]["send_id"] == sent["id"]]
    assert len(events) == 1 and events[0]["mailbox_id"] == box.mailbox_id
    data = events[0]["data"]
    assert data["message_id"] == sent["message_id"] and data["recipients"] == [box.email]
    assert data["subject"] == subject and data["smtp_reply"] == sent["smtp_reply"]

    replay = await tenant_client.post(
        f"/v1/mailboxes/{box.mailbox_id}/send",
        json={
            "to": [f"Myself <{box.email}>"],
            "subject": subject,
            "text": "See you on Friday.",
            "sent_copy": False,
        },
        headers={"Idempotency-Key": subject.replace(" ", "-")},
    )
    assert replay.headers["idempotent-replayed"] == "true" and replay.json()["state"] == "sent"
    await asyncio.sleep(0.5)
    assert len([m for m in smtp.handler.messages if subject.encode() in m.data]) == 1  # sent once


async def test_a_permanent_refusal_fails_with_the_servers_words(
    tenant_client: httpx.AsyncClient, box: Box, smtp: SubmissionServer, worker: SendWorker
) -> None:
    smtp.handler.script("DATA", "550 5.7.1 Message rejected as spam by the content filter")
    try:
        queued = await tenant_client.post(
            f"/v1/mailboxes/{box.mailbox_id}/send",
            json={"to": [box.email], "subject": "Cheap watches", "text": "Buy now."},
        )
        assert queued.status_code == 202, queued.text
        failed = await until_done(tenant_client, queued.headers["location"])
    finally:
        smtp.handler.reset()
    assert failed["state"] == "failed", failed
    error = failed["last_error"]
    assert error["smtp_code"] == 550 and error["temporary"] is False
    assert "rejected as spam by the content filter" in error["server_said"]
    events = [
        e
        for e in await events_of(tenant_client, "message.send_failed")
        if e["data"]["send_id"] == failed["id"]
    ]
    assert len(events) == 1 and "content filter" in events[0]["data"]["error"]["server_said"]
    outbox = await tenant_client.get(f"/v1/mailboxes/{box.mailbox_id}/outbox", params={"state": "failed"})
    assert [item["id"] for item in outbox.json()["items"]] == [failed["id"]]
