"""The ingestion API over HTTP: health, statistics, raw source, attachments, metrics; tenants
see only their own messages; an oversized message has no raw source (a clear 404)."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage

import httpx

from mailport.bootstrap import Services
from tests.fixtures.api import NewTenantClient, TenantHandle
from tests.integration.sync.conftest import Bed, wait_for
from tests.mailstack.dovecot import Dovecot


def _with_attachment(subject: str) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "a@example.test", "b@example.test", subject
    msg.set_content("see the attachment")
    msg.add_attachment(b"%PDF-1.4 fake", maintype="application", subtype="pdf", filename="report 1.pdf")
    return msg.as_bytes().replace(b"\n", b"\r\n")


async def test_health_stats_raw_and_attachments(
    services: Services,
    dovecot: Dovecot,
    password_user: tuple[str, str],
    tenant: TenantHandle,
    tenant_client: httpx.AsyncClient,
    new_tenant_client: NewTenantClient,
) -> None:
    bed = Bed(services, dovecot, password_user[0], password_user[1], tenant.id)
    mailbox = await bed.add_mailbox()
    await tenant_client.get("/v1/events")  # a pull reader: the events are owed to it
    orchestrator = bed.orchestrator()
    await orchestrator.start()
    try:
        raw = _with_attachment("with a pdf")
        await asyncio.to_thread(dovecot.deliver, bed.user, raw)
        got = await wait_for(lambda: bed.received(mailbox.id), timeout=10)
        message_id = got[0].payload["id"]
        health = (await tenant_client.get(f"/v1/mailboxes/{mailbox.id}/health")).json()
        assert health["status"] == "connected" and health["watcher"] == "connected"
        assert health["processed_24h"] == 1 and health["failed_24h"] == 0
        assert health["queue_size"] == 2  # mailbox.connected + message.received, not accepted yet
        assert health["avg_processing_ms"] is not None and health["last_connected_at"]
        summary = (await tenant_client.get("/v1/health")).json()
        assert summary["status"] == "ok" and summary["by_status"] == {"connected": 1}
        stats = (await tenant_client.get("/v1/stats")).json()
        assert stats["processed_24h"] == 1 and stats["mailboxes"][0]["mailbox_id"] == mailbox.id

        fetched = await tenant_client.get(f"/v1/mailboxes/{mailbox.id}/messages/{message_id}/raw")
        assert fetched.status_code == 200 and fetched.headers["content-type"] == "message/rfc822"
        assert fetched.content.replace(b"\r\n", b"\n") == raw.replace(b"\r\n", b"\n")
        attachment = await tenant_client.get(
            f"/v1/mailboxes/{mailbox.id}/messages/{message_id}/attachments/0"
        )
        assert attachment.status_code == 200 and attachment.content == b"%PDF-1.4 fake"
        assert attachment.headers["content-type"] == "application/pdf"
        assert 'filename="report 1.pdf"' in attachment.headers["content-disposition"]
        missing = await tenant_client.get(f"/v1/mailboxes/{mailbox.id}/messages/{message_id}/attachments/3")
        assert missing.status_code == 404 and missing.json()["error"] == "not_found"

        _, other = await new_tenant_client()
        foreign = await other.get(f"/v1/mailboxes/{mailbox.id}/messages/{message_id}/raw")
        assert foreign.status_code == 404
        assert (await other.get(f"/v1/mailboxes/{mailbox.id}/health")).status_code == 404
    finally:
        await orchestrator.stop()


async def test_an_oversized_message_is_delivered_headers_only(
    services: Services,
    dovecot: Dovecot,
    password_user: tuple[str, str],
    tenant: TenantHandle,
    tenant_client: httpx.AsyncClient,
) -> None:
    services.settings.max_message_bytes = 4096
    bed = Bed(services, dovecot, password_user[0], password_user[1], tenant.id)
    mailbox = await bed.add_mailbox()
    orchestrator = bed.orchestrator()
    await orchestrator.start()
    try:
        big = _with_attachment("too big").replace(b"see the attachment", b"x" * 10_000)
        await asyncio.to_thread(dovecot.deliver, bed.user, big)
        got = await wait_for(lambda: bed.received(mailbox.id), timeout=10)
    finally:
        await orchestrator.stop()
    data = got[0].payload
    assert data["subject"] == "too big" and data["truncated"] is True and data["oversized"] is True
    assert data["text"] is None and data["size"] > 10_000
    answer = await tenant_client.get(f"/v1/mailboxes/{mailbox.id}/messages/{data['id']}/raw")
    assert answer.status_code == 404 and answer.json()["error"] == "raw_not_stored"


async def test_metrics_are_exposed(tenant_client: httpx.AsyncClient) -> None:
    answer = await tenant_client.get("/metrics")
    assert answer.status_code == 200
    for name in (
        "mailport_connections",
        "mailport_messages_processed_total",
        "mailport_delivery_latency_seconds_bucket",
        "mailport_webhook_attempts_total",
        "mailport_token_refreshes_total",
        "mailport_queue_size",
    ):
        assert name in answer.text or name.removesuffix("_bucket") in answer.text
