"""One error body for the whole API: ``{"error", "detail", "hint"}`` (+ ``field`` for validation).

Routers never raise ``HTTPException``: they raise :class:`mailport.errors.MailportError`
subclasses (or let validation fail) and these handlers render them.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from mailport.errors import MailportError

log = logging.getLogger(__name__)

ERROR_BODY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error", "detail", "hint"],
    "properties": {
        "error": {"type": "string", "description": "Stable machine-readable code"},
        "detail": {"type": "string", "description": "What went wrong"},
        "hint": {"type": "string", "description": "What to do about it"},
        "field": {"type": "string", "description": "The offending field, for validation errors"},
        "server_said": {"type": "string", "description": "The mail server's own words"},
    },
}

_HTTP_CODES = {
    400: ("bad_request", "Check the request syntax."),
    401: ("unauthorized", "Send an API key as `Authorization: Bearer <key>`."),
    403: ("forbidden", "This key may not do that."),
    404: ("not_found", "Check the URL; see /docs for the API."),
    405: ("method_not_allowed", "See /docs for the methods this path accepts."),
    413: ("payload_too_large", "Send a smaller request body."),
    415: ("unsupported_media_type", "Send JSON with Content-Type: application/json."),
}


def _unreadable_body(exc: StarletteHTTPException) -> str | None:
    """Why FastAPI could not read a JSON body, when that is what this 400 is.

    FastAPI turns a ``JSONDecodeError`` into a validation error (our 422 ``invalid_json``) but
    any other failure of ``json.loads`` into a bare 400, which the OpenAPI does not list: bytes
    that are not UTF-8 (``UnicodeDecodeError``) and nesting deeper than the parser's recursion
    limit (``RecursionError``). The cause it chains tells them apart from other 400s.
    """
    cause = exc.__cause__
    if exc.status_code != 400:
        return None
    if isinstance(cause, UnicodeError):
        return "the body is not valid UTF-8 JSON"
    if isinstance(cause, RecursionError):
        return "the JSON body is nested too deeply"
    if isinstance(cause, ValueError):
        return "the body is not valid JSON"
    return None


def _invalid_json(detail: str) -> JSONResponse:
    return JSONResponse(
        {
            "error": "invalid_json",
            "detail": detail,
            "hint": "Send one JSON document, UTF-8 encoded, with Content-Type: application/json.",
            "field": "body",
            "errors": [{"field": "body", "message": detail}],
        },
        status_code=422,
    )


def _field_path(loc: Any) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(MailportError)
    async def _mailport_error(request: Request, exc: MailportError) -> JSONResponse:
        headers = None
        retry_after = exc.details.get("retry_after")
        if exc.http_status in (429, 503) and isinstance(retry_after, int | float):
            headers = {"Retry-After": str(max(1, math.ceil(retry_after)))}
        return JSONResponse(exc.to_dict(), status_code=exc.http_status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        field = _field_path(first.get("loc", ()))
        message = str(first.get("msg", "invalid request"))
        code = "invalid_input"
        if first.get("type") == "extra_forbidden":
            code, message = "unknown_field", f"unknown field {field!r}"
        elif first.get("type") == "json_invalid":
            ctx = first.get("ctx")
            error = ctx.get("error", "") if isinstance(ctx, dict) else ""
            return _invalid_json(f"the body is not valid JSON: {error}".rstrip(": "))
        body = {
            "error": code,
            "detail": f"{field}: {message}" if field != "body" else message,
            "hint": "Correct the field and send the request again; see /docs for the schema.",
            "field": field,
            "errors": [
                {"field": _field_path(e.get("loc", ())), "message": str(e.get("msg", ""))} for e in errors
            ],
        }
        return JSONResponse(body, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        unreadable = _unreadable_body(exc)
        if unreadable is not None:
            return _invalid_json(unreadable)
        code, hint = _HTTP_CODES.get(exc.status_code, ("http_error", "See /docs."))
        return JSONResponse(
            {"error": code, "detail": str(exc.detail), "hint": hint},
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # A bug, never a client's fault: log the type only (the message may carry data).
        log.error(
            "unexpected %s on %s %s", type(exc).__name__, request.method, request.url.path, exc_info=exc
        )
        return JSONResponse(
            {"error": "internal_error", "detail": "internal error", "hint": "This is a bug; see the logs."},
            status_code=500,
        )
