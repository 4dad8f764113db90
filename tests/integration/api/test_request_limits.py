"""Request bodies are bounded (413 ``request_too_large``) and refused without a key before they
are read; the app under test is the real one on the real database."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
from fastapi import FastAPI

from mailport.api import create_app
from tests.integration.api.helpers import mailbox_body

LIMIT = 1024 * 1024  # the default MAILPORT_MAX_REQUEST_BYTES


class CountingBody:
    """A streamed (chunked) body of ``total`` bytes that counts what the server pulled."""

    def __init__(self, total: int, chunk: int = 64 * 1024) -> None:
        self.total, self.chunk, self.pulled = total, chunk, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while self.pulled < self.total:
            piece = b" " * min(self.chunk, self.total - self.pulled)
            self.pulled += len(piece)
            yield piece


def assert_too_large(response: httpx.Response) -> None:
    assert response.status_code == 413, response.text
    body = response.json()
    assert body["error"] == "request_too_large"
    assert str(LIMIT) in body["detail"] and "MAILPORT_MAX_REQUEST_BYTES" in body["hint"]
    assert response.headers["connection"] == "close"


async def test_a_declared_length_over_the_limit_is_refused_with_or_without_a_key(
    app: FastAPI, tenant_client: httpx.AsyncClient
):
    big = b"{" + b" " * LIMIT + b"}"
    headers = {"content-type": "application/json"}
    assert_too_large(await tenant_client.post("/v1/mailboxes", content=big, headers=headers))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as anonymous:
        assert_too_large(await anonymous.post("/v1/mailboxes", content=big, headers=headers))
        assert_too_large(await anonymous.post("/connect/detect", content=big, headers=headers))  # web too


async def test_a_streamed_body_is_cut_off_at_the_limit(tenant_client: httpx.AsyncClient):
    body = CountingBody(300 * 1024 * 1024)
    response = await tenant_client.post(
        "/v1/mailboxes", content=body, headers={"content-type": "application/json"}
    )
    assert_too_large(response)
    assert body.pulled <= LIMIT + body.chunk, body.pulled


async def test_a_body_without_a_key_is_refused_before_it_is_read(app: FastAPI):
    body = CountingBody(LIMIT // 2)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as anonymous:
        response = await anonymous.post(
            "/v1/mailboxes", content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code == 401 and response.json()["error"] == "unauthorized"
        assert response.headers["connection"] == "close"
        assert body.pulled <= body.chunk  # at most what the transport pulled before the app ran
        wrong_scheme = await anonymous.post("/v1/mailboxes", json={}, headers={"authorization": "Basic eDp5"})
        assert wrong_scheme.status_code == 401


async def test_bodies_within_the_limit_and_a_route_with_a_larger_limit_work(
    app: FastAPI, tenant_client: httpx.AsyncClient
):
    created = await tenant_client.post("/v1/mailboxes", json=mailbox_body(label="x" * 100))
    assert created.status_code == 201, created.text
    streamed = CountingBody(LIMIT)  # exactly the limit, chunked: accepted (and then invalid JSON)
    response = await tenant_client.post(
        "/v1/mailboxes", content=streamed, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422 and streamed.pulled == LIMIT


def test_every_v1_operation_with_a_body_requires_a_bearer_key(app: FastAPI):
    """The middleware refuses a /v1 body without a key before reading it: true only while every
    such operation authenticates with a bearer key."""
    schema = create_app(services=app.state.services).openapi()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if path.startswith("/v1/") and "requestBody" in operation:
                assert operation.get("security"), f"{method.upper()} {path} takes a body without a key"
