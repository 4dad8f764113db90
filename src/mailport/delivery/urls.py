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
from mailport.validation import check_http_url


def parse_webhook_url(url: str, *, field: str = "url") -> httpx.URL:
    """An absolute ``http``/``https`` URL (:func:`mailport.validation.check_http_url`) without
    credentials or fragment; InputError otherwise."""
    text = url.strip(" ")  # not str.strip(): it would quietly drop U+2028 and U+0085
    try:
        check_http_url(text)
    except ValueError as exc:
        raise InputError(f"webhook URL: {exc}", field=field) from None
    try:
        parsed = httpx.URL(text)
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise InputError(f"{text!r} is not a valid URL", field=field) from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise InputError("a webhook URL is an absolute https:// (or http://) URL", field=field)
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
