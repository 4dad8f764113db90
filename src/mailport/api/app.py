"""FastAPI application factory: wires routers, error handlers and the lifespan, which builds the
services (unless given) and runs the background work of :mod:`mailport.runtime`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from mailport import __version__
from mailport.api.errors import ERROR_BODY_SCHEMA, install_error_handlers
from mailport.api.limits import BodyLimit, RequestLimits
from mailport.api.routers import (
    connect_links,
    contact_groups,
    contacts,
    drafts,
    folders,
    health,
    mail,
    mailboxes,
    messages,
    oauth,
    push,
    push_channels,
    send,
    tenants,
    threads,
)
from mailport.api.routers import contact_sync as contact_sync_routes
from mailport.api.routers import events as events_routes
from mailport.api.routers import webhooks as webhook_routes
from mailport.api.routers import workers as worker_routes
from mailport.api.routers.check import router as check_router
from mailport.api.routers.detect import router as detect_router
from mailport.bootstrap import build
from mailport.config import Settings
from mailport.runtime import Runtime
from mailport.services import Services
from mailport.web import install as install_web


def create_app(settings: Settings | None = None, *, services: Services | None = None) -> FastAPI:
    """Build the app.

    ``services`` may be passed in (tests, embedding); they are then the caller's to close.
    Otherwise they are built from ``settings`` when the app starts and closed when it stops.
    """
    settings = settings or (services.settings if services else Settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        built = None
        if services is None:
            built = app.state.services = await build(settings)
        current: Services = app.state.services
        # `mailport serve` sets app.state.serve: it runs the background work of an API process
        runtime = Runtime.for_app(current, serve=getattr(app.state, "serve", False))
        try:
            await runtime.start()
            app.state.runtime = runtime
            app.state.orchestrator = runtime.orchestrator
            app.state.dispatcher = runtime.dispatcher
            app.state.janitor = runtime.janitor
            try:
                yield
            finally:
                web = getattr(app.state, "web", None)  # the web UI's running checks: recorded as stopped
                if web is not None:
                    await web.runs.aclose()
                await runtime.stop()
        finally:
            if built is not None:
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
    app.add_middleware(  # before any body is read
        RequestLimits,
        max_bytes=settings.max_request_bytes,
        path_limits={
            push.PREFIX: push.MAX_BODY_BYTES,
            mail.IMPORT_PATH: BodyLimit(settings.max_message_bytes, mail.message_too_large),
            send.SEND_PATH: BodyLimit(
                send.send_body_limit(settings.max_message_bytes), send.message_too_large
            ),
            drafts.DRAFTS_PATH: BodyLimit(
                send.send_body_limit(settings.max_message_bytes), send.message_too_large
            ),
            drafts.DRAFT_PATH: BodyLimit(
                send.send_body_limit(settings.max_message_bytes), send.message_too_large
            ),
        },
        open_prefixes=(push.PREFIX,),  # the providers call it without a key (docs/push.md)
    )
    if services is not None:
        app.state.services = services
    install_error_handlers(app)
    app.include_router(tenants.router)
    app.include_router(worker_routes.router)  # /v1/workers: the fleet (admin key)
    app.include_router(mailboxes.router)
    app.include_router(detect_router)
    app.include_router(oauth.router)
    app.include_router(check_router)
    app.include_router(connect_links.router)  # POST /v1/connect-links (to the web wizard)
    install_web(app)  # the web UI at /
    app.include_router(health.router)
    app.include_router(messages.router)
    app.include_router(mail.router)
    app.include_router(threads.router)
    app.include_router(folders.router)
    app.include_router(send.router)  # POST …/send and the outbox
    app.include_router(drafts.router)  # …/drafts: the drafts folder, and sending a draft
    app.include_router(contact_sync_routes.router)  # …/contacts: a mailbox's contact harvest
    app.include_router(webhook_routes.router)
    app.include_router(events_routes.router)
    app.include_router(push.router)  # POST /v1/push/{connector}/{channel}, called by providers
    app.include_router(push_channels.router)  # /v1/push-channels: a tenant's shared push endpoint
    # /v1/contacts/groups before the contacts router: "groups" is never taken for a contact id
    app.include_router(contact_groups.router)
    app.include_router(contacts.router)  # /v1/contacts (after /v1/contacts/groups: literal paths first)

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
        if (watching := health.watchers_ready(request)) is not None:
            checks["watchers"] = watching
        if (delivering := health.delivery_ready(request)) is not None:
            checks["delivery"] = delivering
        ok = all(checks.values())
        return JSONResponse(
            {"status": "ok" if ok else "unavailable", "checks": checks}, status_code=200 if ok else 503
        )

    return app
