"""The janitor inside ``mailport serve`` (:mod:`mailport.janitor`): a router with a lifespan and
no routes, like the dispatcher's. An app built by ``create_app`` for embedding or tests runs
none unless ``MAILPORT_WATCHERS=true``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI

from mailport.bootstrap import Services


@asynccontextmanager
async def janitor_lifespan(app: FastAPI) -> AsyncIterator[None]:
    services: Services | None = getattr(app.state, "services", None)
    wanted = getattr(app.state, "serve", False) or bool(services and services.settings.watchers)
    if services is None or not wanted:
        yield
        return
    from mailport.janitor import start_janitor

    janitor = start_janitor(services.database, services.settings)
    app.state.janitor = janitor
    try:
        yield
    finally:
        await janitor.stop()


router = APIRouter(lifespan=janitor_lifespan)
