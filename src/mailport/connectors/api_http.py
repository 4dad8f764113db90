"""The HTTP layer of the API connectors (Gmail API, Microsoft Graph): one small typed helper.

Both connectors make a few hundred kinds of plain JSON requests with a bearer token. What they
share lives here, once, so that neither client re-decides it:

* every connection goes through :func:`mailport.net.connect.http_client` (the host guard and
  mailport's resolver), never a bare ``httpx`` client;
* the bearer token comes from the mailbox's token source; a 401 costs exactly one forced refresh
  and one retry, then :class:`~mailport.errors.OAuthTokenRejectedError` (an authentication
  failure is never retried beyond that);
* throttling — 429, 503, Gmail's 403 ``rateLimitExceeded`` / ``userRateLimitExceeded`` — waits
  as long as the provider asks (``Retry-After`` in seconds or as an HTTP date, Gmail's "Retry
  after <time>"), else exponentially with jitter, bounded in attempts and in total waiting; then
  :class:`~mailport.errors.ApiRateLimitedError` with the wait the provider asked for;
* other 5xx answers and network failures are retried the same bounded way when repeating the
  request is safe (idempotent methods, or the caller says so: a send is not repeated after the
  provider may have acted on it), then ``ProviderError`` / ``ConnectError`` / ``MailTimeoutError``
  (temporary, see :mod:`mailport.failures`);
* 403 insufficient scope → :class:`~mailport.errors.OAuthPermissionMissingError`; the API switched
  off (Gmail ``accessNotConfigured``, Graph ``MailboxNotEnabledForRESTAPI``) →
  :class:`~mailport.errors.ApiNotEnabledError`; 404 → the not-found class the caller names, unless
  the caller expects it;
* requests of one mailbox share one :class:`asyncio.Semaphore` (Graph allows four concurrent
  requests per mailbox and answers MailboxConcurrency beyond; Gmail's per-user quota is gentler
  with a bound too), even across the connector instances of its folder watchers; a request that
  the provider fans out (a Graph ``$batch``: Graph dispatches up to four of its parts at once to
  the mailbox) takes several slots (``slots``), all of them or none;
* every request is counted (:attr:`ApiHttp.requests_made`, for the bench's "requests per ingested
  message", and :data:`mailport.metrics.API_REQUESTS` by connector and status);
* tokens never reach a log line, an exception or a repr; provider bodies quoted in errors are
  truncated.

Hand-written rather than a retry library: the decisions (which answers are throttling, how a
provider spells the wait, when a refresh is due) are the providers', and the whole loop is
shorter than its configuration would be. Sleep and clock are parameters, so retry tests are
instant.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json as jsonlib
import logging
import random
import re
import ssl
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from mailport.clock import Clock, utc_now
from mailport.connectors.registry import ForceRefresh, TokenSource
from mailport.crypto import Secret
from mailport.errors import (
    ApiNotEnabledError,
    ApiRateLimitedError,
    ConnectError,
    HostNotAllowedError,
    MailportError,
    MailTimeoutError,
    NotFoundError,
    OAuthPermissionMissingError,
    OAuthTokenRejectedError,
    ProviderError,
)
from mailport.metrics import API_REQUESTS
from mailport.net.connect import http_client
from mailport.net.guard import HostGuard
from mailport.retry import RetryPolicy

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
"""Waits that many seconds (``asyncio.sleep``; tests pass one that returns at once)."""

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
QUOTED_BODY_CHARS = 300  # how much of a provider's error body an exception quotes
RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
SCOPE_REASONS = frozenset({"insufficientPermissions", "ACCESS_TOKEN_SCOPE_INSUFFICIENT", "ErrorAccessDenied"})
NOT_ENABLED_REASONS = frozenset(
    {
        "accessNotConfigured",
        "SERVICE_DISABLED",
        "MailboxNotEnabledForRESTAPI",
        "MailboxNotSupportedForRESTAPI",
    }
)
# Gmail's throttling message: "User-rate limit exceeded.  Retry after 2024-05-01T10:00:00.000Z"
_RETRY_AFTER_TEXT = re.compile(r"Retry after (\d{4}-\d\d-\d\dT[0-9:.]+Z)")
DEFAULT_BACKOFF = RetryPolicy(first_delay=1.0, multiplier=2.0, max_delay=32.0, jitter=0.5)


# --------------------------------------------------------------------------- per-mailbox limits


class MailboxLimiter(asyncio.Semaphore):
    """A mailbox's concurrent requests (a semaphore of ``capacity`` slots) that also hands out
    several slots at once (:meth:`holding`)."""

    def __init__(self, capacity: int) -> None:
        super().__init__(capacity)
        self.capacity = capacity
        self._gate = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def holding(self, slots: int = 1) -> AsyncIterator[None]:
        """Hold ``slots`` (at most ``capacity``) at once. Requests wanting several take them one
        after the other under a gate of their own, so two of them never each hold half of what
        both need (a one-slot holder waits for nothing else, so the gate's holder gets through)."""
        slots = max(1, min(slots, self.capacity))
        if slots == 1:
            async with self:
                yield
            return
        taken = 0
        try:
            async with self._gate:
                for _ in range(slots):
                    await self.acquire()
                    taken += 1
            yield
        finally:
            for _ in range(taken):
                self.release()


_LIMITERS: weakref.WeakValueDictionary[tuple[int, str], MailboxLimiter] = weakref.WeakValueDictionary()


def mailbox_limiter(key: str, concurrency: int) -> MailboxLimiter:
    """The semaphore every :class:`ApiHttp` of mailbox ``key`` shares in this event loop (the
    folder watchers of one mailbox each build their own client; the provider counts them as one).
    Held weakly: it goes away with the last client holding it."""
    loop_id = id(asyncio.get_running_loop())
    limiter = _LIMITERS.get((loop_id, key))
    if limiter is None:
        limiter = MailboxLimiter(concurrency)
        _LIMITERS[(loop_id, key)] = limiter
    return limiter


# --------------------------------------------------------------------------- pure helpers


def retry_after_seconds(response: httpx.Response, *, now: datetime) -> float | None:
    """The wait a throttling answer asks for: ``Retry-After`` in seconds or as an HTTP date, or
    Gmail's "Retry after <RFC 3339 time>" in the error message; None when it says nothing."""
    header = response.headers.get("retry-after")
    if header:
        header = header.strip()
        try:
            return max(0.0, float(header))
        except ValueError:
            pass
        try:
            when = email.utils.parsedate_to_datetime(header)
        except (TypeError, ValueError, IndexError):
            when = None
        if when is not None:
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            return max(0.0, (when - now).total_seconds())
    match = _RETRY_AFTER_TEXT.search(_body_text(response, limit=2000))
    if match:
        try:
            when = datetime.fromisoformat(match.group(1).replace("Z", "+00:00"))
        except ValueError:
            return None
        return max(0.0, (when - now).total_seconds())
    return None


def error_reasons(response: httpx.Response) -> set[str]:
    """The machine-readable reasons of an error body, for both providers' shapes:
    Google ``{"error": {"errors": [{"reason"}], "status", "details": [{"reason"}]}}`` and Graph
    ``{"error": {"code", "innerError": {"code"}}}``."""
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        return set()
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return set()
    reasons: set[str] = set()
    for key in ("status", "code"):
        if isinstance(error.get(key), str):
            reasons.add(error[key])
    for item in error.get("errors") or ():
        if isinstance(item, dict) and isinstance(item.get("reason"), str):
            reasons.add(item["reason"])
    for item in error.get("details") or ():
        if isinstance(item, dict) and isinstance(item.get("reason"), str):
            reasons.add(item["reason"])
    inner = error.get("innerError") or error.get("innererror")
    if isinstance(inner, dict) and isinstance(inner.get("code"), str):
        reasons.add(inner["code"])
    return reasons


def error_message(response: httpx.Response) -> str:
    """The provider's own words (``error.message``, else the body), truncated for quoting."""
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        message = body["error"].get("message")
        if isinstance(message, str) and message:
            return message[:QUOTED_BODY_CHARS]
    return _body_text(response, limit=QUOTED_BODY_CHARS)


def _body_text(response: httpx.Response, *, limit: int) -> str:
    try:
        return response.content[:limit].decode("utf-8", "replace")
    except httpx.ResponseNotRead:
        return ""


def _is_throttled(response: httpx.Response, reasons: set[str]) -> bool:
    if response.status_code in (429, 503):
        return True
    if response.status_code == 403 and reasons & RATE_LIMIT_REASONS:
        return True
    # Graph's MailboxConcurrency / ApplicationThrottled come as 429 already; nothing else throttles.
    return False


def _scope_missing(response: httpx.Response, reasons: set[str]) -> bool:
    if reasons & SCOPE_REASONS:
        return True
    challenge = response.headers.get("www-authenticate", "")
    return "insufficient_scope" in challenge


# --------------------------------------------------------------------------- the client


class ApiHttp:
    """Requests to one mailbox's mail API (see the module docstring for what it decides)."""

    def __init__(
        self,
        base_url: str,
        *,
        guard: HostGuard,
        token_source: TokenSource | None,
        force_refresh: ForceRefresh | None = None,
        concurrency: int = 4,
        limiter: MailboxLimiter | None = None,
        clock: Clock = utc_now,
        sleep: Sleep = asyncio.sleep,
        rand: Callable[[], float] = random.random,
        max_retries: int = 5,
        max_wait: float = 60.0,
        backoff: RetryPolicy = DEFAULT_BACKOFF,
        headers: Mapping[str, str] | None = None,
        connector: str = "api",
        timeout: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        """``limiter``: a semaphore shared by all clients of the mailbox (:func:`mailbox_limiter`);
        without it this client has its own of ``concurrency``. ``token_source`` None: no
        ``Authorization`` header (Pub/Sub's token comes from the caller's own source)."""
        self.base_url = base_url.rstrip("/")
        self._token_source = token_source
        self._force_refresh = force_refresh
        self._limiter = limiter or MailboxLimiter(concurrency)
        self._clock = clock
        self._sleep = sleep
        self._rand = rand
        self.max_retries = max_retries
        self.max_wait = max_wait
        self._backoff = backoff
        self._headers = dict(headers or {})
        self.connector = connector
        self._owns_client = client is None
        self._client = client or http_client(guard, ssl_context=ssl_context, timeout=timeout)
        self._token: Secret | None = None
        self.requests_made = 0
        self.waited = 0.0  # seconds spent waiting for throttling and retries, all requests

    def __repr__(self) -> str:
        return f"ApiHttp({self.base_url!r}, connector={self.connector!r}, requests_made={self.requests_made})"

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> ApiHttp:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def url(self, path_or_url: str) -> str:
        """An absolute URL (a provider's next link) as is; a path under the base URL."""
        if path_or_url.startswith(("https://", "http://")):
            return path_or_url
        return f"{self.base_url}/{path_or_url.lstrip('/')}"

    async def json(
        self,
        method: str,
        path_or_url: str,
        *,
        params: Mapping[str, Any] | Iterable[tuple[str, Any]] | None = None,
        json: Any = None,
        expect: Iterable[int] = (200,),
        not_found: type[MailportError] = NotFoundError,
        idempotent: bool | None = None,
    ) -> Any:
        """:meth:`request` and the decoded JSON body (None for an empty one)."""
        response = await self.request(
            method,
            path_or_url,
            params=params,
            json=json,
            expect=expect,
            not_found=not_found,
            idempotent=idempotent,
        )
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise ProviderError(
                f"{self.connector}: {method} {_path(path_or_url)} answered {response.status_code} "
                "with a body that is not JSON",
                server_said=_body_text(response, limit=QUOTED_BODY_CHARS),
            ) from exc

    async def request(
        self,
        method: str,
        path_or_url: str,
        *,
        params: Mapping[str, Any] | Iterable[tuple[str, Any]] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        expect: Iterable[int] = (200,),
        not_found: type[MailportError] = NotFoundError,
        idempotent: bool | None = None,
        slots: int = 1,
    ) -> httpx.Response:
        """Send one request (retrying as the module docstring says) and return the answer whose
        status is in ``expect``; every other answer raises the matching mailport error.
        ``idempotent``: may the request be repeated after a 5xx or a network failure (default:
        by method; throttling answers are always retried: the provider did not act on them).
        ``slots``: how many of the mailbox's concurrent requests it counts as (at most
        ``concurrency``; a ``$batch`` counts as the parts the provider runs at once)."""
        method = method.upper()
        url = self.url(path_or_url)
        expected = frozenset(expect)
        safe = idempotent if idempotent is not None else method in IDEMPOTENT_METHODS
        body = (
            content if content is not None else (jsonlib.dumps(json).encode() if json is not None else None)
        )
        base_headers = dict(self._headers)
        if json is not None and content is None:
            base_headers["content-type"] = "application/json"
        base_headers.update(headers or {})
        refreshed = False
        failures = 0
        waited = 0.0
        while True:
            request_headers = dict(base_headers)
            token = await self._current_token()
            if token is not None:
                request_headers["authorization"] = f"Bearer {token.reveal()}"
            try:
                async with self._limiter.holding(slots):
                    response = await self._client.request(
                        method, url, params=_params(params), content=body, headers=request_headers
                    )
            except HostNotAllowedError:
                raise
            except httpx.HTTPError as exc:
                self._count("error")
                certainly_unsent = isinstance(
                    exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout
                )
                failures += 1
                delay = self._backoff.delay(failures, rand=self._rand)
                if (
                    (safe or certainly_unsent)
                    and failures <= self.max_retries
                    and waited + delay <= self.max_wait
                ):
                    log.info(
                        "%s: %s %s failed (%s); retry %d in %.1f s",
                        self.connector,
                        method,
                        _path(url),
                        type(exc).__name__,
                        failures,
                        delay,
                    )
                    waited += delay
                    await self._wait(delay)
                    continue
                raise _network_error(self.connector, method, url, exc) from exc
            self._count(str(response.status_code))
            status = response.status_code
            if status in expected:
                return response
            reasons = error_reasons(response)
            if status == 401:
                if not refreshed and self._force_refresh is not None:
                    refreshed = True
                    self._token = await self._force_refresh(token)
                    continue
                raise OAuthTokenRejectedError(
                    f"{self.connector}: the provider refused the access token (HTTP 401)",
                    server_said=error_message(response),
                )
            if _is_throttled(response, reasons) or (status in (500, 502, 504) and safe):
                throttled = _is_throttled(response, reasons)
                asked = retry_after_seconds(response, now=self._clock()) if throttled else None
                failures += 1
                delay = asked if asked is not None else self._backoff.delay(failures, rand=self._rand)
                if failures <= self.max_retries and waited + delay <= self.max_wait:
                    log.info(
                        "%s: %s %s answered %d; retry %d in %.1f s",
                        self.connector,
                        method,
                        _path(url),
                        status,
                        failures,
                        delay,
                    )
                    waited += delay
                    await self._wait(delay)
                    continue
                if throttled:
                    raise ApiRateLimitedError(
                        f"{self.connector}: still throttled after {failures} attempts (HTTP {status})",
                        server_said=error_message(response),
                        retry_after=asked,
                    )
            raise self._translate(method, url, response, reasons, not_found)

    def retry_delay(self, failures: int) -> float:
        """The backoff after the ``failures``-th consecutive failure (for callers that retry parts
        of an answer themselves, such as the items of a batch)."""
        return self._backoff.delay(failures, rand=self._rand)

    async def pause(self, seconds: float) -> None:
        """Wait with the injected sleep (counted in :attr:`waited`)."""
        await self._wait(seconds)

    async def refresh(self) -> bool:
        """Force one token refresh (an item of a batch answered 401); False when this client
        cannot refresh."""
        if self._token_source is None or self._force_refresh is None:
            return False
        self._token = await self._force_refresh(await self._token_source())
        return True

    async def _current_token(self) -> Secret | None:
        if self._token_source is None:
            return None
        if self._token is None:
            return await self._token_source()
        token, self._token = self._token, None  # a forced refresh's token, used once
        return token

    async def _wait(self, seconds: float) -> None:
        self.waited += seconds
        await self._sleep(seconds)

    def _count(self, status: str) -> None:
        self.requests_made += 1
        API_REQUESTS.labels(connector=self.connector, status=status).inc()

    def _translate(
        self,
        method: str,
        url: str,
        response: httpx.Response,
        reasons: set[str],
        not_found: type[MailportError],
    ) -> MailportError:
        status = response.status_code
        said = error_message(response)
        where = f"{self.connector}: {method} {_path(url)}"
        if reasons & NOT_ENABLED_REASONS:
            return ApiNotEnabledError(
                f"{where}: the mail API is not enabled for this account", server_said=said
            )
        if status == 403 and _scope_missing(response, reasons):
            return OAuthPermissionMissingError(
                f"{where}: the access token lacks the mail scope", server_said=said
            )
        if status == 404:
            return not_found(f"{where}: not found", server_said=said)
        if status >= 500:
            return ProviderError(f"{where}: the provider failed (HTTP {status})", server_said=said)
        return ProviderError(f"{where}: HTTP {status}", server_said=said, provider_status=status)


def _params(
    params: Mapping[str, Any] | Iterable[tuple[str, Any]] | None,
) -> httpx.QueryParams | None:
    """Query parameters with repeats (``labelIds=A&labelIds=B``), booleans as the APIs spell them,
    None dropped."""
    if params is None:
        return None
    items = params.items() if isinstance(params, Mapping) else params
    result: list[tuple[str, str | int | float | bool | None]] = []
    for key, value in items:
        values = value if isinstance(value, list | tuple) else [value]
        for item in values:
            if item is None:
                continue
            result.append((key, ("true" if item else "false") if isinstance(item, bool) else str(item)))
    return httpx.QueryParams(result)


def _path(url: str) -> str:
    """A URL for messages and logs: no query string (it may carry a search or a page token)."""
    return httpx.URL(url).path if "://" in url else url.split("?", 1)[0]


def _network_error(connector: str, method: str, url: str, exc: httpx.HTTPError) -> MailportError:
    where = f"{connector}: {method} {_path(url)}"
    if isinstance(exc, httpx.TimeoutException):
        return MailTimeoutError(f"{where}: no answer in time ({type(exc).__name__})")
    return ConnectError(f"{where}: {type(exc).__name__}: {str(exc)[:QUOTED_BODY_CHARS]}")


__all__ = [
    "IDEMPOTENT_METHODS",
    "ApiHttp",
    "Sleep",
    "error_message",
    "error_reasons",
    "MailboxLimiter",
    "mailbox_limiter",
    "retry_after_seconds",
]
