"""One HTTP POST of a signed webhook, through the SSRF guard, classified into an outcome.

The host is vetted (and resolved) by :class:`~mailport.net.guard.HostGuard` and the request goes
to exactly the vetted address: the URL's host is replaced by the address, the ``Host`` header
and TLS SNI/certificate check keep the name (httpx's ``sni_hostname`` extension). Vetting is
cached for ``vet_ttl`` seconds per host so a busy endpoint is not resolved per request.

Every failure — refused connection, timeout, TLS, non-2xx, a host the guard refuses — becomes an
:class:`Outcome` (never an exception): the dispatcher records it as an attempt and retries.
Each endpoint worker owns its own :class:`WebhookSender` and connection pool, so a hanging
endpoint cannot use up connections another endpoint needs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

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
        max_connections: int = 8,
        vet_ttl: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._guard = guard
        self._timeout = timeout
        self._vet_ttl = vet_ttl
        self._vetted: dict[tuple[str, int], tuple[float, VettedHost]] = {}
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            follow_redirects=False,  # a redirect could lead past the guard
            transport=transport,
            trust_env=False,
        )

    async def _vet(self, host: str, port: int) -> VettedHost:
        key = (host, port)
        cached = self._vetted.get(key)
        now = time.monotonic()
        if cached is not None and now - cached[0] < self._vet_ttl:
            return cached[1]
        vetted = await self._guard.vet(host, port)
        self._vetted[key] = (now, vetted)
        return vetted

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> Outcome:
        started = time.monotonic()

        def elapsed() -> int:
            return int((time.monotonic() - started) * 1000)

        try:
            parsed = parse_webhook_url(url)
            vetted = await self._vet(parsed.host, default_port(parsed))
        except MailportError as exc:
            return Outcome("refused", None, f"{exc.code}: {exc}"[:MAX_ERROR_CHARS], elapsed())
        address = str(vetted.addresses[0])
        target = parsed.copy_with(host=address)
        request_headers = {
            **headers,
            "content-type": "application/json",
            "host": parsed.netloc.decode("ascii"),
            "user-agent": "mailport-webhooks",
        }
        extensions = {"sni_hostname": vetted.server_hostname} if parsed.scheme == "https" else {}
        try:
            response = await self._client.post(
                target, content=body, headers=request_headers, extensions=extensions
            )
        except httpx.TimeoutException:
            return Outcome("timeout", None, f"no answer within {self._timeout:g} s", elapsed())
        except httpx.HTTPError as exc:
            return Outcome("network_error", None, f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS], elapsed())
        except OSError as exc:
            return Outcome("network_error", None, f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS], elapsed())
        if 200 <= response.status_code < 300:
            return Outcome("success", response.status_code, None, elapsed())
        detail = response.text[:MAX_ERROR_CHARS] if response.content else response.reason_phrase
        return Outcome(
            "http_error", response.status_code, f"HTTP {response.status_code}: {detail}", elapsed()
        )

    async def aclose(self) -> None:
        await self._client.aclose()
