"""Acceptance per consumer (mailport.events.acceptance), on SQLite and PostgreSQL: events before
the first webhook, pull acknowledgements, named and scoped pull consumers, endpoints with
different subscriptions, an endpoint deleted while it owes events, and backfill."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from mailport.api import create_app
from mailport.bootstrap import Services
from mailport.events import Event, NewEvent, acceptance
from tests.fixtures.api import BASE_URL, create_tenant
from tests.fixtures.webhook_receiver import MakeDispatcher, MakeReceiver, WebhookReceiver
from tests.integration.sync.conftest import wait_for

MBX_A = "mbx_01m7zh4d94fxj51fc0rsy5n5aa"
MBX_B = "mbx_01m7zh4d94fxj51fc0rsy5n5bb"


@pytest.fixture
async def client(delivery_services: Services) -> AsyncIterator[httpx.AsyncClient]:
    app: FastAPI = create_app(services=delivery_services)
    handle = await create_tenant(delivery_services, "acme")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url=BASE_URL,
        headers={"Authorization": f"Bearer {handle.api_key}", "x-tenant-id": handle.id},
    ) as c:
        yield c


def _tenant(client: httpx.AsyncClient) -> str:
    return client.headers["x-tenant-id"]


async def _append(
    services: Services,
    tenant_id: str,
    n: int,
    *,
    mailbox_id: str | None = MBX_A,
    type: str = "message.received",
) -> Event:
    got = await services.events.append(
        NewEvent(tenant_id, mailbox_id, type, {"n": n}, f"acc:{tenant_id}:{n}")
    )
    assert got is not None
    return got


async def _accepted(services: Services, *events: Event) -> list[bool]:
    out = []
    for event in events:
        got = await services.events.get(event.id)
        assert got is not None
        out.append(got.accepted_at is not None)
    return out


async def _settled(services: Services, *events: Event) -> bool:
    return all(await _accepted(services, *events))


async def _attempted(receiver: WebhookReceiver, count: int) -> None:
    """Wait until the receiver was asked ``count`` times, whatever it answered."""

    async def asked() -> bool:
        return len(receiver.requests) >= count

    await wait_for(asked)


async def _waiting(services: Services, mailbox_id: str = MBX_A) -> acceptance.Waiting:
    async with services.database.connect() as conn:
        return (await acceptance.waiting_counts(conn, [mailbox_id])).get(mailbox_id, acceptance.Waiting())


async def _ack(client: httpx.AsyncClient, through: str, **extra: object) -> dict[str, object]:
    answer = await client.post("/v1/events/ack", json={"through": through, **extra})
    assert answer.status_code == 200, answer.text
    body: dict[str, object] = answer.json()
    return body


async def test_reading_does_not_accept_the_page_the_cursor_and_ack_do(
    client: httpx.AsyncClient, delivery_services: Services
) -> None:
    services = delivery_services
    events = [await _append(services, _tenant(client), n) for n in range(3)]
    assert await _waiting(services) == acceptance.Waiting(owed=0, unclaimed=3)  # no consumer yet
    page = (await client.get("/v1/events", params={"limit": 2})).json()
    assert [i["id"] for i in page["items"]] == [e.id for e in events[:2]]
    assert await _accepted(services, *events) == [False, False, False]  # a crash mid-page loses nothing
    assert await _waiting(services) == acceptance.Waiting(owed=3, unclaimed=0)  # "default" owes them now
    answer = await _ack(client, page["next_cursor"])
    consumer = answer["consumer"]
    assert answer["accepted"] == 2 and isinstance(consumer, dict)
    assert (consumer["name"], consumer["mailbox_id"], consumer["acked_cursor"]) == (
        "default",
        None,
        page["next_cursor"],
    )
    assert await _accepted(services, *events) == [True, True, False]
    rest = (await client.get("/v1/events", params={"after": page["next_cursor"]})).json()
    assert [i["id"] for i in rest["items"]] == [events[2].id]
    again = (await client.get("/v1/events", params={"after": rest["next_cursor"]})).json()
    assert again["items"] == [] and await _accepted(services, events[2]) == [True]  # the cursor acknowledged
    assert await _waiting(services) == acceptance.Waiting()

    back = await _ack(client, str(events[0].seq))  # acknowledging an older cursor never goes back
    assert back["accepted"] == 0 and back["consumer"]["acked_cursor"] == rest["next_cursor"]  # type: ignore[index]
    for bad in ({"through": str(events[2].seq + 1)}, {"through": "x"}, {"through": "１２"}):
        answer = await client.post("/v1/events/ack", json=bad)
        assert answer.status_code == 422 and answer.json()["error"] == "invalid_cursor", answer.text
    for bad_name in ("", "bad name", "x" * 65, "é"):
        answer = await client.post("/v1/events/ack", json={"through": "0", "consumer": bad_name})
        assert answer.status_code == 422, (bad_name, answer.text)
        got = await client.get("/v1/events", params={"consumer": bad_name})
        assert got.status_code == 422 and got.json()["error"] == "invalid_input", (bad_name, got.text)


async def test_two_named_consumers_each_acknowledge_their_own_events(
    client: httpx.AsyncClient, delivery_services: Services
) -> None:
    services = delivery_services
    events = [await _append(services, _tenant(client), n) for n in range(2)]
    last = str(events[-1].seq)
    await client.get("/v1/events", params={"consumer": "billing"})
    await client.get("/v1/events", params={"consumer": "crm"})
    assert (await _ack(client, last, consumer="billing"))["accepted"] == 0  # crm is not done yet
    assert await _accepted(services, *events) == [False, False]
    listed = (await client.get("/v1/events/consumers")).json()["items"]
    assert [(c["name"], c["acked_cursor"]) for c in listed] == [("billing", last), ("crm", "0")]
    assert (await _ack(client, str(events[0].seq), consumer="crm"))["accepted"] == 1
    # a reader that is gone is forgotten: what only it still owed is accepted
    assert (await client.delete("/v1/events/consumers/crm")).status_code == 204
    assert await _accepted(services, *events) == [True, True]
    missing = await client.delete("/v1/events/consumers/crm")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"


async def test_a_consumer_of_one_mailbox_owes_only_that_mailbox(
    client: httpx.AsyncClient, delivery_services: Services
) -> None:
    services = delivery_services
    tenant_id = _tenant(client)
    mine = await _append(services, tenant_id, 1, mailbox_id=MBX_A)
    other = await _append(services, tenant_id, 2, mailbox_id=MBX_B)
    page = (await client.get("/v1/events", params={"mailbox_id": MBX_A})).json()
    assert [i["id"] for i in page["items"]] == [mine.id]
    await _ack(client, page["next_cursor"], mailbox_id=MBX_A)
    assert await _accepted(services, mine, other) == [True, False]  # never read: not acknowledged
    assert await _waiting(services, MBX_B) == acceptance.Waiting(owed=0, unclaimed=1)


async def test_events_before_the_first_webhook_are_owed_to_pull_and_accepted_by_it(
    client: httpx.AsyncClient,
    delivery_services: Services,
    make_receiver: MakeReceiver,
    make_dispatcher: MakeDispatcher,
) -> None:
    """The reported case: two messages, then a webhook for message.received. The webhook gets
    what comes after it; the two are the pull API's, and reading with a cursor accepts them."""
    services = delivery_services
    tenant_id = _tenant(client)
    await client.get("/v1/events")  # the application reads with the pull API first
    before = [await _append(services, tenant_id, n) for n in range(2)]
    receiver = make_receiver()
    made = await client.post("/v1/webhooks", json={"url": receiver.url, "events": ["message.received"]})
    assert made.status_code == 201, made.text
    await make_dispatcher()
    after = await _append(services, tenant_id, 3)
    (got,) = await receiver.wait_for(1)
    assert got.headers["webhook-id"] == after.id
    await wait_for(lambda: _settled(services, after), timeout=5)
    assert await _waiting(services) == acceptance.Waiting(owed=2, unclaimed=0)  # the pull consumer's
    page = (await client.get("/v1/events")).json()
    assert [i["id"] for i in page["items"]] == [e.id for e in [*before, after]]
    await _ack(client, page["next_cursor"])
    assert await _accepted(services, *before) == [True, True]
    assert await _waiting(services) == acceptance.Waiting()
    assert len(receiver.requests) == 1  # nothing sent twice


