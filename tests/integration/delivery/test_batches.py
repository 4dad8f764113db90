"""Batched webhook delivery (an endpoint's ``batch_size`` > 1) against a real HTTP receiver, on
SQLite and PostgreSQL: consecutive events of one mailbox per request, in order, signed, retried
as a whole, on the database path and the in-memory fast path, with dead letters and replay; and
``batch_size`` 1 sends exactly today's request."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from mailport.bootstrap import Services
from mailport.delivery import RetryPolicy
from mailport.delivery.models import DeliveryStatus
from mailport.delivery.schemas import WebhookUpdate
from tests.fixtures.webhook_receiver import MakeDispatcher, Received, WebhookReceiver
from tests.integration.delivery.test_dispatch import (
    _append,
    _dead_letters,
    _endpoint,
    _eventually,
    _keep_accepting_other_mail,
    _tenant,
)


def _events(request: Received) -> list[dict[str, Any]]:
    body = request.json()
    assert body["type"] == "batch" and set(body) == {"type", "events"}, body
    events: list[dict[str, Any]] = body["events"]
    return events


def _check_composition(requests: list[Received], size: int) -> None:
    """Each request: 1..size events of one mailbox, ascending seq, ``webhook-id`` from its ends."""
    for request in requests:
        events = _events(request)
        assert 1 <= len(events) <= size
        assert len({e["mailbox_id"] for e in events}) == 1, "a batch mixed mailboxes"
        seqs = [e["seq"] for e in events]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        assert request.headers["webhook-id"] == f"batch_{events[0]['id']}_{events[-1]['id']}"


async def _wait_for_events(receiver: WebhookReceiver, count: int, timeout: float = 10.0) -> None:
    """Wait until 2xx-answered requests carried ``count`` events, then a little more (nothing
    else may arrive)."""

    async def arrived() -> bool:
        return sum(len(ids) for ids in _delivered_per_mailbox(receiver).values()) >= count

    await _eventually(arrived, timeout=timeout)
    await asyncio.sleep(0.3)


def _delivered_per_mailbox(receiver: WebhookReceiver) -> dict[str, list[str]]:
    """Event ids per mailbox, in the order the 2xx-answered requests carried them."""
    got: dict[str, list[str]] = defaultdict(list)
    for request in receiver.succeeded():
        for event in _events(request):
            got[event["mailbox_id"]].append(event["id"])
    return got


async def test_batch_size_one_sends_exactly_the_single_event_request(
    delivery_services: Services, webhook_receiver: WebhookReceiver, make_dispatcher: MakeDispatcher
) -> None:
    services = delivery_services
    tenant_id = await _tenant(services)
    _, secret = await _endpoint(services, tenant_id, webhook_receiver.url, batch_size=1)
    await make_dispatcher()
    event = await _append(services, tenant_id, "mbx_1", 1)
    (received,) = await webhook_receiver.wait_for(1)
    expected = json.dumps(event.to_dict(), ensure_ascii=False, separators=(",", ":")).encode()
    assert received.body == expected
    assert received.headers["webhook-id"] == event.id
    assert Webhook(secret).verify(received.body, received.headers)["id"] == event.id


async def test_a_backlog_goes_out_in_signed_batches_of_one_mailbox_each_in_order(
    delivery_services: Services, webhook_receiver: WebhookReceiver, make_dispatcher: MakeDispatcher
) -> None:
    services = delivery_services
    tenant_id = await _tenant(services)
    _, secret = await _endpoint(services, tenant_id, webhook_receiver.url, batch_size=10)
    sent: dict[str, list[str]] = defaultdict(list)
    for n in range(45):  # queued before the dispatcher starts: the database path reads a backlog
        mailbox = f"mbx_{n % 3}"
        sent[mailbox].append((await _append(services, tenant_id, mailbox, n)).id)
    await make_dispatcher()

    await _wait_for_events(webhook_receiver, 45)
    requests = webhook_receiver.succeeded()
    _check_composition(requests, 10)
    assert len(requests) < 45 // 2  # batched (15 events per mailbox: at least 2 requests each)
    for request in requests:
        assert Webhook(secret).verify(request.body, request.headers) == request.json()
    assert _delivered_per_mailbox(webhook_receiver) == sent


async def test_the_fast_path_batches_what_queues_up_while_a_request_is_in_flight(
    delivery_services: Services, make_receiver: Any, make_dispatcher: MakeDispatcher
) -> None:
    services = delivery_services
    receiver: WebhookReceiver = make_receiver(delay_seconds=0.05)
    tenant_id = await _tenant(services)
    await _endpoint(services, tenant_id, receiver.url, batch_size=25)
    await make_dispatcher()
    first = await _append(services, tenant_id, "mbx_a", 0)
    await receiver.wait_for(1)  # delivered: the worker now takes new deliveries from memory
    sent: dict[str, list[str]] = {"mbx_a": [first.id], "mbx_b": []}
    for n in range(1, 61):
        mailbox = "mbx_a" if n % 4 else "mbx_b"
        sent[mailbox].append((await _append(services, tenant_id, mailbox, n)).id)

    await _wait_for_events(receiver, 61, timeout=20)
    _check_composition(receiver.succeeded(), 25)
    assert len(receiver.requests) < 61
    assert _delivered_per_mailbox(receiver) == sent


async def test_a_failing_batch_is_retried_whole_and_holds_back_its_mailbox_only(
    delivery_services: Services, webhook_receiver: WebhookReceiver, make_dispatcher: MakeDispatcher
) -> None:
    services = delivery_services
    tenant_id = await _tenant(services)
    endpoint_id, _ = await _endpoint(services, tenant_id, webhook_receiver.url, batch_size=5)
    webhook_receiver.fail_marker = b"poison"
    sent: dict[str, list[str]] = defaultdict(list)
    for n in range(12):
        sent["mbx_a"].append(
            (await _append(services, tenant_id, "mbx_a", n, key="poison" if n == 2 else "k")).id
        )
        sent["mbx_b"].append((await _append(services, tenant_id, "mbx_b", n)).id)
    await make_dispatcher()
    await webhook_receiver.wait_for(3)  # mbx_b: 12 events in batches of 5

    async def retried() -> bool:
        return len([r for r in webhook_receiver.requests if r.status == 500]) >= 3

    await _eventually(retried)
    assert _delivered_per_mailbox(webhook_receiver) == {"mbx_b": sent["mbx_b"]}
    failed = [r for r in webhook_receiver.requests if r.status == 500]
    _check_composition(failed, 5)
    for request in failed:  # the same head every time, the poison inside: retried as a whole
        ids = [e["id"] for e in _events(request)]
        assert ids[0] == sent["mbx_a"][0] and sent["mbx_a"][2] in ids
    page = await services.webhooks.deliveries(tenant_id, endpoint_id, cursor=None, limit=50)
    head = {d.event_id: d for d in page.items}
    first_batch = [head[i] for i in sent["mbx_a"][:5]]
    assert all(d.status is DeliveryStatus.PENDING and d.attempts >= 2 for d in first_batch)
    times = {tuple(a.attempted_at for a in d.attempt_log[:2]) for d in first_batch}
    assert len(times) == 1  # one attempt row per delivery for each request it went out in
    assert all(a.result == "http_error" and a.status_code == 500 for d in first_batch for a in d.attempt_log)

    webhook_receiver.fail_marker = None  # the receiver recovers: the rest follows, in order

    await _wait_for_events(webhook_receiver, 24, timeout=15)
    assert _delivered_per_mailbox(webhook_receiver) == sent  # each event once, in order
    _check_composition(webhook_receiver.succeeded(), 5)


@pytest.mark.serial  # the endpoint stays enabled only while other mail succeeds within 0.4 s
async def test_dead_letters_in_batches_and_their_replay(
    delivery_services: Services, webhook_receiver: WebhookReceiver, make_dispatcher: MakeDispatcher
) -> None:
    services = delivery_services
    tenant_id = await _tenant(services)
    endpoint_id, secret = await _endpoint(services, tenant_id, webhook_receiver.url, batch_size=10)
    webhook_receiver.fail_marker = b"poison"
    policy = RetryPolicy(first_delay=0.05, max_delay=0.1, give_up_after=0.4)
    ids = [(await _append(services, tenant_id, "mbx_1", n, key="poison")).id for n in range(4)]
    await make_dispatcher(policy=policy)
    await _keep_accepting_other_mail(services, tenant_id)
    await _dead_letters(services, tenant_id, endpoint_id, 4)
    webhook_receiver.fail_marker = None
    before = len(webhook_receiver.succeeded())
    assert await services.webhooks.replay(tenant_id, endpoint_id, delivery_id=None) == 4
    got = await webhook_receiver.wait_for(before + 1)
    replayed = [e["id"] for r in got[before:] for e in _events(r)]
    assert replayed == ids  # one mailbox's dead letters, in order, in one batch
    assert Webhook(secret).verify(got[before].body, got[before].headers)["type"] == "batch"

    async def delivered() -> bool:
        page = await services.webhooks.deliveries(tenant_id, endpoint_id, cursor=None, limit=10)
        return all(d.status is DeliveryStatus.DELIVERED for d in page.items)

    await _eventually(delivered)


async def test_a_changed_batch_size_applies_to_the_next_requests(
    delivery_services: Services, webhook_receiver: WebhookReceiver, make_dispatcher: MakeDispatcher
) -> None:
    services = delivery_services
    tenant_id = await _tenant(services)
    endpoint_id, _ = await _endpoint(services, tenant_id, webhook_receiver.url)
    await make_dispatcher()
    single = await _append(services, tenant_id, "mbx_1", 0)
    (first,) = await webhook_receiver.wait_for(1)
    assert first.headers["webhook-id"] == single.id and first.json()["id"] == single.id
    changed = await services.webhooks.update(tenant_id, endpoint_id, WebhookUpdate(batch_size=3))
    assert changed.batch_size == 3
    event = await _append(services, tenant_id, "mbx_1", 1)  # the fan-out sees the endpoint changed
    _, second = await webhook_receiver.wait_for(2)
    assert [e["id"] for e in _events(second)] == [event.id]
