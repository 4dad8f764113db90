"""The API connectors' HTTP helper against a real local HTTP server that answers from a script:
bearer tokens and the one forced refresh, throttling with Retry-After, bounded retries, error
translation, the per-mailbox concurrency bound and the request count. Sleeps are injected, so
every retry is instant; the server is real (uvicorn on loopback), so is the guarded client."""

from __future__ import annotations

import asyncio
import email.utils
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mailport.connectors.api_http import ApiHttp, mailbox_limiter, retry_after_seconds
from mailport.crypto import Secret
from mailport.errors import (
    ApiNotEnabledError,
    ApiRateLimitedError,
    ConnectError,
    FolderNotFoundError,
    HostNotAllowedError,
    NotFoundError,
    OAuthPermissionMissingError,
    OAuthTokenRejectedError,
    ProviderError,
)
from mailport.metrics import API_REQUESTS
from mailport.net.guard import HostGuard
from tests.fakes import AppServer

Reply = tuple[int, dict[str, Any] | None, dict[str, str]]


@dataclass
class Script:
    """What the server answers next (FIFO; 200 {"ok": true} when empty) and what it saw."""

    replies: list[Reply] = field(default_factory=list)
    seen: list[dict[str, Any]] = field(default_factory=list)
    delay: float = 0.0
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def build_app(script: Script) -> Starlette:
    async def handle(request: Request) -> Response:
        with script.lock:
            script.in_flight += 1
            script.max_in_flight = max(script.max_in_flight, script.in_flight)
        try:
            if script.delay:
                await asyncio.sleep(script.delay)
            script.seen.append(
                {
                    "method": request.method,
                    "path": request.url.path,
                    "query": list(request.query_params.multi_items()),
                    "authorization": request.headers.get("authorization"),
                    "body": await request.body(),
                }
            )
            status, body, headers = script.replies.pop(0) if script.replies else (200, {"ok": True}, {})
            if body is None:
                return Response(status_code=status, headers=headers)
            return JSONResponse(body, status_code=status, headers=headers)
        finally:
            with script.lock:
                script.in_flight -= 1

    return Starlette(
        routes=[Route("/{path:path}", handle, methods=["GET", "POST", "PUT", "PATCH", "DELETE"])]
    )


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[AppServer, Script]]:
    script = Script()
    with AppServer(build_app(script)) as running:
        yield running, script


@pytest.fixture
def script(server: tuple[AppServer, Script]) -> Script:
    _, script = server
    script.replies.clear()
    script.seen.clear()
    script.delay = 0.0
    script.max_in_flight = 0
    return script


@dataclass
class Tokens:
    """A token source that hands out ``t1``, and ``t2``… after each forced refresh."""

    current: int = 1
    refreshes: list[str | None] = field(default_factory=list)

    async def source(self) -> Secret:
        return Secret(f"t{self.current}")

    async def force(self, rejected: Secret | None) -> Secret:
        self.refreshes.append(rejected.reveal() if rejected else None)
        self.current += 1
        return Secret(f"t{self.current}")


@dataclass
class Sleeps:
    waits: list[float] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


GUARD = HostGuard(allowed_hosts=["127.0.0.1"])


def make_http(server: tuple[AppServer, Script], tokens: Tokens, sleeps: Sleeps, **kw: Any) -> ApiHttp:
    running, _ = server
    return ApiHttp(
        running.url,
        guard=kw.pop("guard", GUARD),
        token_source=tokens.source,
        force_refresh=tokens.force,
        sleep=sleeps,
        rand=lambda: 0.0,
        connector="test_api",
        **kw,
    )


def google_error(code: int, reason: str, message: str, status: str) -> dict[str, Any]:
    return {
        "error": {
            "code": code,
            "message": message,
            "errors": [{"message": message, "domain": "global", "reason": reason}],
            "status": status,
        }
    }


async def test_a_request_carries_the_bearer_token_and_is_counted(server, script: Script) -> None:
    tokens, sleeps = Tokens(), Sleeps()
    before = API_REQUESTS.labels(connector="test_api", status="200")._value.get()
    async with make_http(server, tokens, sleeps) as http:
        body = await http.json(
            "GET", "/gmail/v1/users/me/labels", params={"labelIds": ["A", "B"], "x": None, "f": True}
        )
        assert body == {"ok": True}
        assert http.requests_made == 1
    assert script.seen[0]["authorization"] == "Bearer t1"
    assert script.seen[0]["query"] == [("labelIds", "A"), ("labelIds", "B"), ("f", "true")]
    assert API_REQUESTS.labels(connector="test_api", status="200")._value.get() == before + 1


