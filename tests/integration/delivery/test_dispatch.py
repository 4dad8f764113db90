"""The webhook dispatcher against a real HTTP receiver, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict

import pytest
from standardwebhooks.webhooks import Webhook

from mailport.bootstrap import Services
from mailport.delivery import RetryPolicy
from mailport.delivery.models import DeliveryStatus, EndpointStatus
from mailport.delivery.schemas import WebhookCreate
from mailport.events import Event, NewEvent
from mailport.metrics import REGISTRY
from tests.fixtures.webhook_receiver import MakeDispatcher, MakeReceiver, WebhookReceiver


async def _tenant(services: Services, name: str = "acme") -> str:
    tenant, _key = await services.tenants.create_tenant(name)
    return tenant.id


async def _endpoint(services: Services, tenant_id: str, url: str, **extra: object) -> tuple[str, str]:
    body = WebhookCreate(url=url, **extra)  # type: ignore[arg-type]
    endpoint, secret = await services.webhooks.create(tenant_id, body)
    assert secret is not None
    return endpoint.id, secret.reveal()


async def _append(
    services: Services, tenant_id: str, mailbox_id: str | None, n: int, *, key: str = "k"
) -> Event:
    payload = {"n": n, "subject": f"mail {n}"}
    got = await services.events.append(
        NewEvent(tenant_id, mailbox_id, "message.received", payload, f"{key}:{mailbox_id}:{n}")
    )
    assert got is not None
    return got


async def _eventually(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def _keep_accepting_other_mail(services: Services, tenant_id: str) -> None:
    """Deliveries of another mailbox that succeed: the endpoint is not one to disable."""
    for n in range(3):
        await _append(services, tenant_id, "mbx_2", n)
        await asyncio.sleep(0.1)


async def _dead_letters(services: Services, tenant_id: str, endpoint_id: str, count: int) -> None:
    """Wait until the endpoint has ``count`` dead letters."""

    async def all_dead() -> bool:
        page = await services.webhooks.deliveries(
            tenant_id, endpoint_id, cursor=None, limit=10, status=DeliveryStatus.DEAD
        )
        return len(page.items) == count

    await _eventually(all_dead)


@pytest.mark.serial
async def test_an_event_reaches_the_webhook_signed_within_two_seconds(
    delivery_services: Services, webhook_receiver: WebhookReceiver, make_dispatcher: MakeDispatcher
) -> None:
    services = delivery_services
    tenant_id = await _tenant(services)
    _, secret = await _endpoint(services, tenant_id, webhook_receiver.url)
    successes = REGISTRY.get_sample_value("mailport_webhook_attempts_total", {"result": "success"}) or 0
    latencies = REGISTRY.get_sample_value("mailport_delivery_latency_seconds_count") or 0
    await make_dispatcher()
    started = time.monotonic()
    event = await _append(services, tenant_id, "mbx_1", 1)
    (received,) = await webhook_receiver.wait_for(1, timeout=2.0)
    assert received.at - started < 2.0
    payload = Webhook(secret).verify(received.body, received.headers)
    assert received.headers["webhook-id"] == event.id
    assert payload["id"] == event.id and payload["type"] == "message.received"
    assert payload["data"] == {"n": 1, "subject": "mail 1"} and payload["mailbox_id"] == "mbx_1"

    async def accepted() -> bool:
        got = await services.events.get(event.id)
        return got is not None and got.accepted_at is not None

    await _eventually(accepted, timeout=2.0)
    after = REGISTRY.get_sample_value("mailport_webhook_attempts_total", {"result": "success"})
    assert after == successes + 1
    assert REGISTRY.get_sample_value("mailport_delivery_latency_seconds_count") == latencies + 1


async def test_a_hundred_events_arrive_once_each_in_order_per_mailbox(
    delivery_services: Services, webhook_receiver: WebhookReceiver, make_dispatcher: MakeDispatcher
) -> None:
    services = delivery_services
    tenant_id = await _tenant(services)
    await _endpoint(services, tenant_id, webhook_receiver.url)
    await make_dispatcher()
    sent: dict[str, list[str]] = defaultdict(list)
    for n in range(100):
        mailbox = f"mbx_{n % 3}"
        sent[mailbox].append((await _append(services, tenant_id, mailbox, n)).id)
    received = await webhook_receiver.wait_for(100, timeout=20)
    await asyncio.sleep(0.3)  # nothing more arrives
    ids = [r.headers["webhook-id"] for r in webhook_receiver.requests]
    assert len(ids) == 100 and len(set(ids)) == 100
    got: dict[str, list[str]] = defaultdict(list)
    for r in received:
        got[r.json()["mailbox_id"]].append(r.headers["webhook-id"])
    assert got == sent


async def test_receiver_down_then_up_everything_arrives(
    delivery_services: Services, webhook_receiver: WebhookReceiver, make_dispatcher: MakeDispatcher
) -> None:
    services = delivery_services
    tenant_id = await _tenant(services)
    endpoint_id, _ = await _endpoint(services, tenant_id, webhook_receiver.url)
    webhook_receiver.stop()
    await make_dispatcher()
    ids = [(await _append(services, tenant_id, f"mbx_{n % 2}", n)).id for n in range(20)]

    async def failed_twice() -> bool:
        page = await services.webhooks.deliveries(tenant_id, endpoint_id, cursor=None, limit=50)
        return any(d.attempts >= 2 for d in page.items)

    await _eventually(failed_twice)
    webhook_receiver.start()
    received = await webhook_receiver.wait_for(20, timeout=10)
    assert sorted(r.headers["webhook-id"] for r in received) == sorted(ids)

    async def all_delivered() -> bool:
        page = await services.webhooks.deliveries(tenant_id, endpoint_id, cursor=None, limit=50)
        return all(d.status is DeliveryStatus.DELIVERED for d in page.items)

    await _eventually(all_delivered)
    page = await services.webhooks.deliveries(tenant_id, endpoint_id, cursor=None, limit=50)
    retried = [d for d in page.items if d.attempts >= 2]
    assert retried and all(a.result == "network_error" for d in retried for a in d.attempt_log[:-1])
    assert all(d.attempt_log[-1].result == "success" for d in page.items)


@pytest.mark.serial
async def test_a_hanging_endpoint_does_not_delay_another_tenant(
    delivery_services: Services, make_receiver: MakeReceiver, make_dispatcher: MakeDispatcher
) -> None:
    services = delivery_services
    hanging = make_receiver(hang_seconds=30)
    healthy = make_receiver()
    slow_tenant = await _tenant(services, "slow")
    fast_tenant = await _tenant(services, "fast")
    await _endpoint(services, slow_tenant, hanging.url)
    await _endpoint(services, fast_tenant, healthy.url)
    await make_dispatcher(request_timeout=20.0)
    for n in range(10):
        await _append(services, slow_tenant, f"mbx_s{n}", n)
    await asyncio.sleep(0.2)  # the hanging endpoint now holds requests open
    started = time.monotonic()
    for n in range(10):
        await _append(services, fast_tenant, "mbx_f", n)
    await healthy.wait_for(10, timeout=5.0)
    assert time.monotonic() - started < 5.0  # the hanging endpoint holds its requests for 20 s
    assert hanging.succeeded() == []


@pytest.mark.serial  # the endpoint stays enabled only while other mail succeeds within 0.4 s
async def test_dead_letters_are_recorded_and_replayable(
    delivery_services: Services, webhook_receiver: WebhookReceiver, make_dispatcher: MakeDispatcher
) -> None:
    services = delivery_services
    tenant_id = await _tenant(services)
    endpoint_id, _ = await _endpoint(services, tenant_id, webhook_receiver.url)
    webhook_receiver.fail_marker = b"poison"
    policy = RetryPolicy(first_delay=0.05, max_delay=0.1, give_up_after=0.4)
    await make_dispatcher(policy=policy)
    ids = [(await _append(services, tenant_id, "mbx_1", n, key="poison")).id for n in range(3)]
    await _keep_accepting_other_mail(services, tenant_id)
    await _dead_letters(services, tenant_id, endpoint_id, 3)
    page = await services.webhooks.deliveries(
        tenant_id, endpoint_id, cursor=None, limit=10, status=DeliveryStatus.DEAD
    )
    dead = page.items
    assert all(d.attempts >= 1 and d.last_status_code == 500 for d in dead)
    assert dead[-1].event_id == ids[0] and dead[-1].attempts >= 2  # newest first; the head retried
    assert all(a.result == "http_error" and a.status_code == 500 for d in dead for a in d.attempt_log)
    event = await services.events.get(ids[0])
    assert event is not None and event.accepted_at is None
    endpoint = await services.webhooks.get(tenant_id, endpoint_id)
    assert endpoint.status is EndpointStatus.ACTIVE

    webhook_receiver.fail_marker = None
    before = len(webhook_receiver.succeeded())
    one = next(d for d in dead if d.event_id == ids[1])
    assert await services.webhooks.replay(tenant_id, endpoint_id, delivery_id=one.id) == 1
    got = await webhook_receiver.wait_for(before + 1)
    assert got[-1].headers["webhook-id"] == ids[1]
    assert await services.webhooks.replay(tenant_id, endpoint_id, delivery_id=None) == 2
    got = await webhook_receiver.wait_for(before + 3)
    assert sorted(r.headers["webhook-id"] for r in got[before:]) == sorted(ids)


async def test_an_endpoint_failing_too_long_is_disabled_with_an_event(
    delivery_services: Services, make_receiver: MakeReceiver, make_dispatcher: MakeDispatcher
) -> None:
    services = delivery_services
    tenant_id = await _tenant(services)
    failing = make_receiver(status=500)
    other = make_receiver()
    failing_id, _ = await _endpoint(services, tenant_id, failing.url)
    _, other_secret = await _endpoint(services, tenant_id, other.url, events=["webhook.disabled"])
    policy = RetryPolicy(first_delay=0.05, max_delay=0.1, give_up_after=0.3)
    await make_dispatcher(policy=policy)
    await _append(services, tenant_id, "mbx_1", 1)

    async def disabled() -> bool:
        return (await services.webhooks.get(tenant_id, failing_id)).status is EndpointStatus.DISABLED

    await _eventually(disabled)
    endpoint = await services.webhooks.get(tenant_id, failing_id)
    assert endpoint.disabled_reason and "dead letter" in endpoint.disabled_reason
    (notice,) = await other.wait_for(1)
    body = Webhook(other_secret).verify(notice.body, notice.headers)
    assert body["type"] == "webhook.disabled" and body["data"]["webhook_id"] == failing_id
    events, _ = await services.webhooks.events_after(tenant_id, after=None, limit=10)
    assert [e.type for e in events] == ["message.received", "webhook.disabled"]
    attempts_then = len(failing.requests)
    await _append(services, tenant_id, "mbx_1", 2)
    await asyncio.sleep(0.5)
    assert len(failing.requests) == attempts_then  # nothing is sent to a disabled endpoint


async def test_only_subscribed_types_are_delivered_and_acceptance_waits_for_every_endpoint(
    delivery_services: Services, make_receiver: MakeReceiver, make_dispatcher: MakeDispatcher
) -> None:
    services = delivery_services
    tenant_id = await _tenant(services)
    one, two = make_receiver(), make_receiver(status=500)
    await _endpoint(services, tenant_id, one.url, events=["message.received"])
    await _endpoint(services, tenant_id, two.url)
    await make_dispatcher()
    event = await _append(services, tenant_id, "mbx_1", 1)
    connected = await services.events.append(NewEvent(tenant_id, "mbx_1", "mailbox.connected", {}, "conn:1"))
    assert connected is not None
    await one.wait_for(1)
    await asyncio.sleep(0.3)
    assert [r.headers["webhook-id"] for r in one.requests] == [event.id]
    got = await services.events.get(event.id)
    assert got is not None and got.accepted_at is None  # the second endpoint has not answered 2xx
    two.status = 200
    await two.wait_for(2)

    async def accepted() -> bool:
        e = await services.events.get(event.id)
        return e is not None and e.accepted_at is not None

    await _eventually(accepted)
