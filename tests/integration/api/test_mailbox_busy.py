"""Live requests under load, against the real Dovecot: many concurrent requests on one mailbox
answer 200 or the documented 503 ``mailbox_busy`` with Retry-After, never anything else; the
pool never opens more than its bound; and the mailbox's watcher, on its own IDLE connection,
still delivers new mail in time while 100 requests hammer the pool."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter

import httpx
import pytest

from mailport.bootstrap import Services
from mailport.config import Settings
from mailport.connectors.base import Connector
from mailport.mailboxes.models import Mailbox
from tests.fixtures.api import TenantHandle
from tests.integration.sync.conftest import Bed, make_message, wait_for
from tests.mailstack.dovecot import Dovecot

CONCURRENT = 100


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"allowed_hosts": ["127.0.0.1"]})


def record_connections(services: Services) -> list[Connector]:
    """Every connector the command pool makes from now on (and the most it had open at once)."""
    pool = services.mail.pool
    made: list[Connector] = []
    connect = pool.connect

    def recording(mailbox: Mailbox) -> Connector:
        connector = connect(mailbox)
        made.append(connector)
        return connector

    pool.connect = recording
    return made


def assert_documented(answer: httpx.Response) -> None:
    if answer.status_code == 200:
        return
    assert answer.status_code == 503, answer.text
    body = answer.json()
    assert body["error"] == "mailbox_busy" and body["hint"], body
    assert int(answer.headers["Retry-After"]) >= 1


async def test_concurrent_requests_get_200_or_mailbox_busy(
    services: Services, dovecot: Dovecot, tenant: TenantHandle, tenant_client: httpx.AsyncClient
) -> None:
    user, password = dovecot.dyn_user(f"busy{uuid.uuid4().hex[:10]}")
    mailbox = await Bed(services, dovecot, user, password, tenant.id).add_mailbox()
    made = record_connections(services)
    pool = services.mail.pool
    most = 0

    async def one() -> httpx.Response:
        nonlocal most
        answer = await tenant_client.get(f"/v1/mailboxes/{mailbox.id}/folders")
        sizes = pool.sizes(mailbox.id)
        most = max(most, sizes["idle"] + sizes["in_use"] + sizes["connecting"])
        return answer

    # a patient pool: everyone is served
    answers = await asyncio.gather(*(one() for _ in range(CONCURRENT)))
    assert Counter(a.status_code for a in answers) == {200: CONCURRENT}
    assert len(made) == 2 and most <= 2

    # an impatient one: some are refused, with the documented answer only
    pool.wait = 0.02
    answers = await asyncio.gather(*(one() for _ in range(CONCURRENT)))
    for answer in answers:
        assert_documented(answer)
    assert len(made) == 2 and most <= 2

    # both connections held elsewhere (not left to the timing of 100 requests): every request
    # waits its 20 ms and gets the documented 503; once they are free, the next is served
    stored = await services.mailboxes.get(tenant.id, mailbox.id)
    async with pool.borrow(stored), pool.borrow(stored):
        answers = await asyncio.gather(*(one() for _ in range(CONCURRENT // 10)))
    assert Counter(a.status_code for a in answers) == {503: CONCURRENT // 10}
    for answer in answers:
        assert_documented(answer)
    assert (await one()).status_code == 200
    assert len(made) == 2 and most <= 2


@pytest.mark.serial
async def test_the_watcher_delivers_in_time_while_100_requests_load_the_mailbox(
    services: Services, dovecot: Dovecot, tenant: TenantHandle, tenant_client: httpx.AsyncClient
) -> None:
    user, password = dovecot.dyn_user(f"load{uuid.uuid4().hex[:10]}")
    bed = Bed(services, dovecot, user, password, tenant.id)
    mailbox = await bed.add_mailbox()
    made = record_connections(services)
    orchestrator = bed.orchestrator()
    await orchestrator.start()
    try:

        async def idling() -> bool:
            watcher = orchestrator.watchers.get(mailbox.id)
            return watcher is not None and watcher.status.state == "connected" and watcher.status.push

        await wait_for(idling, timeout=10)
        watcher = orchestrator.watchers[mailbox.id]
        answers: list[httpx.Response] = []
        stop = asyncio.Event()

        async def client() -> None:
            while not stop.is_set():
                answers.append(await tenant_client.get(f"/v1/mailboxes/{mailbox.id}/folders"))

        clients = [asyncio.create_task(client()) for _ in range(CONCURRENT)]
        try:
            await wait_for(lambda: _true(len(answers) >= CONCURRENT), timeout=30)  # the load is on
            started = time.monotonic()
            await asyncio.to_thread(dovecot.deliver, user, make_message("during the load"))
            received = await wait_for(lambda: bed.received(mailbox.id), timeout=15, interval=0.01)
            latency = time.monotonic() - started
        finally:
            stop.set()
            await asyncio.gather(*clients)
        assert received[0].payload["subject"] == "during the load"
        # Dovecot announces new mail to IDLE after 500 ms; the rest is generous for a machine that
        # also runs the 100 clients (a blocked watcher would deliver only after the load stops)
        assert latency < 5.0, f"{latency:.3f} s"
        for answer in answers:
            assert_documented(answer)
        assert sum(1 for a in answers if a.status_code == 200) >= CONCURRENT
        # the pool's own connections, never the watcher's
        assert len(made) == 2 and watcher.connector not in made
        assert watcher.status.state == "connected" and watcher.status.push
    finally:
        await orchestrator.stop()


async def _true(value: bool) -> bool:
    return value
