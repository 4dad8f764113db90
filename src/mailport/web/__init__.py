"""The web UI served at ``/``: the connect wizard, the dashboard, contacts and connect links.

Server-rendered Jinja2 pages with htmx (vendored in ``static/``, no Node build) for the live
parts. :func:`install` adds the routes and the static files to the FastAPI app. See docs/web.md.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"


def install(app: FastAPI) -> None:
    from mailport.web import auth_routes, contacts, dashboard, link_routes, mail, outbox, wizard
    from mailport.web.render import install_page_errors

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for module in (auth_routes, wizard, dashboard, mail, outbox, contacts, link_routes):
        app.include_router(module.router)
    install_page_errors(app)
