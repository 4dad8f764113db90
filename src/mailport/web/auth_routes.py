"""Sign-in and sign-out of operators, and the admin's choice of tenant."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import Response

from mailport.errors import ForbiddenError, UnauthorizedError
from mailport.tenants.keys import hash_api_key
from mailport.web.deps import csrf, current_session
from mailport.web.render import SignInRequired, WebRoute, redirect, render
from mailport.web.session import WebSession, new_session
from mailport.web.state import WebState, get_web

router = APIRouter(route_class=WebRoute, include_in_schema=False)


@router.get("/signin")
async def signin_page(
    request: Request,
    session: WebSession | None = Depends(current_session),
    web: WebState = Depends(get_web),
) -> Response:
    if session is not None and session.is_operator:
        return redirect(request, "/" if session.tenant_id else "/tenants")
    anon = session if session is not None and session.role == "anon" else new_session()
    request.state.web_session = anon
    response = render(request, "signin.html")
    web.sessions.write(response, anon)
    return response


@router.post("/signin", dependencies=[Depends(csrf)])
async def signin(
    request: Request,
    api_key: str = Form("", max_length=500),
    web: WebState = Depends(get_web),
) -> Response:
    tenants = web.services.tenants
    key = api_key.strip()
    try:
        if not key:
            raise UnauthorizedError("enter an API key")
        try:
            principal = await tenants.authenticate_tenant(key)
        except ForbiddenError:
            principal = await tenants.authenticate_admin(key)
    except UnauthorizedError as exc:
        return render(request, "signin.html", {"error": exc.message}, status_code=401)
    if principal.is_admin:
        session = new_session("admin", key_prefix=principal.key_prefix)
        target = "/tenants"
    else:
        assert principal.tenant_id is not None
        tenant = await tenants.repository.get(principal.tenant_id)
        session = new_session(
            "tenant",
            tenant_id=tenant.id,
            tenant_name=tenant.name,
            key_prefix=principal.key_prefix,
            extra={"key_hash": hash_api_key(key)},
        )
        target = "/"
    response = redirect(request, target)
    web.sessions.write(response, session)
    return response


@router.post("/signout", dependencies=[Depends(csrf)])
async def signout(request: Request, web: WebState = Depends(get_web)) -> Response:
    response = redirect(request, "/signin")
    web.sessions.clear(response)
    return response


@router.get("/tenants")
async def tenants_page(
    request: Request,
    session: WebSession | None = Depends(current_session),
    web: WebState = Depends(get_web),
) -> Response:
    if session is None or session.role != "admin":
        raise SignInRequired()
    tenants = await web.services.tenants.repository.page(limit=200)
    return render(request, "tenants.html", {"tenants": tenants})


@router.post("/tenants/select", dependencies=[Depends(csrf)])
async def select_tenant(
    request: Request,
    tenant_id: str = Form(..., max_length=60),
    session: WebSession | None = Depends(current_session),
    web: WebState = Depends(get_web),
) -> Response:
    if session is None or session.role != "admin":
        raise SignInRequired()
    tenant = await web.services.tenants.repository.get(tenant_id)
    updated = new_session("admin", tenant_id=tenant.id, tenant_name=tenant.name, key_prefix="admin")
    response = redirect(request, "/")
    web.sessions.write(response, updated)
    return response
