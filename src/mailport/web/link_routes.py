"""``GET /link/{token}``: where a connect link lands. The first visit turns the link into a
wizard session for its tenant; every later visit gets a friendly "already used" page."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from mailport.web.render import WebRoute, redirect
from mailport.web.session import LinkGrant, new_session
from mailport.web.state import WebState, get_web

router = APIRouter(route_class=WebRoute, include_in_schema=False)


@router.get("/link/{token}")
async def open_link(request: Request, token: str, web: WebState = Depends(get_web)) -> Response:
    link = await web.links.consume(token)
    tenant = await web.services.tenants.repository.get(link.tenant_id)
    session = new_session(
        "link",
        tenant_id=tenant.id,
        tenant_name=tenant.name,
        link=LinkGrant(
            link.id,
            purpose=link.purpose,
            email=link.email,
            return_url=link.return_url,
            connector=link.connector,
            owner=link.owner,
        ),
    )
    response = redirect(request, "/connect")
    web.sessions.write(response, session)
    return response