async def test_backfill_hands_the_waiting_events_to_a_new_endpoint(
    client: httpx.AsyncClient,
    delivery_services: Services,
    make_receiver: MakeReceiver,
    make_dispatcher: MakeDispatcher,
) -> None:
    services = delivery_services
    tenant_id = _tenant(client)
    before = [await _append(services, tenant_id, n) for n in range(2)]
    connected = await _append(services, tenant_id, 9, type="mailbox.connected")
    assert await _waiting(services) == acceptance.Waiting(owed=0, unclaimed=3)
    receiver = make_receiver()
    made = await client.post(
        "/v1/webhooks", json={"url": receiver.url, "events": ["message.received"], "backfill": True}
    )
    assert made.status_code == 201, made.text
    assert await _waiting(services) == acceptance.Waiting(owed=2, unclaimed=1)
    await make_dispatcher()
    got = await receiver.wait_for(2)
    assert sorted(r.headers["webhook-id"] for r in got) == sorted(e.id for e in before)
    await wait_for(lambda: _settled(services, *before), timeout=5)
    assert await _accepted(services, connected) == [False]  # not its type: still nobody's
    # a second endpoint's backfill finds nothing another endpoint owes
    second = make_receiver()
    other = (await client.post("/v1/webhooks", json={"url": second.url})).json()
    queued = await client.post(f"/v1/webhooks/{other['id']}/backfill")
    assert queued.status_code == 200 and queued.json() == {"queued": 1}  # the mailbox.connected only
    (only,) = await second.wait_for(1)
    assert only.headers["webhook-id"] == connected.id
    await wait_for(lambda: _settled(services, connected), timeout=5)
    assert await _waiting(services) == acceptance.Waiting()


