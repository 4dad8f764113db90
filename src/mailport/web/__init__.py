"""The web UI served at ``/``: the connect wizard, the dashboard, contacts and connect links.

Server-rendered Jinja2 pages with htmx (vendored in ``static/``, no Node build) for the live
parts. :func:`install` adds the routes and the static files to the FastAPI app. See docs/web.md.
FastAPI is imported in :func:`install` only: the CLI and the workers use small modules of this
package (connect links, sealing) without loading the web stack.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

STATIC = Path(__file__).parent / "static"


def install(app: FastAPI) -> None:
    from fastapi.staticfiles import StaticFiles

    from mailport.web import auth_routes, contacts, dashboard, link_routes, mail, outbox, wizard
    from mailport.web.render import install_page_errors

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for module in (auth_routes, wizard, dashboard, mail, outbox, contacts, link_routes):
        app.include_router(module.router)
    install_page_errors(app)
