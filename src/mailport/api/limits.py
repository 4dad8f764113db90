"""Request bodies are bounded, and a request that cannot authenticate is refused before its body.

FastAPI reads and parses a route's whole body before it solves the route's dependencies, so
without this an anonymous client can make the service read and parse any amount of JSON before
authentication answers 401. :class:`RequestLimits` is plain ASGI (it never buffers, unlike
``BaseHTTPMiddleware``) and sits in front of routing:

* a declared ``Content-Length`` above the limit is answered 413 ``request_too_large`` before a
  byte of the body is read;
* a body without a length (chunked) is counted as it arrives; at the limit the 413 is sent and
  the application sees the client disconnect, so at most ``limit`` bytes are ever held;
* a body sent to ``/v1/…`` without ``Authorization: Bearer …`` is answered 401 before it is
  read: every ``/v1`` route that takes a body authenticates with a bearer key (a test walks the
  OpenAPI document to keep that true) — except under ``open_prefixes``: the push routes, which
  providers call without a key and which authenticate each notification themselves, under a
  smaller limit of their own.

Refusals carry ``Connection: close`` so the server stops reading the rest of the body.
FastAPI's own ``max_body_size`` is not used: it runs routing and the handler first, and its 413
is not mailport's error body.

A route that must accept more (the message import), or should accept less (the push routes),
gets its own limit through ``path_limits``: a path prefix, or a path template whose ``{}``
stands for one segment (``/v1/mailboxes/{}/messages/import``), -> bytes, or a
:class:`BodyLimit` whose refusal is an error of the route's own (``message_too_large``);
documented in docs/api.md, Limits.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mailport.errors import MailportError, RequestTooLargeError, UnauthorizedError

_BEARER_PREFIX = "/v1/"


def _too_large(limit: int) -> RequestTooLargeError:
    return RequestTooLargeError(f"the request body is larger than {limit} bytes", limit=limit)


@dataclass(frozen=True, slots=True)
class BodyLimit:
    """A route's own body limit, and the error that refuses a larger body."""

    max_bytes: int
    error: Callable[[int], MailportError] = _too_large


def _matcher(key: str) -> Callable[[str], bool]:
    if "{}" not in key:
        return lambda path: path.startswith(key)
    pattern = re.compile("[^/]+".join(re.escape(part) for part in key.split("{}")) + r"\Z")
    return lambda path: pattern.match(path) is not None


async def _refuse(error: MailportError, scope: Scope, send: Send) -> None:
    response = JSONResponse(error.to_dict(), status_code=error.http_status, headers={"connection": "close"})

    async def no_body() -> Message:  # JSONResponse never reads; a refusal must not either
        return {"type": "http.disconnect"}

    await response(scope, no_body, send)


def _has_body(headers: Headers) -> bool:
    return "transfer-encoding" in headers or headers.get("content-length", "0").strip() not in ("", "0")


def _has_bearer(headers: Headers) -> bool:
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and bool(token.strip())


class RequestLimits:
    """ASGI middleware: the request-body limit and the key-before-body rule (see the module)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        path_limits: Mapping[str, int | BodyLimit] | None = None,
        open_prefixes: Sequence[str] = (),
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.path_limits = [
            (_matcher(key), limit if isinstance(limit, BodyLimit) else BodyLimit(limit))
            for key, limit in (path_limits or {}).items()
        ]
        self.default = BodyLimit(max_bytes)
        self.open_prefixes = tuple(open_prefixes)

    def body_limit(self, path: str) -> BodyLimit:
        for matches, limit in self.path_limits:
            if matches(path):
                return limit
        return self.default

    def limit_for(self, path: str) -> int:
        return self.body_limit(path).max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        body_limit = self.body_limit(scope["path"])
        limit = body_limit.max_bytes
        declared = headers.get("content-length", "").strip()
        if declared.isascii() and declared.isdigit() and int(declared) > limit:
            await _refuse(body_limit.error(limit), scope, send)
            return
        path = scope["path"]
        needs_key = path.startswith(_BEARER_PREFIX) and not path.startswith(self.open_prefixes)
        if needs_key and _has_body(headers) and not _has_bearer(headers):
            await _refuse(UnauthorizedError("missing API key"), scope, send)
            return

        received = 0
        refused = False
        started = False

        async def counted_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = True
                    if not started:
                        await _refuse(body_limit.error(limit), scope, send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused and not started:
                return  # the 413 went out; the application's late answer goes nowhere
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if not refused:
                raise
            # The application saw the client "disconnect" mid-body and gave up: already answered.