async def test_a_401_costs_one_forced_refresh_and_one_retry(server, script: Script) -> None:
    tokens, sleeps = Tokens(), Sleeps()
    script.replies.append((401, google_error(401, "authError", "Invalid Credentials", "UNAUTHENTICATED"), {}))
    async with make_http(server, tokens, sleeps) as http:
        assert await http.json("GET", "/x") == {"ok": True}
        assert http.requests_made == 2
    assert [s["authorization"] for s in script.seen] == ["Bearer t1", "Bearer t2"]
    assert tokens.refreshes == ["t1"]
    assert sleeps.waits == []


async def test_a_second_401_is_a_rejected_token_without_the_token_in_the_error(
    server, script: Script
) -> None:
    tokens, sleeps = Tokens(), Sleeps()
    body = google_error(401, "authError", "Invalid Credentials", "UNAUTHENTICATED")
    script.replies.extend([(401, body, {}), (401, body, {})])
    async with make_http(server, tokens, sleeps) as http:
        with pytest.raises(OAuthTokenRejectedError) as caught:
            await http.request("GET", "/x")
    assert len(tokens.refreshes) == 1
    assert len(script.seen) == 2
    text = f"{caught.value} {caught.value!r} {caught.value.to_dict()}"
    assert "t1" not in text and "t2" not in text
    assert caught.value.server_said == "Invalid Credentials"


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (429, None),
        (503, None),
        (403, google_error(403, "rateLimitExceeded", "Rate Limit Exceeded", "PERMISSION_DENIED")),
        (403, google_error(403, "userRateLimitExceeded", "User Rate Limit Exceeded", "PERMISSION_DENIED")),
    ],
)
async def test_throttling_waits_as_long_as_retry_after_says(
    server, script: Script, status: int, body
) -> None:
    tokens, sleeps = Tokens(), Sleeps()
    script.replies.extend([(status, body, {"retry-after": "1"}), (status, body, {"retry-after": "0"})])
    async with make_http(server, tokens, sleeps) as http:
        assert await http.json("POST", "/x", json={"a": 1}) == {"ok": True}
        assert http.requests_made == 3
        assert http.waited == 1.0
    assert sleeps.waits == [1.0, 0.0]
    assert script.seen[-1]["body"] == b'{"a": 1}'


async def test_throttling_without_retry_after_backs_off_exponentially(server, script: Script) -> None:
    tokens, sleeps = Tokens(), Sleeps()
    script.replies.extend([(429, None, {})] * 3)
    async with make_http(server, tokens, sleeps) as http:
        await http.request("GET", "/x")
    assert sleeps.waits == [1.0, 2.0, 4.0]


async def test_throttling_is_bounded_then_a_rate_limited_error_with_the_wait(server, script: Script) -> None:
    tokens, sleeps = Tokens(), Sleeps()
    script.replies.extend([(429, {"error": {"code": 429, "message": "slow down"}}, {"retry-after": "1"})] * 4)
    async with make_http(server, tokens, sleeps, max_retries=3) as http:
        with pytest.raises(ApiRateLimitedError) as caught:
            await http.request("GET", "/x")
    assert sleeps.waits == [1.0, 1.0, 1.0]
    assert caught.value.details["retry_after"] == 1.0
    assert caught.value.code == "provider_rate_limited"
    assert caught.value.server_said == "slow down"


async def test_a_wait_beyond_max_wait_is_not_slept_but_raised(server, script: Script) -> None:
    tokens, sleeps = Tokens(), Sleeps()
    script.replies.append((503, None, {"retry-after": "120"}))
    async with make_http(server, tokens, sleeps, max_wait=60) as http:
        with pytest.raises(ApiRateLimitedError) as caught:
            await http.request("GET", "/x")
    assert sleeps.waits == []
    assert caught.value.details["retry_after"] == 120.0


async def test_retry_after_as_an_http_date_and_as_gmails_text() -> None:
    now = datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC)
    later = email.utils.format_datetime(now + timedelta(seconds=7), usegmt=True)
    response = httpx.Response(429, headers={"retry-after": later})
    assert retry_after_seconds(response, now=now) == 7.0
    gmail = httpx.Response(
        429,
        json=google_error(
            429,
            "rateLimitExceeded",
            "User-rate limit exceeded.  Retry after 2024-05-01T10:00:03.000Z",
            "RESOURCE_EXHAUSTED",
        ),
    )
    assert retry_after_seconds(gmail, now=now) == 3.0
    assert retry_after_seconds(httpx.Response(429), now=now) is None


