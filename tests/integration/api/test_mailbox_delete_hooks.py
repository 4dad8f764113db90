"""``MailboxService.before_delete``: what runs before a mailbox is deleted (the service graph
registers the withdrawal of its provider push) is best effort — a hook that fails or hangs is
logged and the deletion goes on; an unknown or another tenant's mailbox reaches no hook."""

from __future__ import annotations

import asyncio
import logging
import time

import httpx
import pytest

from mailport.errors import NotFoundError
from mailport.mailboxes.models import Mailbox
from mailport.mailboxes.schemas import MailboxCreate
from mailport.mailboxes.service import MailboxService
from mailport.services import Services
from tests.fixtures.api import NewTenantClient, SecretWatch, TenantHandle
from tests.integration.api.helpers import mailbox_body


async def _created(client: httpx.AsyncClient, watch: SecretWatch) -> str:
    body = mailbox_body()
    watch.add(body["password"])
    response = await client.post("/v1/mailboxes", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def test_hooks_see_the_mailbox_and_an_imap_mailbox_deletes_cleanly(
    services: Services, tenant_client: httpx.AsyncClient, secret_watch: SecretWatch
) -> None:
    seen: list[Mailbox] = []

    async def hook(mailbox: Mailbox) -> None:
        seen.append(mailbox)

    remove = services.mailboxes.before_delete(hook)  # beside the service graph's own
    mailbox_id = await _created(tenant_client, secret_watch)
    response = await tenant_client.delete(f"/v1/mailboxes/{mailbox_id}")
    remove()
    assert response.status_code == 204, response.text
    assert [m.id for m in seen] == [mailbox_id]
    assert (await tenant_client.get(f"/v1/mailboxes/{mailbox_id}")).status_code == 404


async def test_a_failing_or_hanging_hook_does_not_block_the_deletion(
    services: Services, tenant: TenantHandle, caplog: pytest.LogCaptureFixture
) -> None:
    mailboxes = MailboxService(services.mailboxes.repository, guard=services.guard, cleanup_seconds=0.2)
    never = asyncio.Event()

    async def hangs(mailbox: Mailbox) -> None:
        await never.wait()

    async def fails(mailbox: Mailbox) -> None:
        raise RuntimeError("provider said: token=very-secret-value")

    mailboxes.before_delete(hangs)
    mailboxes.before_delete(fails)
    caplog.set_level(logging.WARNING, logger="mailport.mailboxes.service")
    for _ in range(2):
        body = MailboxCreate.model_validate(mailbox_body())
        created = await services.mailboxes.create_from(tenant.id, body)
        started = time.monotonic()
        await mailboxes.delete(tenant.id, created.id)
        assert time.monotonic() - started < 5
        with pytest.raises(NotFoundError):
            await services.mailboxes.get(tenant.id, created.id)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "took over" in logged and "RuntimeError" in logged
    assert "very-secret-value" not in logged


async def test_an_unknown_or_foreign_mailbox_reaches_no_hook(
    services: Services,
    tenant_client: httpx.AsyncClient,
    new_tenant_client: NewTenantClient,
    secret_watch: SecretWatch,
) -> None:
    seen: list[str] = []

    async def hook(mailbox: Mailbox) -> None:
        seen.append(mailbox.id)

    remove = services.mailboxes.before_delete(hook)
    try:
        mailbox_id = await _created(tenant_client, secret_watch)
        _, other = await new_tenant_client()
        assert (await other.delete(f"/v1/mailboxes/{mailbox_id}")).status_code == 404
        assert (await tenant_client.delete("/v1/mailboxes/mbx_nosuchmailbox")).status_code == 404
    finally:
        remove()
    assert seen == []
    assert (await tenant_client.get(f"/v1/mailboxes/{mailbox_id}")).status_code == 200