async def test_two_endpoints_with_different_subscriptions(
    client: httpx.AsyncClient,
    delivery_services: Services,
    make_receiver: MakeReceiver,
    make_dispatcher: MakeDispatcher,
) -> None:
    services = delivery_services
    tenant_id = _tenant(client)
    messages, notices = make_receiver(), make_receiver(status=500)
    await client.post("/v1/webhooks", json={"url": messages.url, "events": ["message.received"]})
    notice_types = ["mailbox.connected", "mailbox.reauth_required"]
    await client.post("/v1/webhooks", json={"url": notices.url, "events": notice_types})
    await client.get("/v1/events")  # and a pull reader
    message = await _append(services, tenant_id, 1)
    connected = await _append(services, tenant_id, 2, type="mailbox.connected")
    reauth = await _append(services, tenant_id, 3, type="mailbox.reauth_required")
    lookalike = await _append(services, tenant_id, 4, type="mailbox.reauth-required")  # "_" is no wildcard
    error = await _append(services, tenant_id, 5, type="mailbox.error")
    # not fanned out yet (no dispatcher): the endpoints that will get them owe them already
    await _ack(client, str(error.seq))
    got = await _accepted(services, message, connected, reauth, lookalike, error)
    assert got == [False, False, False, True, True]
    await make_dispatcher()
    await messages.wait_for(1)
    await wait_for(lambda: _settled(services, message), timeout=5)
    await _attempted(notices, 1)
    assert await _accepted(services, connected, reauth) == [False, False]  # no 2xx from their endpoint
    assert await _waiting(services) == acceptance.Waiting(owed=2, unclaimed=0)
    notices.status = 200
    await notices.wait_for(2)
    await wait_for(lambda: _settled(services, connected, reauth), timeout=5)
    assert [r.headers["webhook-id"] for r in messages.requests] == [message.id]