async def test_5xx_is_retried_for_idempotent_requests_only(server, script: Script) -> None:
    tokens, sleeps = Tokens(), Sleeps()
    script.replies.extend([(500, None, {}), (502, None, {})])
    async with make_http(server, tokens, sleeps) as http:
        await http.request("GET", "/x")
        assert sleeps.waits == [1.0, 2.0]
        script.replies.append((500, {"error": {"code": 500, "message": "Backend Error"}}, {}))
        with pytest.raises(ProviderError) as caught:
            await http.request("POST", "/send")  # a send is not repeated after the provider may have acted
        assert caught.value.server_said == "Backend Error"
        script.replies.append((500, None, {}))
        await http.request("POST", "/modify", idempotent=True)


@pytest.mark.parametrize(
    ("status", "body", "headers", "error"),
    [
        (
            403,
            google_error(
                403,
                "insufficientPermissions",
                "Request had insufficient authentication scopes.",
                "PERMISSION_DENIED",
            ),
            {"www-authenticate": 'Bearer realm="https://accounts.google.com/", error="insufficient_scope"'},
            OAuthPermissionMissingError,
        ),
        (
            403,
            google_error(
                403,
                "accessNotConfigured",
                "Gmail API has not been used in project 1 before or it is disabled.",
                "PERMISSION_DENIED",
            ),
            {},
            ApiNotEnabledError,
        ),
        (
            404,
            {
                "error": {
                    "code": "MailboxNotEnabledForRESTAPI",
                    "message": "REST API is not yet supported for this mailbox.",
                }
            },
            {},
            ApiNotEnabledError,
        ),
        (
            404,
            google_error(404, "notFound", "Requested entity was not found.", "NOT_FOUND"),
            {},
            FolderNotFoundError,
        ),
        (400, google_error(400, "invalidArgument", "Invalid label", "INVALID_ARGUMENT"), {}, ProviderError),
    ],
)
async def test_errors_translate_to_mailport_errors(
    server, script: Script, status, body, headers, error
) -> None:
    tokens, sleeps = Tokens(), Sleeps()
    script.replies.append((status, body, headers))
    async with make_http(server, tokens, sleeps) as http:
        with pytest.raises(error) as caught:
            await http.request("GET", "/x?q=secret-search", not_found=FolderNotFoundError)
    assert type(caught.value) is error
    assert "secret-search" not in str(caught.value)
    assert sleeps.waits == []


async def test_an_expected_404_is_returned_to_the_caller(server, script: Script) -> None:
    script.replies.append(
        (404, google_error(404, "notFound", "Requested entity was not found.", "NOT_FOUND"), {})
    )
    async with make_http(server, Tokens(), Sleeps()) as http:
        response = await http.request("GET", "/x", expect=(200, 404))
    assert response.status_code == 404


async def test_a_long_error_body_is_truncated(server, script: Script) -> None:
    script.replies.append((400, {"error": {"code": 400, "message": "x" * 5000}}, {}))
    async with make_http(server, Tokens(), Sleeps()) as http:
        with pytest.raises(ProviderError) as caught:
            await http.request("GET", "/x")
    assert caught.value.server_said is not None and len(caught.value.server_said) <= 300


async def test_network_failures_are_retried_then_a_connect_error() -> None:
    tokens, sleeps = Tokens(), Sleeps()
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there once closed
    http = ApiHttp(
        f"http://127.0.0.1:{port}",
        guard=GUARD,
        token_source=tokens.source,
        sleep=sleeps,
        rand=lambda: 0.0,
        max_retries=2,
    )
    async with http:
        with pytest.raises(ConnectError):
            await http.request("POST", "/send")  # never reached the server: safe to repeat even a send
    assert sleeps.waits == [1.0, 2.0]


async def test_the_host_guard_refuses_before_any_request(server, script: Script) -> None:
    async with make_http(server, Tokens(), Sleeps(), guard=HostGuard()) as http:
        with pytest.raises(HostNotAllowedError):
            await http.request("GET", "/x")
    assert script.seen == []


async def test_requests_of_one_mailbox_share_the_concurrency_bound(server, script: Script) -> None:
    script.delay = 0.05
    limiter = mailbox_limiter("mbx-1", 2)
    assert mailbox_limiter("mbx-1", 2) is limiter
    clients = [make_http(server, Tokens(), Sleeps(), limiter=limiter) for _ in range(2)]
    try:
        await asyncio.gather(*(c.request("GET", f"/x{i}") for c in clients for i in range(4)))
    finally:
        for client in clients:
            await client.aclose()
    assert len(script.seen) == 8
    assert script.max_in_flight == 2


async def test_a_404_default_is_the_neutral_not_found(server, script: Script) -> None:
    script.replies.append((404, None, {}))
    async with make_http(server, Tokens(), Sleeps()) as http:
        with pytest.raises(NotFoundError):
            await http.request("GET", "/x")
    assert "t1" not in repr(http)
