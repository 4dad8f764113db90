"""Fetch autoconfig documents over HTTP(S) through the SSRF guard, and vet probe targets.

Why not a plain ``httpx.get(url)``: the name (``autoconfig.<domain>``, from a user's address)
must resolve through mailport's resolver (``MAILPORT_DNS_NAMESERVERS``) and pass the SSRF guard
before we connect (a detection request must not become a way to reach an internal network). The
HTTP client comes from :func:`mailport.net.connect.http_client`, whose transport vets the URL's
host and connects to exactly the vetted address; the ``Host`` header and the TLS name stay the
URL's. Redirects are not followed.

:class:`DetectionResolver` lets the guard resolve through detection's own dnspython resolver
(the one MX and SRV lookups use), so a detector built for tests sees only the test DNS.
"""

from __future__ import annotations

import ipaddress
import logging

import httpx

from mailport.detect.autoconfig import MAX_DOCUMENT_BYTES
from mailport.detect.dns import DNS, LookupFailed
from mailport.errors import ConnectError, HostNotFoundError, MailportError
from mailport.net.addresses import IPAddress
from mailport.net.guard import HostGuard, VettedHost

log = logging.getLogger(__name__)


class DetectionResolver:
    """:class:`mailport.net.resolve.Resolver` over detection's :class:`DNS`."""

    def __init__(self, dns: DNS) -> None:
        self._dns = dns

    async def resolve(self, host: str) -> list[IPAddress]:
        try:
            found = await self._dns.addresses(host)
        except LookupFailed as exc:
            raise ConnectError(f"{host}: DNS lookup failed ({exc})") from exc
        if not found:
            raise HostNotFoundError(f"{host}: no such host")
        return list(dict.fromkeys(ipaddress.ip_address(a) for a in found))


async def vet_quietly(guard: HostGuard, host: str, port: int) -> VettedHost | None:
    """The vetted host, or None when it does not resolve or the guard refuses it (logged)."""
    try:
        return await guard.vet(host, port)
    except MailportError as exc:
        level = logging.INFO if exc.code == "host_not_allowed" else logging.DEBUG
        log.log(level, "detect: %s: %s", host, exc)
        return None


async def fetch_document(
    client: httpx.AsyncClient, *, scheme: str, host: str, port: int, path: str, timeout: float
) -> bytes | None:
    """GET ``scheme://host:port/path`` with a guarded client; the body of a 200 answer, else None."""
    url = httpx.URL(scheme=scheme, host=host, port=port, path=path)
    try:
        async with client.stream(
            "GET", url, headers={"Accept": "application/xml"}, timeout=timeout
        ) as response:
            if response.status_code != 200:
                log.debug("detect: %s://%s%s answered %s", scheme, host, path, response.status_code)
                return None
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body.extend(chunk)
                if len(body) > MAX_DOCUMENT_BYTES:
                    return None
            return bytes(body)
    except MailportError as exc:  # host_not_allowed: the guard refused the name's address
        log.info("detect: %s://%s%s: %s", scheme, host, path, exc)
    except httpx.HTTPError as exc:
        log.debug("detect: %s://%s%s failed: %s", scheme, host, path, type(exc).__name__)
    return None
