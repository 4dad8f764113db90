"""Deleting a tenant runs the mailbox deletion hooks of each of its API mailboxes first (the
service graph's: the withdrawal of their Gmail watch / Graph subscriptions), several at a time
and bounded overall: a hook that hangs or fails never blocks the deletion. IMAP mailboxes asked
nothing of a provider and reach no hook. (Against the fakes: tests/integration/gmail and graph
``test_delete``.)"""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from mailport.errors import NotFoundError
from mailport.mailboxes.models import Mailbox
from mailport.mailboxes.schemas import MailboxCreate
from mailport.mailboxes.service import MailboxService
from mailport.services import Services
from mailport.tenants.service import TenantService
from tests.integration.api.helpers import mailbox_body


async def _api_mailbox(services: Services, tenant_id: str, connector: str, n: int) -> Mailbox:
    body = {"email": f"t{n}-{connector}@example.com", "auth_method": "oauth2", "connector": connector}
    return await services.mailboxes.create_from(tenant_id, MailboxCreate.model_validate(body))


async def test_a_tenants_api_mailboxes_are_cleaned_up_within_the_bound(
    services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    tenant, _ = await services.tenants.create_tenant("leaving")
    api = [await _api_mailbox(services, tenant.id, c, n) for n, c in enumerate(["graph", "gmail_api"] * 6)]
    imap = await services.mailboxes.create_from(tenant.id, MailboxCreate.model_validate(mailbox_body()))
    mailboxes = MailboxService(
        services.mailboxes.repository,
        guard=services.guard,
        cleanup_seconds=0.5,
        api_providers=services.mailboxes.api_providers,
    )
    tenants = TenantService(services.tenants.repository)
    tenants.before_delete(mailboxes.clean_up_tenant)
    seen: list[str] = []
    never = asyncio.Event()

    async def withdraw(mailbox: Mailbox) -> None:
        seen.append(mailbox.id)
        if mailbox.id == api[0].id:
            await never.wait()  # a provider that never answers
        if mailbox.id == api[1].id:
            raise RuntimeError("provider said: token=very-secret-value")

    mailboxes.before_delete(withdraw)
    caplog.set_level(logging.WARNING)
    started = time.monotonic()
    await tenants.delete(tenant.id)
    elapsed = time.monotonic() - started

    assert elapsed < 5, elapsed  # bounded by cleanup_seconds, not by the hanging provider
    assert sorted(seen) == sorted(m.id for m in api) and imap.id not in seen
    with pytest.raises(NotFoundError):
        await services.tenants.repository.get(tenant.id)
    for mailbox in [*api, imap]:
        with pytest.raises(NotFoundError):
            await services.mailboxes.repository.get_by_id(mailbox.id)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "RuntimeError" in logged and "took over" in logged
    assert "very-secret-value" not in logged


async def test_a_failing_tenant_hook_does_not_block_the_deletion_and_an_unknown_tenant_is_404(
    services: Services,
) -> None:
    tenant, _ = await services.tenants.create_tenant("leaving")
    tenants = TenantService(services.tenants.repository)
    calls: list[str] = []

    async def fails(tenant_id: str) -> None:
        calls.append(tenant_id)
        raise RuntimeError("boom")

    tenants.before_delete(fails)
    with pytest.raises(NotFoundError):
        await tenants.delete("ten_nosuchtenant")
    await tenants.delete(tenant.id)
    assert calls == [tenant.id]
    with pytest.raises(NotFoundError):
        await services.tenants.repository.get(tenant.id)
