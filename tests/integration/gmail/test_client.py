"""mailport's Gmail and Pub/Sub clients against the fake's faults: expired and under-scoped
tokens (the local IdP's JWTs), throttling (429 with Retry-After, 403 rateLimitExceeded, also
inside batches), expired history, paginated history, and Pub/Sub push delivery with endpoint
failures retried, duplicated, delayed and dropped notifications."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mailport.connectors.api_http import ApiHttp
from mailport.connectors.gmail import (
    GmailClient,
    HistoryExpiredError,
    ServiceAccountKey,
    ServiceAccountTokens,
)
from mailport.crypto import Secret
from mailport.errors import OAuthClientRejectedError, OAuthPermissionMissingError, OAuthTokenRejectedError
from mailport.net.connect import http_client
from mailport.net.guard import HostGuard
from tests.conftest import issue_token
from tests.fakes import AppServer
from tests.fakes.gmail import GmailFake, make_message, push_endpoint
from tests.fixtures.gmail import GMAIL_SCOPE, gmail_email
from tests.mailstack.idp import MockIdP

GUARD = HostGuard(allowed_hosts=["127.0.0.1"])


@dataclass
class Sleeps:
    waits: list[float] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@dataclass
class IdpTokens:
    """Tokens for one account from the IdP: ``ttl`` per token, each forced refresh a new one."""

    idp: MockIdP
    email: str
    scope: str = GMAIL_SCOPE
    ttl: int = 3600
    refresh_ttl: int = 3600
    refreshes: int = 0
    current: str = ""

    async def source(self) -> Secret:
        if not self.current:
            self.current = str(
                issue_token(self.idp, self.email, scope=self.scope, expires_in=self.ttl)["access_token"]
            )
        return Secret(self.current)

    async def force(self, rejected: Secret | None) -> Secret:
        self.refreshes += 1
        token = issue_token(self.idp, self.email, scope=self.scope, expires_in=self.refresh_ttl)
        self.current = str(token["access_token"])
        return Secret(self.current)


@pytest.fixture
async def client_for(gmail_fake: GmailFake) -> AsyncIterator[Callable[[IdpTokens, Sleeps], GmailClient]]:
    opened: list[ApiHttp] = []

    def make(tokens: IdpTokens, sleeps: Sleeps) -> GmailClient:
        http = ApiHttp(
            gmail_fake.url,
            guard=GUARD,
            token_source=tokens.source,
            force_refresh=tokens.force,
            sleep=sleeps,
            rand=lambda: 0.0,
            connector="gmail_api",
        )
        opened.append(http)
        return GmailClient(http)

    yield make
    for http in opened:
        await http.aclose()


async def test_an_expired_token_is_refreshed_once(idp: MockIdP, client_for) -> None:
    tokens = IdpTokens(idp, gmail_email(), ttl=-10)
    client = client_for(tokens, Sleeps())
    assert (await client.profile()).email == tokens.email
    assert tokens.refreshes == 1


async def test_a_token_that_stays_expired_is_rejected(idp: MockIdP, client_for) -> None:
    tokens = IdpTokens(idp, gmail_email(), ttl=-10, refresh_ttl=-10)
    with pytest.raises(OAuthTokenRejectedError) as caught:
        await client_for(tokens, Sleeps()).profile()
    assert tokens.refreshes == 1
    assert tokens.current not in repr(caught.value.to_dict())


async def test_a_token_without_the_gmail_scope_is_a_missing_permission(idp: MockIdP, client_for) -> None:
    tokens = IdpTokens(idp, gmail_email(), scope="openid email")
    with pytest.raises(OAuthPermissionMissingError) as caught:
        await client_for(tokens, Sleeps()).labels()
    assert caught.value.server_said == "Request had insufficient authentication scopes."


@pytest.mark.parametrize(
    ("status", "reason"), [(429, None), (403, "rateLimitExceeded"), (403, "userRateLimitExceeded")]
)
async def test_throttling_is_waited_out(
    idp: MockIdP, gmail_fake: GmailFake, client_for, status, reason
) -> None:
    tokens, sleeps = IdpTokens(idp, gmail_email()), Sleeps()
    client = client_for(tokens, sleeps)
    gmail_fake.fail(status, 2, email=tokens.email, retry_after=1, reason=reason)
    assert (await client.profile()).email == tokens.email
    assert sleeps.waits == [1.0, 1.0]


async def test_throttled_batch_items_are_fetched_again(
    idp: MockIdP, gmail_fake: GmailFake, client_for
) -> None:
    tokens, sleeps = IdpTokens(idp, gmail_email()), Sleeps()
    client = client_for(tokens, sleeps)
    account = gmail_fake.account(tokens.email)
    ids = [account.add_message(make_message(subject=f"m{i}")) for i in range(60)]
    gmail_fake.fail(429, 3, email=tokens.email, retry_after=1, path="/messages/")
    before = client.http.requests_made
    messages = await client.get_messages(ids)
    assert [m.id for m in messages if m] == ids
    assert all(m is not None and m.raw and f"Subject: m{i}".encode() in m.raw for i, m in enumerate(messages))
    assert client.http.requests_made - before == 3  # 50 + 10, then the 3 throttled items again
    assert sleeps.waits == [1.0]


async def test_history_pages_and_expiry(idp: MockIdP, gmail_fake: GmailFake, client_for) -> None:
    tokens = IdpTokens(idp, gmail_email())
    client = client_for(tokens, Sleeps())
    account = gmail_fake.account(tokens.email)
    start = (await client.profile()).history_id
    added = [account.add_message(make_message()) for _ in range(5)]
    account.modify(added[0], add=["STARRED"])
    account.delete(added[1])
    seen, page_token = [], None
    while True:
        page = await client.history(start, page_token=page_token, max_results=2)
        seen += page.records
        if not page.next_page_token:
            break
        page_token = page.next_page_token
    assert [r.messages_added[0].id for r in seen if r.messages_added] == added
    assert [r.labels_added[0].label_ids for r in seen if r.labels_added] == [("STARRED",)]
    assert [r.messages_deleted[0].id for r in seen if r.messages_deleted] == [added[1]]
    assert [int(r.id) for r in seen] == sorted(int(r.id) for r in seen)
    assert page.history_id == str(account.history_id)
    inbox_only = await client.history(start, label_id="STARRED")
    assert len(inbox_only.records) == 1
    account.expire_history()
    with pytest.raises(HistoryExpiredError):
        await client.history(start)
    assert (await client.history(page.history_id)).records == []  # the current id is still good


async def test_a_foreign_service_account_key_is_refused(gmail_fake: GmailFake) -> None:
    info = gmail_fake.pubsub.service_account()
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    info["private_key"] = other.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    async with http_client(GUARD) as http:
        tokens = ServiceAccountTokens(ServiceAccountKey.from_info(info), client=http)
        with pytest.raises(OAuthClientRejectedError) as caught:
            await tokens.token()
    assert "Invalid JWT Signature" in (caught.value.server_said or "")
    assert "PRIVATE KEY" not in repr(ServiceAccountKey.from_info(info))


# --------------------------------------------------------------------------- push delivery


@dataclass
class Receiver:
    """A push endpoint: records each notification; the first ``fail`` answers are 500."""

    fail: int = 0
    got: list[dict[str, object]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> Starlette:
        async def push(request: Request) -> Response:
            body = json.loads(await request.body())
            with self.lock:
                if self.fail > 0:
                    self.fail -= 1
                    return Response(status_code=500)
                data = json.loads(base64.b64decode(body["message"]["data"]))
                self.got.append(
                    {"token": request.query_params.get("token"), **data, "id": body["message"]["messageId"]}
                )
            return Response(status_code=204)

        return Starlette(routes=[Route("/v1/push/gmail_api/{channel}", push, methods=["POST"])])


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    target = Receiver()
    with AppServer(target.app()) as server:
        yield target, server.url


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def _watched(gmail_fake: GmailFake, base_url: str) -> tuple[str, str]:
    email = gmail_email()
    topic = gmail_fake.pubsub.create_topic(f"projects/p/topics/t-{email}")
    gmail_fake.pubsub.create_subscription(
        f"projects/p/subscriptions/push-{email}",
        topic,
        push_endpoint=push_endpoint(base_url, "chan1", "s3cret"),
    )
    return email, topic


async def _watch(idp: MockIdP, client_for, email: str, topic: str) -> None:
    await client_for(IdpTokens(idp, email), Sleeps()).watch(topic)


async def test_push_delivery_retries_a_failing_endpoint(
    idp, gmail_fake: GmailFake, client_for, receiver
) -> None:
    target, url = receiver
    email, topic = _watched(gmail_fake, url)
    await _watch(idp, client_for, email, topic)
    target.fail = 2
    gmail_fake.account(email).add_message(make_message())
    await asyncio.to_thread(wait_until, lambda: len(target.got) == 1)
    note = target.got[0]
    assert note["emailAddress"] == email and note["token"] == "s3cret"
    assert note["historyId"] == gmail_fake.account(email).history_id

    def attempts() -> list[int]:
        return [d["status"] for d in gmail_fake.pubsub.deliveries if d["message_id"] == note["id"]]

    # The fake records an attempt after the receiver has answered it, so the last one may lag the note.
    await asyncio.to_thread(wait_until, lambda: len(attempts()) >= 3)
    assert attempts() == [500, 500, 204]


async def test_duplicated_delayed_and_dropped_notifications(
    idp, gmail_fake: GmailFake, client_for, receiver
) -> None:
    target, url = receiver
    email, topic = _watched(gmail_fake, url)
    await _watch(idp, client_for, email, topic)
    account = gmail_fake.account(email)
    gmail_fake.pubsub.disturb("drop")
    account.add_message(make_message())
    gmail_fake.pubsub.disturb("duplicate")
    account.add_message(make_message())
    gmail_fake.pubsub.disturb("delay", delay=0.3)
    started = time.monotonic()
    account.add_message(make_message())
    await asyncio.to_thread(wait_until, lambda: len(target.got) == 3)
    assert time.monotonic() - started >= 0.3
    history_ids = [n["historyId"] for n in target.got]
    assert history_ids[0] == history_ids[1]  # the duplicate: the same message id twice
    assert target.got[0]["id"] == target.got[1]["id"]
    assert history_ids[2] == account.history_id
    assert len(gmail_fake.pubsub.published) >= 3
