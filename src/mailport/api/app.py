"""FastAPI application factory: wires routers, error handlers and the service lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from mailport import __version__
from mailport.api.errors import install_error_handlers
from mailport.bootstrap import Services, build
from mailport.config import Settings


def create_app(settings: Settings | None = None, *, services: Services | None = None) -> FastAPI:
    """Build the app; ``services`` may be passed in (tests), else they are built from ``settings``."""
    settings = settings or (services.settings if services else Settings())
    services = services or build(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await services.aclose()

    app = FastAPI(
        title="mailport",
        version=__version__,
        summary="Connect any mailbox to your application.",
        lifespan=lifespan,
    )
    app.state.services = services
    install_error_handlers(app)

    @app.get("/healthz", tags=["ops"], summary="The process is alive")
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok", "version": __version__})

    @app.get("/readyz", tags=["ops"], summary="The service can do its work")
    async def readyz() -> JSONResponse:
        checks = {"key_ring": services.key_ring.key_count > 0}
        ok = all(checks.values())
        return JSONResponse(
            {"status": "ok" if ok else "unavailable", "checks": checks}, status_code=200 if ok else 503
        )

    return app
