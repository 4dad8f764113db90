"""Fetch autoconfig documents over HTTP(S), resolving names through mailport's resolver.

Why not just ``httpx.get(url)``: the name (``autoconfig.<domain>``) must resolve through the
injected resolver (``MAILPORT_DNS_NAMESERVERS``), not the system's, and the address must pass
the private-address guard before we connect (a detection request must not become a way to
reach an internal network). So we resolve, check, and connect to the address ourselves while
keeping the ``Host`` header and TLS SNI/certificate check on the name (httpx's
``sni_hostname`` request extension). Redirects are not followed.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass

import httpx

from mailport.detect.autoconfig import MAX_DOCUMENT_BYTES
from mailport.detect.dns import DNS, LookupFailed

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    """Which resolved addresses detection may connect to."""

    allow_private: bool = False

    def allows(self, ip: str) -> bool:
        if self.allow_private:
            return True
        address = ipaddress.ip_address(ip)
        return address.is_global and not address.is_multicast


def url_host(ip: str) -> str:
    return f"[{ip}]" if ":" in ip else ip


async def resolve_allowed(dns: DNS, host: str, policy: AddressPolicy) -> list[str]:
    """The addresses of ``host`` we may connect to ([] if none, or it does not exist)."""
    try:
        addresses = await dns.addresses(host)
    except LookupFailed as exc:
        log.debug("detect: %s", exc)
        return []
    allowed = [ip for ip in addresses if policy.allows(ip)]
    if addresses and not allowed:
        log.info("detect: %s resolves only to non-public addresses; not connecting", host)
    return allowed


async def fetch_document(
    client: httpx.AsyncClient,
    dns: DNS,
    *,
    scheme: str,
    host: str,
    port: int,
    path: str,
    policy: AddressPolicy,
    timeout: float,
) -> bytes | None:
    """GET ``scheme://host:port/path`` via the resolver; the body of a 200 answer, else None."""
    for ip in (await resolve_allowed(dns, host, policy))[:2]:
        url = f"{scheme}://{url_host(ip)}:{port}{path}"
        default_port = 443 if scheme == "https" else 80
        headers = {"Host": host if port == default_port else f"{host}:{port}", "Accept": "application/xml"}
        extensions = {"sni_hostname": host} if scheme == "https" else {}
        try:
            async with client.stream(
                "GET", url, headers=headers, extensions=extensions, timeout=timeout
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
        except httpx.HTTPError as exc:
            log.debug("detect: %s://%s%s failed: %s", scheme, host, path, type(exc).__name__)
            continue
    return None
