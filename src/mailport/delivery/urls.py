"""Webhook URLs: parse and check a URL a tenant gives us, and vet its host against the SSRF guard.

A webhook URL makes the service send HTTP requests wherever a tenant says, so it gets the same
guard as connection checks (:mod:`mailport.net.guard`): loopback, private, link-local, metadata …
addresses are refused with ``host_not_allowed`` unless ``MAILPORT_ALLOW_PRIVATE_HOSTS`` or
``MAILPORT_ALLOWED_HOSTS`` allow them. The guard runs when the endpoint is saved (a clear 422)
and again before every connection (the name may resolve elsewhere by then); the sender connects
to the vetted address only (see :mod:`mailport.delivery.sender`).
"""

from __future__ import annotations

import httpx

from mailport.errors import InputError
from mailport.net.guard import HostGuard, VettedHost

MAX_URL_LENGTH = 2000


def parse_webhook_url(url: str, *, field: str = "url") -> httpx.URL:
    """An absolute ``http``/``https`` URL without credentials or fragment; InputError otherwise."""
    text = url.strip()
    if not text or len(text) > MAX_URL_LENGTH:
        raise InputError(f"a webhook URL has 1 to {MAX_URL_LENGTH} characters", field=field)
    if any(ch.isspace() or ord(ch) < 32 for ch in text):
        raise InputError("a webhook URL contains no spaces or control characters", field=field)
    try:
        parsed = httpx.URL(text)
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise InputError(f"{text!r} is not a valid URL", field=field) from exc
    if parsed.scheme not in ("http", "https"):
        raise InputError("a webhook URL starts with https:// (or http://)", field=field)
    if not parsed.host:
        raise InputError("a webhook URL names a host", field=field)
    if parsed.userinfo:
        raise InputError(
            "a webhook URL carries no user name or password; use the signing secret", field=field
        )
    if parsed.fragment:
        raise InputError("a webhook URL has no #fragment", field=field)
    return parsed


def default_port(url: httpx.URL) -> int:
    return url.port or (443 if url.scheme == "https" else 80)


async def vet_webhook_url(url: str, guard: HostGuard, *, field: str = "url") -> tuple[httpx.URL, VettedHost]:
    """Parse ``url`` and vet its host (raises ``InputError`` / ``HostNotAllowedError``)."""
    parsed = parse_webhook_url(url, field=field)
    vetted = await guard.vet(parsed.host, default_port(parsed), field=field)
    return parsed, vetted
