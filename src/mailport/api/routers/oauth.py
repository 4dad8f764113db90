"""``/v1/oauth/…``, ``/v1/oauth-apps`` and ``DELETE /v1/mailboxes/{id}/oauth``. Thin: parse,
call :class:`mailport.oauth.connect.OAuthConnectService`, render.

A JWT caller (issue 19) signs in mailboxes for its own user: ``authorize`` carries the owner in
the state (the callback creates the mailbox for it, and reconnects only its own); a device sign-in
keeps it on the flow, which only that user then sees.

The start page and the callback are opened by the user's browser (no API key; the signed state
names the tenant). The start page binds the sign-in to that browser with a cookie, which the
callback requires (docs/oauth.md). Their failures are a small HTML page for a browser, or the
usual JSON error body otherwise; with a ``return_url`` the browser is sent back there with
``?mailbox_id=…`` or ``?error=<code>``.
"""

from __future__ import annotations

import html
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from mailport.api.deps import Caller, error_responses, get_services, require_tenant, require_tenant_key
from mailport.crypto import Secret
from mailport.errors import MailportError, OAuthBrowserMismatchError
from mailport.mailboxes.schemas import MailboxRead
from mailport.oauth.device_poller import expires_in
from mailport.oauth.schemas import (
    AuthorizeIn,
    AuthorizeOut,
    CallbackOut,
    DeviceIn,
    DeviceOut,
    DeviceStatusOut,
    DisconnectOut,
    OAuthAppIn,
    OAuthAppOut,
)
from mailport.services import Services

router = APIRouter(tags=["oauth"], responses=error_responses(401, 403, 404, 422))


def _tenant(caller: Caller) -> str:
    assert caller.tenant_id is not None
    return caller.tenant_id


def _with_query(url: str, params: dict[str, str]) -> str:
    return f"{url}{'&' if '?' in url else '?'}{urlencode(params)}"


def _error_page(exc: MailportError) -> HTMLResponse:
    body = (
        "<!doctype html><meta charset=utf-8><title>Connection failed</title>"
        "<h1>The mailbox was not connected</h1>"
        f"<p>{html.escape(exc.message)}</p><p>{html.escape(exc.hint)}</p>"
        f"<p><small>error code: {html.escape(exc.code)}</small></p>"
    )
    return HTMLResponse(body, status_code=exc.http_status)


@router.get("/v1/oauth/device/{flow_id}", summary="State of a device sign-in")
async def device_status(
    flow_id: str, caller: Caller = Depends(require_tenant), services: Services = Depends(get_services)
) -> DeviceStatusOut:
    record = await services.oauth.device_status(_tenant(caller), flow_id, owner=caller.owner)
    return DeviceStatusOut.from_record(record)


@router.post("/v1/oauth/{provider}/authorize", summary="Start a browser sign-in (authorization code + PKCE)")
async def authorize(
    provider: str,
    body: AuthorizeIn,
    caller: Caller = Depends(require_tenant),
    services: Services = Depends(get_services),
) -> AuthorizeOut:
    started = await services.oauth.authorize(
        _tenant(caller),
        provider,
        email=body.email,
        mailbox_id=body.mailbox_id,
        purpose=body.purpose,
        return_url=body.return_url,
        connector=body.connector,
        owner=caller.owner,
    )
    return AuthorizeOut(
        authorization_url=started.authorization_url, state=started.state, expires_in=started.expires_in
    )


def _failure(
    exc: MailportError, request: Request, services: Services, provider: str, state: str | None
) -> Response:
    """A failed start page or callback: back to the return URL, an HTML page, or JSON.

    A browser that did not start the sign-in is not sent to its return URL: that URL belongs
    to whoever started it."""
    bound = not isinstance(exc, OAuthBrowserMismatchError)
    return_url = services.oauth.return_url_of(state, provider) if bound else None
    if return_url:
        return RedirectResponse(_with_query(return_url, {"error": exc.code}), status_code=303)
    if "text/html" in request.headers.get("accept", ""):
        return _error_page(exc)
    raise exc


