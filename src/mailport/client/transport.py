"""One request of the typed client, on httpx: the URL, the credential, retries and errors.

The generated methods (``resources.py``) only describe a call (:class:`Call`); this module sends
it (the sync transport through the async one, on a thread of its own), with these rules:

- connections go through :func:`mailport.net.connect.http_client` (mailport's resolver, one
  vetted address per connection) with the operator's guard: the application chose the URL;
- the credential goes in ``Authorization: Bearer …`` and nowhere else (it stays a ``Secret``);
- a 429 or 503 answer to an idempotent request (GET, HEAD, PUT, DELETE, or any request carrying
  an ``Idempotency-Key``) is retried after the ``Retry-After`` the server sent, else after
  :attr:`Options.retries`'s backoff, a bounded number of times; a ``Retry-After`` longer than
  :attr:`Options.max_retry_after` is not waited for: the error is raised with it;
- an error answer becomes the exception class the server raised (:mod:`mailport.client.errors`);
  a connection failure or a timeout becomes :class:`mailport.errors.ConnectError` or
  :class:`mailport.errors.MailTimeoutError` (also the builtin ``TimeoutError``).

Written here rather than with an httpx retry transport: those retry on connection errors, not
on a server's 429/503 with its ``Retry-After``, and would hide the idempotency rule.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from mailport import __version__
from mailport.client.errors import error_from_response, retry_after_seconds
from mailport.client.secrets import Secret
from mailport.errors import ConnectError, MailportError, MailTimeoutError
from mailport.net.connect import http_client
from mailport.net.guard import HostGuard
from mailport.retry import RetryPolicy

USER_AGENT = f"mailport-client/{__version__} httpx/{httpx.__version__}"
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
RETRIED = frozenset({429, 503})

BodyT = TypeVar("BodyT")
T = TypeVar("T")


@dataclass(frozen=True)
class Call:
    """One operation's request, as a generated method describes it."""

    method: str
    path: str
    query: Mapping[str, Any] | None = None
    headers: Mapping[str, Any] | None = None
    body: Any = None
    raw_type: str | None = None  # the Content-Type of a bytes body

    @property
    def idempotent(self) -> bool:
        return self.method in IDEMPOTENT or bool(self.headers and self.headers.get("Idempotency-Key"))


@dataclass(frozen=True)
class Options:
    """What every request of one client shares."""

    base_url: str
    credential: Secret | None = None
    timeout: httpx.Timeout = field(default_factory=lambda: httpx.Timeout(30.0))
    retries: RetryPolicy = field(
        default_factory=lambda: RetryPolicy(first_delay=0.5, max_delay=8.0, jitter=0.2, max_attempts=3)
    )
    max_retry_after: float = 30.0
    user_agent: str = USER_AGENT

    def __repr__(self) -> str:
        return f"Options(base_url={self.base_url!r}, credential={'***' if self.credential else None})"


def segment(value: object) -> str:
    """A path parameter, percent-encoded; ``/`` stays (a folder path), ``.``/``..`` cannot climb."""
    text = quote(str(value), safe="/")
    return "/".join(part.replace(".", "%2E") if part in (".", "..") else part for part in text.split("/"))


def with_cursor(body: BodyT, cursor: str | None) -> BodyT:
    """``body`` (a model or a dict) asking for the page after ``cursor``."""
    if isinstance(body, BaseModel):
        return body.model_copy(update={"cursor": cursor})
    if isinstance(body, dict):
        return {**body, "cursor": cursor}  # type: ignore[return-value]
    raise TypeError(f"cannot page a {type(body).__name__} body")


def _query_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_query_value(v) for v in value]
    return value


def build_request(http: httpx.AsyncClient | httpx.Client, options: Options, call: Call) -> httpx.Request:
    params = {k: _query_value(v) for k, v in (call.query or {}).items() if v is not None}
    headers = {"User-Agent": options.user_agent, "Accept": "application/json"}
    if options.credential:
        headers["Authorization"] = f"Bearer {options.credential.reveal()}"
    headers.update({k: str(v) for k, v in (call.headers or {}).items() if v is not None})
    url = options.base_url.rstrip("/") + call.path
    kwargs: dict[str, Any] = {}
    if isinstance(call.body, bytes):
        kwargs["content"] = call.body
        headers["Content-Type"] = call.raw_type or "application/octet-stream"
    elif isinstance(call.body, BaseModel):
        kwargs["content"] = call.body.model_dump_json(by_alias=True, exclude_unset=True)
        headers["Content-Type"] = "application/json"
    elif call.body is not None:
        kwargs["json"] = call.body
    return http.build_request(
        call.method, url, params=params, headers=headers, timeout=options.timeout, **kwargs
    )