async def test_an_endpoint_deleted_while_it_owes_events(
    client: httpx.AsyncClient,
    delivery_services: Services,
    make_receiver: MakeReceiver,
    make_dispatcher: MakeDispatcher,
) -> None:
    services = delivery_services
    tenant_id = _tenant(client)
    failing = make_receiver(status=500)
    made = (await client.post("/v1/webhooks", json={"url": failing.url})).json()
    await make_dispatcher()
    events = [await _append(services, tenant_id, n, mailbox_id=box) for n, box in enumerate((MBX_A, MBX_B))]
    await _attempted(failing, 2)
    page = (await client.get("/v1/events", params={"mailbox_id": MBX_A})).json()
    await _ack(client, page["next_cursor"], mailbox_id=MBX_A)  # a pull reader of mailbox A
    assert await _accepted(services, *events) == [False, False]  # the endpoint owes both
    assert await _waiting(services, MBX_A) == acceptance.Waiting(owed=1, unclaimed=0)
    assert (await client.delete(f"/v1/webhooks/{made['id']}")).status_code == 204
    # A's event falls to its pull reader, which has already acknowledged it; B's to nobody
    assert await _accepted(services, *events) == [True, False]
    assert await _waiting(services, MBX_B) == acceptance.Waiting(owed=0, unclaimed=1)
    await client.get("/v1/events", params={"after": str(events[-1].seq)})
    assert await _accepted(services, *events) == [True, True]


async def test_another_tenants_consumers_change_nothing(
    client: httpx.AsyncClient, delivery_services: Services
) -> None:
    services = delivery_services
    mine = await _append(services, _tenant(client), 1)
    other = await create_tenant(services, "other")
    async with httpx.AsyncClient(
        transport=client._transport, base_url=BASE_URL, headers={"Authorization": f"Bearer {other.api_key}"}
    ) as stranger:
        await stranger.get("/v1/events", params={"after": str(mine.seq)})
        assert (await stranger.get("/v1/events/consumers")).json()["items"][0]["name"] == "default"
    assert await _accepted(services, mine) == [False]
    assert (await client.get("/v1/events/consumers")).json() == {"items": []}


async def test_change_events_are_owed_only_by_endpoints_that_list_them(
    client: httpx.AsyncClient,
    delivery_services: Services,
    make_receiver: MakeReceiver,
    make_dispatcher: MakeDispatcher,
) -> None:
    """``events`` null means every type *but* the opt-in changes made on the server: such an
    endpoint neither owes nor receives them; one listing them does."""
    services = delivery_services
    tenant_id = _tenant(client)
    everything, changes = make_receiver(), make_receiver(status=500)
    assert (await client.post("/v1/webhooks", json={"url": everything.url})).status_code == 201
    created = await client.post(
        "/v1/webhooks", json={"url": changes.url, "events": ["message.updated", "folder.deleted"]}
    )
    assert created.status_code == 201 and created.json()["events"] == ["message.updated", "folder.deleted"]
    await client.get("/v1/events")  # and a pull reader
    updated = await _append(services, tenant_id, 1, type="message.updated")
    deleted = await _append(services, tenant_id, 2, type="message.deleted")  # nobody lists it
    received = await _append(services, tenant_id, 3)
    await _ack(client, str(received.seq))
    # message.deleted is the pull reader's alone; message.updated is owed by `changes`
    assert await _accepted(services, updated, deleted, received) == [False, True, False]
    await make_dispatcher()
    await everything.wait_for(1)
    await _attempted(changes, 1)
    assert [r.json()["type"] for r in everything.requests] == ["message.received"]
    assert {r.json()["type"] for r in changes.requests} == {"message.updated"}
    assert await _accepted(services, updated) == [False]  # its endpoint has not answered 2xx
    changes.status = 204
    await wait_for(lambda: _settled(services, updated), timeout=5)
