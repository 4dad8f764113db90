"""Graph spec checks: every endpoint mailport's GraphClient uses, exercised against the fake, and
every request and answer of that run checked against Microsoft's description of Graph (the
msgraph-sdk wheel's url templates and models, see ``spec.py``); a drifted request or answer
fails the check. The session fixture ``graph_fake`` runs the same check over everything the
whole run recorded."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from mailport.connectors.graph.client import IMMUTABLE_IDS, folder_resource
from mailport.connectors.graph.models import BatchRequest, DeltaExpiredError
from mailport.errors import (
    ApiRateLimitedError,
    MessageNotFoundError,
    OAuthPermissionMissingError,
    ProviderError,
)
from tests.fakes import AppServer
from tests.fakes.graph import Exchange, GraphFake
from tests.fixtures.graph import new_email
from tests.integration.graph.spec import (
    check_exchange,
    check_exchanges,
    check_notification,
    load_spec,
    match_endpoint,
)

RAW = (
    b"From: Ann <ann@example.org>\r\nTo: {to}\r\nSubject: {subject}\r\n"
    b"Message-ID: <{mid}@example.org>\r\nDate: Tue, 01 Oct 2024 10:00:00 +0000\r\n\r\nHello body\r\n"
)


def raw(subject: str, to: str = "me@contoso.example") -> bytes:
    return (
        RAW.replace(b"{to}", to.encode())
        .replace(b"{subject}", subject.encode())
        .replace(b"{mid}", subject.replace(" ", "-").encode())
    )


@pytest.fixture(scope="session")
def graph_spec() -> dict[str, Any]:
    return load_spec()


@dataclasses.dataclass
class Receiver:
    """mailport's side of Graph's push, minimal: answers the validation handshake, keeps posts."""

    url: str
    posts: list[tuple[str, Any]]
    echo: bool = True


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    state = Receiver(url="", posts=[])

    async def hook(request: Request) -> Response:
        token = request.query_params.get("validationToken")
        if token is not None:
            return PlainTextResponse(token if state.echo else "nope")
        state.posts.append((request.url.path, await request.json()))
        return Response(status_code=202)

    server = AppServer(Starlette(routes=[Route("/{path:path}", hook, methods=["POST"])])).start()
    state.url = server.url
    yield state
    server.stop()


def wait(condition: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)
    return result


def since(fake: GraphFake, mark: int) -> list[Exchange]:
    return fake.requests[mark:]


async def test_every_client_endpoint_matches_microsofts_description(
    graph: GraphFake, graph_client: Any, graph_spec: dict[str, Any], receiver: Receiver
) -> None:
    email = new_email()
    other = new_email()
    account = graph.account(email)
    graph.account(other)
    mark = len(graph.requests)
    first = account.add(raw("first", email))
    account.add(raw("second", email), is_read=True)
    async with graph_client(email) as client:
        assert (await client.me())[0] == email
        archive = await client.create_folder("Projects")
        child = await client.create_folder("Sub", parent_id=(await client.well_known("inbox")).id)
        await client.rename_folder(archive.id, "Projects 2")
        folders = await client.folders()
        paths = {f.path: f for f in folders}
        assert {"INBOX", "INBOX/Sub", "Projects 2", "Sent Items"} <= set(paths)
        assert paths["INBOX"].role == "inbox" and paths["Sent Items"].role == "sent"
        assert paths["INBOX"].total == 2 and paths["INBOX"].unread == 1

        inbox = paths["INBOX"].id
        pages = [page async for page in client.delta(inbox, max_page_size=1)]
        assert len(pages) == 2 and pages[-1].delta_link and not pages[0].delta_link
        assert {m.subject for p in pages for m in p.items} == {"first", "second"}

        listed = await client.list_messages(inbox, top=1, filter="isRead eq false")
        assert [m.id for m in listed.items] == [first] and listed.next_link is None
        found = await client.list_messages(None, search="second")
        assert [m.subject for m in found.items] == ["second"]
        page = await client.list_messages(inbox, top=1, orderby="receivedDateTime desc")
        assert (
            page.next_link and len((await client.list_messages(inbox, next_link=page.next_link)).items) == 1
        )

        assert b"Subject: first" in await client.get_mime(first)
        updated = await client.update(first, is_read=True, flag="flagged", categories=["Blue"])
        assert updated.is_read and updated.flagged and updated.categories == ("Blue",)
        moved = await client.move(first, child.id)
        assert moved == first  # immutable ids survive a move
        copied = await client.copy(first, archive.id)
        assert copied != first
        await client.delete(copied)
        assert (await client.get_message(copied)).folder_id == (await client.well_known("deleteditems")).id
        await client.permanent_delete(copied)
        with pytest.raises(MessageNotFoundError):
            await client.get_message(copied)

        # the delta round after changes: first moved out of the inbox -> removed
        after = [page async for page in client.delta(inbox, delta_link=pages[-1].delta_link)]
        assert first in {i for p in after for i in p.removed_ids}

        stored = await client.create_mime(archive.id, raw("stored", email))
        assert (await client.get_message(stored)).is_draft is True

        await client.send_mime(raw("outgoing", other))
        assert wait(lambda: [m for m in graph.account(other).in_folder("inbox") if m.subject == "outgoing"])
        assert [m for m in account.in_folder("sentitems") if m.subject == "outgoing"]

        reply = await client.create_reply(first, comment="thanks")
        assert (
            reply.is_draft
            and reply.subject == "RE: first"
            and reply.conversation_id == updated.conversation_id
        )
        await client.update_draft(reply.id, body="Thanks!", to=[other], subject="RE: first")
        await client.add_attachment(reply.id, name="a.txt", content=b"hello", content_type="text/plain")
        await client.send_draft(reply.id)
        delivered = wait(
            lambda: [m for m in graph.account(other).in_folder("inbox") if m.subject == "RE: first"]
        )
        mime = graph.account(other).mime(delivered[0])
        assert b"In-Reply-To: <first@example.org>" in mime and b"a.txt" in mime
        await client.create_reply_all(first)
        await client.create_forward(first, to=[other], comment="fyi")

        answers = await client.batch(
            [
                BatchRequest(id=str(i), method="GET", url=f"/me/messages/{first}?$select=id,subject")
                for i in range(25)
            ]
        )
        assert len(answers) == 25 and all(a.status == 200 and a.body["subject"] == "first" for a in answers)

        expires = datetime.now(UTC) + timedelta(minutes=60)
        subscription = await client.create_subscription(
            folder_resource(inbox),
            "created,updated,deleted",
            f"{receiver.url}/hook",
            f"{receiver.url}/life",
            "state-1",
            expires,
        )
        account.add(raw("pushed", email))
        note = wait(
            lambda: [
                b
                for p, b in receiver.posts
                if p == "/hook" and b["value"][0]["subscriptionId"] == subscription.id
            ]
        )
        assert (
            note[0]["value"][0]["clientState"] == "state-1" and note[0]["value"][0]["changeType"] == "created"
        )
        assert not check_notification(note[0])
        renewed = await client.renew_subscription(subscription.id, expires + timedelta(minutes=30))
        assert renewed.expiration > subscription.expiration
        await client.reauthorize_subscription(subscription.id)
        assert (await client.get_subscription(subscription.id)) is not None
        await client.delete_subscription(subscription.id)
        assert (await client.get_subscription(subscription.id)) is None
        await client.delete_folder(archive.id)

    exchanges = since(graph, mark)
    assert all(e.headers.get("prefer", "").startswith(IMMUTABLE_IDS) or e.batch_item for e in exchanges), (
        "every request asks for immutable ids"
    )
    assert check_exchanges(graph_spec, exchanges) == []
    kinds = {(e.method, (match_endpoint(graph_spec, e.path) or {}).get("template")) for e in exchanges}
    assert len(kinds) >= 25  # the scenario covers the endpoints, not a handful


def test_drift_in_a_request_or_an_answer_fails_the_check(graph_spec: dict[str, Any]) -> None:
    good = Exchange(
        method="PATCH",
        path="/v1.0/me/messages/AAMk1",
        query={"$select": "id"},
        headers={},
        body={"isRead": True, "flag": {"flagStatus": "flagged"}},
        content_type="application/json",
        raw_body=b"",
        status=200,
        response={
            "@odata.etag": 'W/"x"',
            "id": "AAMk1",
            "isRead": True,
            "receivedDateTime": "2024-01-01T00:00:00Z",
        },
    )
    assert check_exchange(graph_spec, good) == []
    drifted = [
        dataclasses.replace(good, path="/v1.0/me/mesages/AAMk1"),  # no such path
        dataclasses.replace(good, method="PUT"),  # no such method there
        dataclasses.replace(good, query={"$selekt": "id"}),  # undeclared query parameter
        dataclasses.replace(good, body={"isUnread": False}),  # unknown request property
        dataclasses.replace(good, body={"flag": {"flagStatus": "red"}}),  # not an enum member
        dataclasses.replace(good, response={"id": "AAMk1", "isRead": "yes"}),  # wrong type
        dataclasses.replace(good, response={"id": "AAMk1", "receivedDateTime": "yesterday"}),
        dataclasses.replace(good, response={"id": "AAMk1", "from": {"email": "a@b"}}),  # nested drift
        dataclasses.replace(good, status=404, response={"error": {"kode": "x"}}),  # error envelope
    ]
    for exchange in drifted:
        assert check_exchange(graph_spec, exchange), f"drift not caught: {exchange}"
    assert check_notification({"value": [{"subscriptionId": "s", "lifecycleEvent": "expired"}]})


async def test_faults_answer_as_graph_does(
    graph: GraphFake, graph_client: Any, idp: Any, graph_spec: Any
) -> None:
    email = new_email()
    account = graph.account(email)
    message = account.add(raw("one", email))
    async with graph_client(email) as client:
        graph.faults.fail_next(401)  # an expired token: one refresh, then it works
        assert (await client.get_message(message)).subject == "one"
        graph.faults.fail_next(429, 2, retry_after=1)
        assert (await client.get_message(message)).subject == "one"
        graph.faults.fail_next(429, 10, retry_after=1)
        with pytest.raises(ApiRateLimitedError):
            await client.get_message(message)
        graph.faults.queued.clear()
        graph.faults.batch_throttle = 3  # per-item 429 inside $batch: retried after Retry-After
        answers = await client.batch(
            [BatchRequest(id=str(i), method="GET", url=f"/me/messages/{message}") for i in range(5)]
        )
        assert [a.status for a in answers] == [200] * 5

        inbox = (await client.well_known("inbox")).id
        link = [p async for p in client.delta(inbox)][-1].delta_link
        account.expire_deltas()
        with pytest.raises(DeltaExpiredError) as expired:
            [p async for p in client.delta(inbox, delta_link=link)]
        assert expired.value.code == "syncStateNotFound"

        graph.latency, graph.concurrency_limit = 0.2, 2  # MailboxConcurrency
        statuses = await asyncio.gather(
            *(
                client.http.request(
                    "GET",
                    f"/v1.0/me/messages/{message}",
                    expect=(200, 429),
                    headers={"Prefer": IMMUTABLE_IDS},
                )
                for _ in range(3)
            ),
        )
        assert sorted(r.status_code for r in statuses) == [200, 200, 429]
        assert (
            statuses[[r.status_code for r in statuses].index(429)].json()["error"]["code"]
            == "ApplicationThrottled"
        )

    async with graph_client(email, scopes=("https://graph.microsoft.com/Mail.Send",)) as client:
        with pytest.raises(OAuthPermissionMissingError):
            await client.get_message(message)


async def test_subscription_rules_and_lifecycle(
    graph: GraphFake, graph_client: Any, receiver: Receiver
) -> None:
    email = new_email()
    account = graph.account(email)
    async with graph_client(email) as client:
        inbox = (await client.well_known("inbox")).id
        too_far = datetime.now(UTC) + timedelta(minutes=4231 + 2)
        with pytest.raises(ProviderError):
            await client.create_subscription(
                folder_resource(inbox), "created", f"{receiver.url}/hook", None, "s", too_far
            )
        receiver.echo = False
        try:
            with pytest.raises(ProviderError):
                await client.create_subscription(
                    folder_resource(inbox),
                    "created",
                    f"{receiver.url}/hook",
                    None,
                    "s",
                    datetime.now(UTC) + timedelta(hours=1),
                )
        finally:
            receiver.echo = True
        subscription = await client.create_subscription(
            folder_resource(inbox),
            "created,updated,deleted",
            f"{receiver.url}/hook",
            f"{receiver.url}/life",
            "s2",
            datetime.now(UTC) + timedelta(hours=1),
        )

        def notes(kind: str = "/hook") -> list[Any]:
            return [
                b["value"][0]
                for p, b in receiver.posts
                if p == kind and b["value"][0]["subscriptionId"] == subscription.id
            ]

        graph.faults.duplicate = 1
        one = account.add(raw("dup", email))
        wait(lambda: len(notes()) == 2)
        graph.faults.drop = 1
        account.update(one, is_read=True)
        account.delete(one)
        wait(lambda: len(notes()) == 3)
        assert [n["changeType"] for n in notes()] == ["created", "created", "deleted"]

        graph.lifecycle(subscription.id, "missed")
        graph.lifecycle(subscription.id, "reauthorizationRequired")
        account.add(raw("paused", email))  # no notification until reauthorized
        await client.reauthorize_subscription(subscription.id)
        graph.expire_subscription(subscription.id)
        events = wait(
            lambda: [n["lifecycleEvent"] for n in notes("/life")] if len(notes("/life")) == 3 else None
        )
        # each notification is its own POST, sent concurrently, as Graph's: no order between them
        assert sorted(events) == ["missed", "reauthorizationRequired", "subscriptionRemoved"]
        assert len(notes()) == 3
        assert await client.get_subscription(subscription.id) is None
