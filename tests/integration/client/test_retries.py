"""Retries of 429/503 answers, against a real HTTP server that answers 503 to everything (the
test bed's webhook receiver): bounded for idempotent requests, none for a plain POST."""

from __future__ import annotations

import httpx
import pytest

from mailport import errors
from mailport.client import AsyncClient, Client
from mailport.client.transport import Call, Options, retry_delay
from mailport.retry import RetryPolicy
from tests.fixtures.webhook_receiver import MakeReceiver
from tests.mailstack.dovecot import free_port

FAST = RetryPolicy(first_delay=0.01, max_delay=0.02, max_attempts=3)


def test_an_idempotent_request_is_retried_a_bounded_number_of_times(make_receiver: MakeReceiver):
    busy = make_receiver(status=503, path="")
    with Client(busy.url, "k", retries=FAST) as mp:
        with pytest.raises(errors.ProviderError) as failed:
            mp.mailboxes.list()
        assert failed.value.status == 503  # type: ignore[attr-defined]
        assert len(busy.requests) == 3
        with pytest.raises(errors.ProviderError):
            mp.mailboxes.create({"email": "a@example.com", "auth_method": "password"})
        assert len(busy.requests) == 4  # a POST is not repeated
    assert all(r.headers["user-agent"].startswith("mailport-client/") for r in busy.requests)
    assert busy.requests[0].headers["authorization"] == "Bearer k"


async def test_a_post_with_an_idempotency_key_is_retried(make_receiver: MakeReceiver):
    busy = make_receiver(status=429, path="")
    async with AsyncClient(busy.url, "k", retries=FAST, user_agent="crm/2.1") as mp:
        with pytest.raises(errors.RateLimitedError):
            await mp.sending.send("mbx_1", {"to": ["a@example.com"], "text": "hi"}, idempotency_key="once-1")
    assert len(busy.requests) == 3
    assert {r.headers["idempotency-key"] for r in busy.requests} == {"once-1"}
    assert busy.requests[0].headers["user-agent"].startswith("crm/2.1 mailport-client/")


def test_retry_after_is_honoured_up_to_a_bound():
    options = Options("http://127.0.0.1:1", retries=FAST, max_retry_after=5)
    get = Call("GET", "/v1/mailboxes")
    request = httpx.Request("GET", "http://127.0.0.1:1/v1/mailboxes")

    def answer(status: int, **headers: str) -> httpx.Response:
        return httpx.Response(status, headers=headers, request=request)

    assert retry_delay(options, get, answer(503, **{"Retry-After": "2"}), 1) == 2.0
    assert retry_delay(options, get, answer(429, **{"Retry-After": "60"}), 1) is None  # too long: raise
    assert retry_delay(options, get, answer(503), 1) == pytest.approx(0.01)
    assert retry_delay(options, get, answer(503), 3) is None  # the third failure was the last try
    assert retry_delay(options, get, answer(500), 1) is None
    assert retry_delay(options, Call("POST", "/v1/mailboxes"), answer(503), 1) is None


def test_an_unreachable_server_is_a_connect_error():
    with Client(f"http://127.0.0.1:{free_port()}", "k") as mp, pytest.raises(errors.ConnectError) as failed:
        mp.mailboxes.list()
    assert failed.value.code == "connect_failed" and "127.0.0.1" in failed.value.message