def retry_delay(options: Options, call: Call, response: httpx.Response, failures: int) -> float | None:
    """Seconds to wait before trying ``call`` again after ``response``; None: raise now."""
    if response.status_code not in RETRIED or not call.idempotent:
        return None
    limit = options.retries.max_attempts
    if limit is not None and failures >= limit:
        return None
    asked = retry_after_seconds(response.headers.get("Retry-After"))
    if asked is None:
        return options.retries.delay(failures)
    return asked if asked <= options.max_retry_after else None


def _error(response: httpx.Response) -> MailportError:
    try:
        body = response.json()
    except ValueError:
        body = None
    return error_from_response(response.status_code, body, retry_after=response.headers.get("Retry-After"))


def _translated(exc: httpx.TransportError, options: Options) -> MailportError:
    where = options.base_url
    if isinstance(exc, httpx.TimeoutException):
        return MailTimeoutError(f"mailport at {where} did not answer in time ({type(exc).__name__})")
    return ConnectError(
        f"cannot reach mailport at {where} ({type(exc).__name__})",
        hint="Check the client's base_url and that `mailport serve` runs there.",
    )


def _json(response: httpx.Response) -> Any:
    """The JSON of an answer; None for no content or a redirect (``oauth.start`` answers 303)."""
    if response.status_code == 204 or not response.content:
        return None
    if "json" not in response.headers.get("content-type", ""):
        return None
    return response.json()


class AsyncTransport:
    """Sends :class:`Call` s with an ``httpx.AsyncClient`` (given, or made and closed here)."""

    def __init__(
        self,
        options: Options,
        http: httpx.AsyncClient | None = None,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.options = options
        self._own = http is None
        # The application chose base_url, as an operator chooses the CLI's hosts: the operator's
        # guard allows any address, and the connection still goes through mailport.net.
        self._http = http or http_client(HostGuard.for_operator(), timeout=options.timeout)
        self._sleep = sleep

    async def aclose(self) -> None:
        if self._own:
            await self._http.aclose()

    async def _response(self, call: Call, *, stream: bool = False) -> httpx.Response:
        failures = 0
        while True:
            request = build_request(self._http, self.options, call)
            try:
                response = await self._http.send(request, stream=stream)
            except httpx.TransportError as exc:
                raise _translated(exc, self.options) from exc
            if response.status_code < 400:
                return response
            await response.aread()
            await response.aclose()
            failures += 1
            delay = retry_delay(self.options, call, response, failures)
            if delay is None:
                raise _error(response)
            await self._sleep(delay)

    async def send(self, call: Call) -> Any:
        """The answer's JSON (None for no content)."""
        return _json(await self._response(call))

    async def read(self, call: Call) -> bytes:
        """The answer's bytes."""
        return (await self._response(call)).content

    async def stream(self, call: Call) -> AsyncGenerator[bytes, None]:
        """The answer's bytes as they arrive."""
        response = await self._response(call, stream=True)
        try:
            async for chunk in response.aiter_bytes():
                yield chunk
        finally:
            await response.aclose()


def _stop(loop: asyncio.AbstractEventLoop) -> None:
    if not loop.is_closed():
        loop.call_soon_threadsafe(loop.stop)


async def _next(chunks: AsyncGenerator[bytes, None]) -> bytes:
    return await anext(chunks)


class SyncTransport:
    """The same calls for synchronous code: an :class:`AsyncTransport` on a private event loop,
    in a thread of its own, so that both clients connect, retry and fail alike (and through
    mailport's one connection path: there is no synchronous guarded HTTP client to build on)."""

    def __init__(self, options: Options, http: httpx.AsyncClient | None = None) -> None:
        self.options = options
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="mailport-client", daemon=True)
        self._thread.start()
        self._async = AsyncTransport(options, http)
        self._closed = False
        # A client dropped without close() still ends its thread (its connections die with it).
        self._finalizer = weakref.finalize(self, _stop, self._loop)

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        if self._closed:
            coroutine.close()
            raise RuntimeError("this mailport client is closed")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def close(self) -> None:
        if self._closed:
            return
        try:
            self._run(self._async.aclose())
        finally:
            self._closed = True
            self._finalizer.detach()
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()

    def send(self, call: Call) -> Any:
        """The answer's JSON (None for no content)."""
        return self._run(self._async.send(call))

    def read(self, call: Call) -> bytes:
        """The answer's bytes."""
        return self._run(self._async.read(call))

    def stream(self, call: Call) -> Iterator[bytes]:
        """The answer's bytes as they arrive."""
        chunks = self._async.stream(call)
        try:
            while True:
                try:
                    yield self._run(_next(chunks))
                except StopAsyncIteration:
                    return
        finally:
            if not self._closed:
                self._run(chunks.aclose())
