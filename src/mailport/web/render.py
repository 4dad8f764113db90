"""Rendering for the web UI: the Jinja2 environment, and errors as friendly pages.

Web routes use :class:`WebRoute`: a :class:`~mailport.errors.MailportError` raised anywhere in a
page handler becomes a page (or, for an htmx request, an inline message) with the code and the
hint, at the error's HTTP status; an invalid form is a 422 page; a visitor who is not signed in is
sent to the sign-in page. Nothing a person can do in a browser ends in a bare 500 or a JSON body.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from mailport import __version__
from mailport.clock import utc_now
from mailport.errors import MailportError
from mailport.web.checks import LABELS

log = logging.getLogger(__name__)

env = Environment(
    loader=PackageLoader("mailport.web", "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _ago(value: datetime | None) -> str:
    if value is None:
        return "never"
    seconds = int((utc_now() - value).total_seconds())
    if seconds < 60:
        return "just now"
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''} ago"
    return "just now"


env.filters["ago"] = _ago
env.globals["version"] = __version__
env.globals["step_labels"] = LABELS
CONNECTOR_LABELS = {"imap": "IMAP", "gmail_api": "Gmail API", "graph": "Microsoft Graph"}
env.globals["connector_label"] = lambda key: CONNECTOR_LABELS.get(key, key)


class SignInRequired(Exception):
    """Raised by the session dependencies; rendered as a redirect to the sign-in page."""


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def render(
    request: Request, template: str, context: dict[str, Any] | None = None, *, status_code: int = 200
) -> HTMLResponse:
    ctx: dict[str, Any] = {"request": request, "session": getattr(request.state, "web_session", None)}
    ctx.update(context or {})
    return HTMLResponse(env.get_template(template).render(ctx), status_code=status_code)


def error_response(request: Request, *, code: str, detail: str, hint: str, status_code: int) -> HTMLResponse:
    context = {"code": code, "detail": detail, "hint": hint, "status": status_code}
    if is_htmx(request):
        # htmx swaps only 2xx answers by default: answer 200 with the message in place.
        return render(request, "_error.html", context)
    return render(request, "error.html", context, status_code=status_code)


def redirect(request: Request, url: str) -> Response:
    """A redirect that also works for htmx requests (full page navigation)."""
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


class WebRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInRequired:
                return redirect(request, "/signin")
            except MailportError as exc:
                return error_response(
                    request, code=exc.code, detail=exc.message, hint=exc.hint, status_code=exc.http_status
                )
            except RequestValidationError as exc:
                first = exc.errors()[0] if exc.errors() else {}
                field = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path"))
                return error_response(
                    request,
                    code="invalid_input",
                    detail=f"{field}: {first.get('msg', 'invalid input')}",
                    hint="Go back, correct the form and submit it again.",
                    status_code=422,
                )
            except Exception as exc:  # a bug: log it, show a page, never a traceback
                log.error("unexpected %s on %s", type(exc).__name__, request.url.path, exc_info=exc)
                return error_response(
                    request,
                    code="internal_error",
                    detail="Something went wrong on our side.",
                    hint="Try again; if it keeps happening, the operator will find the details in the logs.",
                    status_code=500,
                )

        return route


# Paths that belong to the API and its tooling, never pages: they keep the JSON error body.
API_PATHS = ("/v1/", "/docs", "/redoc", "/openapi.json", "/healthz", "/readyz", "/metrics", "/static/")
WIZARD_AGAIN = "/connect?again=1"


def is_web_path(request: Request) -> bool:
    path = request.url.path
    return not (path.startswith(API_PATHS) or path == "/v1")


def wants_html(request: Request) -> bool:
    """A browser navigating (scripts asking for ``*/*`` keep the JSON body)."""
    return "text/html" in request.headers.get("accept", "")


def install_page_errors(app: FastAPI) -> None:
    """Errors the router raises before any page handler runs (no such page, a POST-only URL
    opened in the address bar) answered as pages; the API's own handler keeps everything else.

    A wizard step is the answer to a form: its URL cannot be opened on its own, and the work in
    progress travelled in that form, not on the server. Opening it again starts the wizard
    over; any other POST-only page URL goes to the dashboard.
    """
    api_handler = app.exception_handlers.get(StarletteHTTPException)

    async def page_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if is_web_path(request) and exc.status_code == 405 and request.method in ("GET", "HEAD"):
            return RedirectResponse(
                WIZARD_AGAIN if request.url.path.startswith("/connect/") else "/", status_code=303
            )
        if not (is_web_path(request) and wants_html(request)):
            if api_handler is None:
                raise exc
            answer = api_handler(request, exc)
            return await answer if inspect.isawaitable(answer) else answer
        if exc.status_code == 404:
            return error_response(
                request,
                code="not_found",
                detail="There is no page at this address.",
                hint="Check the address, or start from the dashboard.",
                status_code=404,
            )
        return error_response(
            request,
            code="bad_request",
            detail=str(exc.detail),
            hint="Go back and try again.",
            status_code=exc.status_code,
        )

    app.add_exception_handler(StarletteHTTPException, page_error)