@router.get(
    "/v1/oauth/{provider}/start",
    summary="The sign-in link: binds the sign-in to this browser, then on to the provider",
    status_code=303,
    response_class=RedirectResponse,
    responses=error_responses(400),
)
async def start(
    provider: str,
    request: Request,
    state: str | None = Query(None, max_length=8000),
    services: Services = Depends(get_services),
) -> Response:
    try:
        started = await services.oauth.begin(provider, state=state, cookies=request.cookies)
    except MailportError as exc:
        return _failure(exc, request, services, provider, state)
    response = RedirectResponse(started.provider_url, status_code=303)
    response.set_cookie(
        started.cookie_name,
        started.cookie_value.reveal(),
        max_age=started.max_age,
        path=started.cookie_path,
        secure=started.secure,
        httponly=True,
        samesite="lax",  # sent on the provider's top-level redirect back to the callback
    )
    return response


@router.get(
    "/v1/oauth/{provider}/callback",
    summary="Where the provider sends the browser back",
    response_model=CallbackOut,
    responses=error_responses(400, 403, 502, 503),
)
async def callback(
    provider: str,
    request: Request,
    code: str | None = Query(None, max_length=4096),
    state: str | None = Query(None, max_length=8000),
    error: str | None = Query(None, max_length=200),
    error_description: str | None = Query(None, max_length=2000),
    services: Services = Depends(get_services),
) -> Response:
    try:
        connected = await services.oauth.callback(
            provider,
            state=state,
            code=code,
            error=error,
            error_description=error_description,
            cookies=request.cookies,
        )
    except MailportError as exc:
        return _failure(exc, request, services, provider, state)
    if connected.return_url:
        target = _with_query(
            connected.return_url, {"mailbox_id": connected.mailbox.id, "status": "connected"}
        )
        return RedirectResponse(target, status_code=303)
    out = CallbackOut(created=connected.created, mailbox=MailboxRead.from_model(connected.mailbox))
    return Response(out.model_dump_json(), media_type="application/json")


@router.post("/v1/oauth/{provider}/device", status_code=201, summary="Start a device sign-in (RFC 8628)")
async def start_device(
    provider: str,
    body: DeviceIn,
    caller: Caller = Depends(require_tenant),
    services: Services = Depends(get_services),
) -> DeviceOut:
    record = await services.oauth.start_device(
        _tenant(caller),
        provider,
        email=body.email,
        purpose=body.purpose,
        connector=body.connector,
        owner=caller.owner,
    )
    return DeviceOut(
        flow_id=record.id,
        user_code=record.user_code,
        verification_uri=record.verification_uri,
        verification_uri_complete=record.verification_uri_complete,
        expires_in=expires_in(record.expires_at, services.oauth.now()),
        interval=record.interval,
    )


@router.delete("/v1/mailboxes/{mailbox_id}/oauth", summary="Disconnect: revoke at the provider, erase tokens")
async def disconnect(
    mailbox_id: str, caller: Caller = Depends(require_tenant), services: Services = Depends(get_services)
) -> DisconnectOut:
    revoked = await services.oauth.disconnect(_tenant(caller), mailbox_id)
    mailbox = await services.mailboxes.get(_tenant(caller), mailbox_id)
    return DisconnectOut(revoked=revoked, mailbox=MailboxRead.from_model(mailbox))


@router.get("/v1/oauth-apps", summary="This tenant's own OAuth apps")
async def list_apps(
    caller: Caller = Depends(require_tenant_key), services: Services = Depends(get_services)
) -> list[OAuthAppOut]:
    flow = services.oauth.oauth.code_flow
    return [
        OAuthAppOut.from_stored(app, flow.redirect_uri(app.provider))
        for app in await services.oauth.list_apps(_tenant(caller))
    ]


@router.put("/v1/oauth-apps/{provider}", summary="Register (or replace) this tenant's app for a provider")
async def put_app(
    provider: str,
    body: OAuthAppIn,
    caller: Caller = Depends(require_tenant_key),
    services: Services = Depends(get_services),
) -> OAuthAppOut:
    stored = await services.oauth.put_app(
        _tenant(caller),
        provider,
        client_id=body.client_id,
        client_secret=Secret(body.client_secret.get_secret_value()) if body.client_secret else None,
        directory_tenant=body.tenant,
    )
    return OAuthAppOut.from_stored(stored, services.oauth.oauth.code_flow.redirect_uri(provider))


@router.delete("/v1/oauth-apps/{provider}", status_code=204, summary="Remove this tenant's app")
async def delete_app(
    provider: str, caller: Caller = Depends(require_tenant_key), services: Services = Depends(get_services)
) -> Response:
    await services.oauth.delete_app(_tenant(caller), provider)
    return Response(status_code=204)
