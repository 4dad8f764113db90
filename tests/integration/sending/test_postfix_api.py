"""The HTTP API's raw form through a real MTA: ``POST …/send`` with ``Content-Type:
message/rfc822`` -> the send worker -> Postfix -> Dovecot. Bcc recipients get the message, and no
copy that Postfix delivered carries the Bcc header."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx

from mailport.sending.worker import SendWorker
from tests.integration.sending.outbox_bed import Box
from tests.integration.sending.postfix_bed import (
    Account,
    database_url,
    delivered,
    recipient,
    sender,
    settings,
    worker,
)
from tests.mailstack.dovecot import Dovecot

__all__ = ["database_url", "recipient", "sender", "settings", "worker"]


async def until_done(client: httpx.AsyncClient, location: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        got: dict[str, Any] = (await client.get(location)).json()
        if got["state"] in ("sent", "failed", "cancelled") or time.monotonic() > deadline:
            return got
        await asyncio.sleep(0.1)


async def test_a_raw_message_with_bcc_through_the_api_and_postfix(
    tenant_client: httpx.AsyncClient, sender: Box, recipient: Account, dovecot: Dovecot, worker: SendWorker
) -> None:
    hidden = Account(*dovecot.dyn_user(f"b{uuid.uuid4().hex[:10]}"))
    message_id = f"{uuid.uuid4().hex}@example.test"
    raw = (
        f"From: Desk <{sender.email}>\r\n"
        f"To: Rita <{recipient.email}>\r\n"
        f"Bcc: {hidden.email}\r\n"
        f"Subject: Minutes\r\n"
        f"Message-ID: <{message_id}>\r\n"
        f"MIME-Version: 1.0\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\n"
        f"\r\n"
        f"The minutes of today's meeting.\r\n"
    ).encode()
    queued = await tenant_client.post(
        f"/v1/mailboxes/{sender.mailbox_id}/send",
        content=raw,
        headers={"Content-Type": "message/rfc822"},
    )
    assert queued.status_code == 202, queued.text
    assert queued.json()["message_id"] == message_id
    assert sorted(queued.json()["recipients"]) == sorted([recipient.email, hidden.email])
    sent = await until_done(tenant_client, queued.headers["location"])
    assert sent["state"] == "sent", sent
    assert sent["smtp_reply"].startswith("250 2.0.0 Ok: queued as ")

    for account in (recipient, hidden):
        copy = delivered(dovecot, account, message_id)
        assert b"The minutes of today's meeting." in copy
        headers = copy.split(b"\r\n\r\n", 1)[0]
        assert b"\r\nBcc:" not in headers and hidden.email.encode() not in headers
