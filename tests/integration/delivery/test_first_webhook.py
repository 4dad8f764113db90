"""The reported case end to end, on the real Dovecot, SQLite and PostgreSQL: two messages arrive
before the tenant's first webhook, then a webhook subscribes to ``message.received``. The
events are accepted by the consumer that owns them (the pull reader, or the new endpoint with
``backfill``), their after-processing (mark_read) runs, and the dashboard stops counting them."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import httpx
import pytest

from mailport.api import create_app
from mailport.bootstrap import Services
from mailport.sync import Orchestrator
from tests.fixtures.api import BASE_URL, TenantHandle, create_tenant
from tests.fixtures.webhook_receiver import MakeDispatcher, WebhookReceiver
from tests.integration.sync.conftest import Bed, make_message, wait_for
from tests.mailstack.dovecot import Dovecot

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
FIGURE = re.compile(r'data-testid="(waiting|unclaimed)"[^>]*>(\d+) ')


@pytest.fixture
async def tenant(delivery_services: Services) -> TenantHandle:
    return await create_tenant(delivery_services, "first-webhook")


@pytest.fixture
async def bed(
    delivery_services: Services, dovecot: Dovecot, password_user: tuple[str, str], tenant: TenantHandle
) -> Bed:
    return Bed(delivery_services, dovecot, password_user[0], password_user[1], tenant.id)


@pytest.fixture
async def browser(delivery_services: Services, tenant: TenantHandle) -> AsyncIterator[httpx.AsyncClient]:
    """The dashboard, signed in with the tenant's key."""
    app = create_app(services=delivery_services)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as client:
        token = CSRF.search((await client.get("/signin")).text)
        assert token is not None
        signed = await client.post("/signin", data={"csrf": token.group(1), "api_key": tenant.api_key})
        assert signed.status_code == 303, signed.text
        yield client


async def dashboard_figures(browser: httpx.AsyncClient) -> dict[str, int]:
    page = await browser.get("/")
    assert page.status_code == 200, page.text[:300]
    return {name: int(count) for name, count in FIGURE.findall(page.text)}


@pytest.fixture
async def watching(bed: Bed) -> AsyncIterator[tuple[Bed, str]]:
    """A mark_read mailbox, watched, with two messages ingested (and no webhook yet)."""
    mailbox = await bed.add_mailbox(after_processing="mark_read")
    orchestrator: Orchestrator = bed.orchestrator()
    await orchestrator.start()
    try:
        for n in range(2):
            await asyncio.to_thread(bed.dovecot.deliver, bed.user, make_message(f"early {n}"))

        async def two_received() -> bool:
            return len(await bed.received(mailbox.id)) == 2

        await wait_for(two_received, timeout=15)
        yield bed, mailbox.id
    finally:
        await orchestrator.stop()


async def seen_count(bed: Bed) -> int:
    result = await asyncio.to_thread(
        bed.dovecot.doveadm, "fetch", "-u", bed.user, "flags", "mailbox", "INBOX", "all"
    )
    return result.stdout.decode().count("\\Seen")


async def test_the_pull_reader_owns_them_and_its_cursor_accepts_them(
    watching: tuple[Bed, str],
    api: httpx.AsyncClient,
    browser: httpx.AsyncClient,
    webhook_receiver: WebhookReceiver,
    make_dispatcher: MakeDispatcher,
) -> None:
    bed, mailbox_id = watching
    assert await dashboard_figures(browser) == {"unclaimed": 3}  # mailbox.connected + 2 messages
    first = (await api.get("/v1/events")).json()  # the application reads with the pull API
    assert [i["type"] for i in first["items"]].count("message.received") == 2
    assert await dashboard_figures(browser) == {"waiting": 3}  # now owed to the pull reader
    made = await api.post("/v1/webhooks", json={"url": webhook_receiver.url, "events": ["message.received"]})
    assert made.status_code == 201, made.text
    await make_dispatcher()
    await asyncio.sleep(0.5)
    assert webhook_receiver.requests == []  # they are not the new endpoint's
    assert await seen_count(bed) == 0  # nothing accepted yet: the messages stay untouched
    await api.get("/v1/events", params={"after": first["next_cursor"]})  # done with the page

    async def both_read() -> bool:
        return await seen_count(bed) == 2

    await wait_for(both_read, timeout=10, interval=0.1)
    assert await dashboard_figures(browser) == {}
    health = (await api.get(f"/v1/mailboxes/{mailbox_id}/health")).json()
    assert health["queue_size"] == 0


async def test_a_webhook_created_with_backfill_takes_them(
    watching: tuple[Bed, str],
    api: httpx.AsyncClient,
    browser: httpx.AsyncClient,
    webhook_receiver: WebhookReceiver,
    make_dispatcher: MakeDispatcher,
) -> None:
    bed, mailbox_id = watching
    await make_dispatcher()
    made = await api.post(
        "/v1/webhooks",
        json={"url": webhook_receiver.url, "events": ["message.received"], "backfill": True},
    )
    assert made.status_code == 201, made.text
    received = await webhook_receiver.wait_for(2)
    assert sorted(r.json()["data"]["subject"] for r in received) == ["early 0", "early 1"]

    async def both_read() -> bool:
        return await seen_count(bed) == 2

    await wait_for(both_read, timeout=10, interval=0.1)
    # mailbox.connected is no endpoint's type and no pull reader exists: nobody's, not waiting
    assert await dashboard_figures(browser) == {"unclaimed": 1}
    health = (await api.get(f"/v1/mailboxes/{mailbox_id}/health")).json()
    assert health["queue_size"] == 0
