"""The API's error body back into mailport's own exception tree.

A server raises, say, :class:`mailport.errors.FolderNotFoundError` and answers
``{"error": "folder_not_found", "detail": …, "hint": …}``; the client raises the same class, so a
host application catches ``NotFoundError`` or ``FolderNotFoundError`` exactly as it would around
the library. A code this client does not know (a newer server, or a code the server sets on an
instance) becomes the nearest base for the HTTP status, carrying the server's code.

Every raised error carries ``status`` (also as the typed ``http_status``), ``code``, ``hint``,
``field`` and ``retry_after`` (seconds, from the ``Retry-After`` header; both also in the typed
``details`` dict, as on the server) and ``server_said``.
"""

from __future__ import annotations

import functools
from typing import Any

from mailport import errors

# The base a status falls back to when its code has no class here.
_BY_STATUS: dict[int, type[errors.MailportError]] = {
    400: errors.InputError,
    401: errors.UnauthorizedError,
    403: errors.ForbiddenError,
    404: errors.NotFoundError,
    409: errors.ConflictError,
    413: errors.InputError,
    415: errors.InputError,
    422: errors.InputError,
    429: errors.RateLimitedError,
    502: errors.ProviderError,
    503: errors.ProviderError,
    504: errors.MailTimeoutError,
}


@functools.cache
def classes_by_code() -> dict[str, type[errors.MailportError]]:
    """Every class of the tree by its code (the first one wins when two share a code)."""
    found: dict[str, type[errors.MailportError]] = {}
    pending: list[type[errors.MailportError]] = [errors.MailportError]
    while pending:
        cls = pending.pop(0)
        found.setdefault(cls.code, cls)
        pending.extend(cls.__subclasses__())
    return found


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` in seconds (the API sends delta-seconds; an HTTP date is not used)."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def error_from_response(status: int, body: Any, *, retry_after: str | None = None) -> errors.MailportError:
    """The exception for an error answer: its class by code, else by status."""
    data = body if isinstance(body, dict) else {}
    code = str(data.get("error") or "")
    message = str(data.get("detail") or f"HTTP {status}")
    cls = classes_by_code().get(code)
    if cls is None:
        cls = _BY_STATUS.get(status) or (errors.ProviderError if status >= 500 else errors.MailportError)
    hint = data.get("hint")
    extra = {k: v for k, v in data.items() if k not in ("error", "detail", "hint", "server_said")}
    # The base initializer: a subclass's own (SMTPRejectedError's smtp_code …) wants what only a
    # server knows; everything the body carries lands in ``details`` as on the server.
    exc = cls.__new__(cls)
    errors.MailportError.__init__(
        exc,
        message,
        hint=hint if isinstance(hint, str) else None,
        server_said=data.get("server_said"),
        code=code if code and code != cls.code else None,
        **extra,
    )
    seconds = retry_after_seconds(retry_after)
    if seconds is not None:
        exc.details["retry_after"] = seconds  # where the server's own handler reads it
    # Typed for every caller: ``http_status`` (the answer's, also for a fallback class),
    # ``details["field"]``, ``details["retry_after"]``; the short names are for convenience.
    exc.http_status = status  # type: ignore[misc]
    exc.status = status  # type: ignore[attr-defined]
    exc.field = data.get("field")  # type: ignore[attr-defined]
    exc.retry_after = seconds  # type: ignore[attr-defined]
    return exc
