"""The dashboard's outbox page over HTTP (ASGI) on the real store and Dovecot: linked from the
mailbox card and the message list, each send with its state, recipients, subject and last error
in the server's words, the state filter, cancel only with the CSRF token, and another tenant's
mailbox a 404."""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update

from mailport.bootstrap import Services
from mailport.config import Settings
from mailport.sending.models import SendError, SendRequest
from mailport.store.tables import outbound_messages
from tests.e2e.web.api.test_mail_pages import signed_in
from tests.fixtures.api import TenantHandle, create_tenant
from tests.integration.sending.outbox_bed import Box, make_box
from tests.mailstack.dovecot import Dovecot
from tests.mailstack.smtp import SubmissionServer


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"allowed_hosts": ["127.0.0.1"]})


@pytest.fixture
async def box(services: Services, tenant: TenantHandle, dovecot: Dovecot, smtp: SubmissionServer) -> Box:
    return await make_box(services, dovecot, smtp.port, tenant_id=tenant.id)


def rows(page: str) -> dict[str, str]:
    """send id -> its state, in the page's order."""
    return dict(re.findall(r'data-testid="send" data-send-id="([^"]+)" data-state="(\w+)"', page))


async def test_the_outbox_lists_sends_with_their_errors_and_cancels(
    operator: httpx.AsyncClient, box: Box, services: Services
) -> None:
    send = services.sending.send
    queued = (
        await send(
            box.tenant_id,
            box.mailbox_id,
            SendRequest(to=("Ann <ann@example.test>",), subject="Angebot <3>", text="x"),
        )
    ).send
    later = datetime.now(UTC) + timedelta(days=1)
    scheduled = (
        await send(
            box.tenant_id,
            box.mailbox_id,
            SendRequest(to=("bob@example.test",), subject="Später", text="x", send_at=later),
        )
    ).send
    failed = (
        await send(
            box.tenant_id,
            box.mailbox_id,
            SendRequest(to=("carl@example.test",), subject="Abgelehnt", text="x"),
        )
    ).send
    refusal = SendError(
        "smtp_rejected",
        "the server refused the message",
        550,
        "5.7.1 <carl@example.test>: Relay access denied",
        False,
    )
    async with services.database.transaction() as conn:
        await conn.execute(
            update(outbound_messages)
            .where(outbound_messages.c.id == failed.id)
            .values(state="failed", last_error=json.dumps(refusal.to_json()), attempts=1)
        )  # fmt: skip

    dashboard = await operator.get("/")
    assert f'href="/mailboxes/{box.mailbox_id}/outbox"' in dashboard.text
    messages = await operator.get(f"/mailboxes/{box.mailbox_id}/messages")
    assert f'href="/mailboxes/{box.mailbox_id}/outbox"' in messages.text

    page = await operator.get(f"/mailboxes/{box.mailbox_id}/outbox")
    assert page.status_code == 200, page.text[:500]
    assert list(rows(page.text).items()) == [
        (failed.id, "failed"),
        (scheduled.id, "scheduled"),
        (queued.id, "queued"),
    ]
    text = html.unescape(page.text)
    assert "Angebot <3>" in text and "<3>" not in page.text  # escaped
    assert "ann@example.test" in text and box.email in text
    assert "smtp_rejected</strong> 550: 5.7.1 <carl@example.test>: Relay access denied" in text
    cancel_forms = re.findall(r'action="(/mailboxes/[^"]+/outbox/(snd_\w+)/cancel)"', page.text)
    assert sorted(send_id for _, send_id in cancel_forms) == sorted(
        [queued.id, scheduled.id]
    )  # not the failed one

    only_failed = await operator.get(f"/mailboxes/{box.mailbox_id}/outbox", params={"state": "failed"})
    assert list(rows(only_failed.text)) == [failed.id]
    none_sent = await operator.get(f"/mailboxes/{box.mailbox_id}/outbox", params={"state": "sent"})
    assert rows(none_sent.text) == {} and 'data-testid="empty"' in none_sent.text

    action = dict((send_id, url) for url, send_id in cancel_forms)[queued.id]
    token = operator.headers.pop("X-CSRF-Token")
    refused = await operator.post(action)
    assert (
        refused.status_code == 403
        and (await services.sending.get(box.tenant_id, box.mailbox_id, queued.id)).state.value == "queued"
    )
    operator.headers["X-CSRF-Token"] = token
    done = await operator.post(action)
    assert done.status_code == 303 and done.headers["location"].endswith(
        f"/mailboxes/{box.mailbox_id}/outbox"
    )
    after = await operator.get(f"/mailboxes/{box.mailbox_id}/outbox")
    assert rows(after.text)[queued.id] == "cancelled"
    again = await operator.post(action)
    assert again.status_code == 409 and "send_not_cancellable" in again.text


async def test_another_tenants_outbox_is_a_404(app: FastAPI, box: Box, services: Services) -> None:
    queued = (
        await services.sending.send(
            box.tenant_id, box.mailbox_id, SendRequest(to=("a@example.test",), text="x")
        )
    ).send
    other = await create_tenant(services)
    stranger = await signed_in(app, other.api_key)
    try:
        page = await stranger.get(f"/mailboxes/{box.mailbox_id}/outbox")
        assert page.status_code == 404
        cancel = await stranger.post(f"/mailboxes/{box.mailbox_id}/outbox/{queued.id}/cancel")
        assert cancel.status_code == 404
    finally:
        await stranger.aclose()
    assert (await services.sending.get(box.tenant_id, box.mailbox_id, queued.id)).state.value == "queued"
