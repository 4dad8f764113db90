"""Spec checks: a scenario drives every endpoint of mailport's Gmail and Pub/Sub clients through
the fake, and every request sent and answer given is validated against Google's discovery
documents (``tests/integration/gmail/spec.py``); a deliberately wrong shape must fail loudly.
(The session fixture ``gmail_fake`` also validates everything any Gmail test recorded.)"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator

import pytest

from mailport.connectors.api_http import ApiHttp
from mailport.connectors.gmail import (
    GmailClient,
    HistoryExpiredError,
    PubSubClient,
    ServiceAccountKey,
    ServiceAccountTokens,
)
from mailport.connectors.gmail.client import UPLOAD_THRESHOLD
from mailport.crypto import Secret
from mailport.net.connect import http_client
from mailport.net.guard import HostGuard
from tests.conftest import issue_token
from tests.fakes.gmail import Exchange, GmailFake, make_message
from tests.fixtures.gmail import GMAIL_SCOPE, gmail_email
from tests.integration.gmail.spec import check_exchanges, method_ids
from tests.mailstack.idp import MockIdP

GUARD = HostGuard(allowed_hosts=["127.0.0.1"])


async def no_sleep(seconds: float) -> None:
    return None


@pytest.fixture
async def gmail(idp: MockIdP, gmail_fake: GmailFake) -> AsyncIterator[tuple[GmailClient, str]]:
    email = gmail_email()
    token = issue_token(idp, email, scope=GMAIL_SCOPE)

    async def source() -> Secret:
        return Secret(str(token["access_token"]))

    async with ApiHttp(
        gmail_fake.url, guard=GUARD, token_source=source, sleep=no_sleep, connector="gmail_api"
    ) as http:
        yield GmailClient(http), email


EXPECTED_METHODS = {
    "gmail.users.getProfile",
    "gmail.users.watch",
    "gmail.users.stop",
    "gmail.users.labels.list",
    "gmail.users.labels.get",
    "gmail.users.labels.create",
    "gmail.users.labels.patch",
    "gmail.users.labels.delete",
    "gmail.users.messages.list",
    "gmail.users.messages.get",
    "gmail.users.messages.modify",
    "gmail.users.messages.batchModify",
    "gmail.users.messages.trash",
    "gmail.users.messages.untrash",
    "gmail.users.messages.delete",
    "gmail.users.messages.batchDelete",
    "gmail.users.messages.insert",
    "gmail.users.messages.import",
    "gmail.users.messages.send",
    "gmail.users.messages.send (upload)",
    "gmail.users.messages.insert (upload)",
    "gmail.users.drafts.create (upload)",
    "gmail.users.history.list",
    "gmail.users.threads.get",
    "gmail.users.drafts.list",
    "gmail.users.drafts.get",
    "gmail.users.drafts.create",
    "gmail.users.drafts.update",
    "gmail.users.drafts.send",
    "gmail.users.drafts.delete",
    "pubsub.projects.subscriptions.pull",
    "pubsub.projects.subscriptions.acknowledge",
    "batch",
}


async def test_every_endpoint_matches_the_discovery_documents(
    gmail: tuple[GmailClient, str], gmail_fake: GmailFake
) -> None:
    client, email = gmail
    start = len(gmail_fake.requests)
    account = gmail_fake.account(email)
    topic = gmail_fake.pubsub.create_topic(f"projects/p/topics/{email}")
    subscription = f"projects/p/subscriptions/{email.split('@')[0]}"
    gmail_fake.pubsub.create_subscription(subscription, topic)

    watch = await client.watch(topic, label_ids=["INBOX"])
    assert watch.expiration is not None
    first = account.add_message(make_message(subject="first"))
    reply_raw = make_message(subject="Re: first", in_reply_to=account.message(first).message_id_header)
    second = account.add_message(reply_raw)

    profile = await client.profile()
    assert profile.email == email and profile.messages_total == 2
    labels = await client.labels()
    assert {"INBOX", "SENT", "TRASH"} <= {label.id for label in labels}
    work = await client.create_label("Work/Clients")
    await client.patch_label(work.id, "Work/Customers")
    assert (await client.label(work.id)).name == "Work/Customers"
    listed = await client.list_messages(label_ids=["INBOX"], q="subject:first", max_results=1)
    assert len(listed.ids) == 1 and listed.next_page_token is not None
    raw = await client.get_message(first)
    assert raw.raw is not None and b"Subject: first" in raw.raw
    meta = await client.get_message(second, format="metadata", metadata_headers=["Subject", "In-Reply-To"])
    assert meta.headers is not None and meta.headers["subject"] == "Re: first"
    assert meta.thread_id == raw.thread_id
    minimal = await client.get_message(first, format="minimal")
    assert minimal.raw is None and minimal.label_ids == ("INBOX", "UNREAD")
    batch = await client.get_messages([first, "ffffffffffffffff", second])
    assert [m.id if m else None for m in batch] == [first, None, second]
    await client.modify(first, add=[work.id, "STARRED"], remove=["UNREAD"])
    await client.batch_modify([first, second], add=["IMPORTANT"])
    await client.trash(second)
    await client.untrash(second)
    thread = await client.thread(raw.thread_id)
    assert [m.id for m in thread.messages] == [first, second]
    history = await client.history(profile.history_id, history_types=["labelAdded", "labelRemoved"])
    assert history.records and all(r.labels_added or r.labels_removed for r in history.records)
    inserted = await client.insert(
        make_message(subject="inserted"), ["INBOX"], internal_date_source="dateHeader"
    )
    imported = await client.import_(make_message(subject="imported"), ["INBOX", "UNREAD"])
    sent = await client.send(make_message(sender=email, to="someone@example.org"), thread_id=raw.thread_id)
    assert sent.thread_id == raw.thread_id and "SENT" in sent.label_ids
    big = make_message(sender=email, to="someone@example.org", body="x" * (UPLOAD_THRESHOLD + 10))
    assert "SENT" in (await client.send(big)).label_ids  # uploadType=media
    assert (await client.insert(big, ["INBOX"])).id  # uploadType=multipart (labelIds)
    draft = await client.draft_create(
        make_message(sender=email, to="someone@example.org"), thread_id=raw.thread_id
    )
    assert (await client.drafts_list()).drafts[0].id == draft.id
    updated = await client.draft_update(
        draft.id, make_message(sender=email, to="x@example.org", subject="v2")
    )
    got = await client.draft_get(updated.id)
    assert got.message.raw is not None and b"v2" in got.message.raw
    await client.draft_send(draft.id)
    big_draft = await client.draft_create(big)
    await client.draft_delete(big_draft.id)
    await client.delete(inserted.id)
    await client.batch_delete([imported.id])
    await client.delete_label(work.id)
    await client.stop()
    account.expire_history()
    with pytest.raises(HistoryExpiredError):
        await client.history(profile.history_id)

    key = ServiceAccountKey.from_info(gmail_fake.pubsub.service_account())
    async with http_client(GUARD) as token_http:
        tokens = ServiceAccountTokens(key, client=token_http)
        async with ApiHttp(
            gmail_fake.url,
            guard=GUARD,
            token_source=tokens.token,
            force_refresh=tokens.force_refresh,
            connector="gmail_pubsub",
        ) as pubsub_http:
            pubsub = PubSubClient(pubsub_http)
            received = await pubsub.pull(subscription, max_messages=100)
            assert received and {m.email for m in received} == {email}
            assert all(int(m.history_id) > 0 for m in received)
            await pubsub.acknowledge(subscription, [m.ack_id for m in received])
    assert gmail_fake.pubsub.backlog(subscription) == 0

    exchanges = gmail_fake.requests[start:]
    assert check_exchanges(exchanges) == []
    assert EXPECTED_METHODS <= method_ids(exchanges), EXPECTED_METHODS - method_ids(exchanges)


def _exchange(**fields: object) -> Exchange:
    base: dict[str, object] = {
        "service": "gmail",
        "method": "GET",
        "path": "/gmail/v1/users/me/profile",
        "query": [],
        "body": None,
        "status": 200,
        "response": {"emailAddress": "a@b.test", "historyId": "12", "messagesTotal": 1},
    }
    base.update(fields)
    return Exchange(**base)  # type: ignore[arg-type]


def test_the_check_accepts_a_true_shape() -> None:
    assert check_exchanges([_exchange()]) == []


@pytest.mark.parametrize(
    ("drift", "expected"),
    [
        (
            {"response": {"emailAddress": "a@b.test", "historyId": 12}},
            "historyId: expected a string (uint64)",
        ),
        (
            {"response": {"emailAddress": "a@b.test", "historyID": "12"}},
            "historyID: not a property of Profile",
        ),
        (
            {"response": {"emailAddress": "a@b.test", "messagesTotal": "1"}},
            "messagesTotal: expected an integer",
        ),
        (
            {"query": [("fields", "x"), ("includeDeleted", "true")]},
            "query parameter 'includeDeleted' is not declared",
        ),
        ({"path": "/gmail/v1/users/me/profiles"}, "no method of the discovery documents"),
        ({"method": "POST"}, "no method of the discovery documents"),
        (
            {
                "method": "POST",
                "path": "/gmail/v1/users/me/messages/abc/modify",
                "body": {"addLabelIDs": ["X"]},
                "response": {"id": "abc"},
            },
            "addLabelIDs: not a property of ModifyMessageRequest",
        ),
        (
            {
                "path": "/gmail/v1/users/me/messages/abc",
                "query": [("format", "RAW")],
                "response": {"id": "abc"},
            },
            "format='RAW' is not one of",
        ),
        (
            {
                "path": "/gmail/v1/users/me/history",
                "query": [("startHistoryId", "1")],
                "response": {
                    "history": [{"id": "2", "messagesAdded": [{"message": {"id": "m", "labelIds": "INBOX"}}]}]
                },
            },
            "labelIds: expected an array",
        ),
        ({"status": 404, "response": {"message": "not found"}}, "without Google's"),
        (
            {
                "method": "POST",
                "path": "/upload/gmail/v1/users/me/messages/send",
                "kind": "upload",
                "query": [],
                "response": {"id": "m"},
            },
            "an upload without uploadType",
        ),
        (
            {
                "method": "DELETE",
                "path": "/gmail/v1/users/me/messages/m",
                "status": 204,
                "response": {"id": "m"},
            },
            "answers no body",
        ),
    ],
)
def test_a_drift_fails_loudly(drift: dict[str, object], expected: str) -> None:
    problems = check_exchanges([_exchange(**copy.deepcopy(drift))])
    assert any(expected in problem for problem in problems), problems
