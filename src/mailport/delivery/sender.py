"""One HTTP POST of a signed webhook, through the SSRF guard, classified into an outcome.

The host is vetted (and resolved) by :class:`~mailport.net.guard.HostGuard` and the request goes
to exactly the vetted address (:mod:`mailport.delivery.http1`, TLS verifying the URL's name).
Vetting is cached for ``vet_ttl`` seconds per host so a busy endpoint is not resolved per request.

Every failure — refused connection, timeout, TLS, non-2xx, a host the guard refuses — becomes an
:class:`Outcome` (never an exception): the dispatcher records it as an attempt and retries.
Each endpoint worker owns its own :class:`WebhookSender` and connection pool, so a hanging
endpoint cannot use up connections another endpoint needs. Redirects are not followed (a
redirect could lead past the guard).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass

import httpx

from mailport.delivery.http1 import Http1Pool, ProtocolError
from mailport.delivery.urls import default_port, parse_webhook_url
from mailport.errors import MailportError
from mailport.net.guard import HostGuard, VettedHost

MAX_ERROR_CHARS = 500


@dataclass(frozen=True)
class Outcome:
    """What one attempt produced: ``result`` is success, http_error, timeout, network_error or refused."""

    result: str
    status_code: int | None
    error: str | None
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.result == "success"


class WebhookSender:
    """POSTs to one endpoint's URL (one connection pool per endpoint)."""

    def __init__(
        self,
        guard: HostGuard,
        *,
        timeout: float = 10.0,
        max_connections: int = 16,
        vet_ttl: float = 60.0,
    ) -> None:
        self._guard = guard
        self._timeout = timeout
        self._vet_ttl = vet_ttl
        self._vetted: dict[tuple[str, int], tuple[float, VettedHost]] = {}
        self._parsed: tuple[str, httpx.URL] | None = None  # the endpoint's URL, parsed once
        self._pool = Http1Pool(connect_timeout=timeout, max_idle=max_connections)

    async def _vet(self, host: str, port: int) -> VettedHost:
        key = (host, port)
        cached = self._vetted.get(key)
        now = time.monotonic()
        if cached is not None and now - cached[0] < self._vet_ttl:
            return cached[1]
        vetted = await self._guard.vet(host, port)
        self._vetted[key] = (now, vetted)
        return vetted

    def _parse(self, url: str) -> httpx.URL:
        if self._parsed is None or self._parsed[0] != url:
            self._parsed = (url, parse_webhook_url(url))
        return self._parsed[1]

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> Outcome:
        started = time.monotonic()

        def elapsed() -> int:
            return int((time.monotonic() - started) * 1000)

        try:
            parsed = self._parse(url)
            vetted = await self._vet(parsed.host, default_port(parsed))
        except MailportError as exc:
            return Outcome("refused", None, f"{exc.code}: {exc}"[:MAX_ERROR_CHARS], elapsed())
        request_headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        try:
            async with asyncio.timeout(self._timeout):
                response = await self._pool.post(
                    vetted,
                    tls=parsed.scheme == "https",
                    target=parsed.raw_path,
                    host_header=parsed.netloc,
                    headers=request_headers,
                    body=body,
                )
        except TimeoutError:
            return Outcome("timeout", None, f"no answer within {self._timeout:g} s", elapsed())
        except MailportError as exc:  # connect_vetted: refused, unreachable, connect timeout
            result = "timeout" if isinstance(exc, TimeoutError) else "network_error"
            return Outcome(result, None, f"{exc.code}: {exc}"[:MAX_ERROR_CHARS], elapsed())
        except (OSError, ProtocolError, ssl.SSLError, asyncio.IncompleteReadError) as exc:
            return Outcome("network_error", None, f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS], elapsed())
        if 200 <= response.status < 300:
            return Outcome("success", response.status, None, elapsed())
        detail = response.body.decode("utf-8", "replace")[:MAX_ERROR_CHARS] or response.reason
        return Outcome("http_error", response.status, f"HTTP {response.status}: {detail}", elapsed())

    async def aclose(self) -> None:
        self._pool.close()
