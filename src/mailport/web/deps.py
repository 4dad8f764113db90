"""Dependencies of the web routes: the session, who may see a page, and the CSRF check."""

from __future__ import annotations

from fastapi import Depends, Request

from mailport.errors import ForbiddenError
from mailport.web.render import SignInRequired
from mailport.web.session import WebSession, check_csrf
from mailport.web.state import WebState, get_web


async def current_session(request: Request, web: WebState = Depends(get_web)) -> WebSession | None:
    """The visitor's session, if any (also kept on ``request.state`` for the templates).

    An operator's session stays valid only while the API key it was opened with is active:
    revoking the key signs the browser out at its next request.
    """
    session = web.sessions.read(request)
    if session is not None and session.role == "tenant":
        key_hash = session.extra.get("key_hash")
        found = await web.services.tenants.repository.find_active_key(str(key_hash)) if key_hash else None
        if found is None:
            session = None
    request.state.web_session = session
    return session


async def operator(session: WebSession | None = Depends(current_session)) -> WebSession:
    """A signed-in operator acting for a tenant (the admin must have picked one)."""
    if session is None or not session.is_operator:
        raise SignInRequired()
    if session.tenant_id is None:
        raise ForbiddenError("choose the tenant to act for first", hint="Open /tenants and pick a tenant.")
    return session


async def wizard_user(session: WebSession | None = Depends(current_session)) -> WebSession:
    """An operator, or an end user who came through a connect link that is not finished yet."""
    if session is None or not session.signed_in or session.tenant_id is None:
        if session is not None and session.role == "link":
            raise ForbiddenError(
                "this connect session is finished",
                hint="The mailbox was saved; ask the application for a new link to connect another.",
            )
        raise SignInRequired()
    return session


async def csrf(request: Request, session: WebSession | None = Depends(current_session)) -> None:
    """Every POST: the form's ``csrf`` field or the ``X-CSRF-Token`` header must match."""
    sent = request.headers.get("x-csrf-token")
    if not sent:
        form = await request.form()
        value = form.get("csrf")
        sent = value if isinstance(value, str) else None
    check_csrf(session, sent)
