"""FastAPI application factory: wires routers, error handlers and the service lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from mailport import __version__
from mailport.api.errors import ERROR_BODY_SCHEMA, install_error_handlers
from mailport.api.janitor import router as janitor_router  # retention
from mailport.api.limits import RequestLimits
from mailport.api.routers import events as events_routes  # issue 8 delivery
from mailport.api.routers import health, mailboxes, messages, oauth, tenants
from mailport.api.routers import webhooks as webhook_routes
from mailport.api.routers.check import router as check_router
from mailport.api.routers.detect import router as detect_router
from mailport.bootstrap import Services, build
from mailport.config import Settings
from mailport.web import install as install_web


def create_app(settings: Settings | None = None, *, services: Services | None = None) -> FastAPI:
    """Build the app.

    ``services`` may be passed in (tests, embedding); they are then the caller's to close.
    Otherwise they are built from ``settings`` when the app starts and closed when it stops.
    """
    settings = settings or (services.settings if services else Settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if services is not None:
            yield
            return
        built = await build(settings)
        app.state.services = built
        try:
            yield
        finally:
            await built.aclose()

    app = FastAPI(
        title="mailport",
        version=__version__,
        summary="Connect any mailbox to your application.",
        lifespan=lifespan,
        responses={
            413: {
                "description": "The body is larger than MAILPORT_MAX_REQUEST_BYTES (`request_too_large`)",
                "content": {"application/json": {"schema": ERROR_BODY_SCHEMA}},
            }
        },
    )
    app.add_middleware(RequestLimits, max_bytes=settings.max_request_bytes)  # before any body is read
    if services is not None:
        app.state.services = services
    install_error_handlers(app)
    app.include_router(tenants.router)
    app.include_router(mailboxes.router)
    app.include_router(detect_router)  # issue 5
    app.include_router(oauth.router)
    app.include_router(check_router)  # issue 6
    install_web(app)  # issue 9: web UI at /, POST /v1/connect-links
    app.include_router(health.router)  # issue 8 (also runs the watchers under `mailport serve`)
    app.include_router(messages.router)  # issue 8
    app.include_router(webhook_routes.router)  # issue 8 delivery
    app.include_router(events_routes.router)  # issue 8 delivery
    app.include_router(janitor_router)  # retention: the hourly purge under `mailport serve`

    @app.get("/healthz", tags=["ops"], summary="The process is alive")
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok", "version": __version__})

    @app.get("/readyz", tags=["ops"], summary="The service can do its work")
    async def readyz(request: Request) -> JSONResponse:
        current: Services | None = getattr(request.app.state, "services", None)
        checks = {
            "key_ring": current is not None and current.key_ring.key_count > 0,
            "database": current is not None and await current.database.ping(),
        }
        if (watching := health.watchers_ready(request)) is not None:  # issue 8
            checks["watchers"] = watching
        ok = all(checks.values())
        return JSONResponse(
            {"status": "ok" if ok else "unavailable", "checks": checks}, status_code=200 if ok else 503
        )

    return app
