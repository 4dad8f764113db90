"""Step 3 for OAuth: the browser sign-in (the OAuth callback creates the mailbox, the wizard
comes back to test it) and the device sign-in for providers that allow it for mail."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlencode

from fastapi import Depends, Form, Query, Request
from starlette.responses import Response

from mailport.errors import InputError, all_error_classes
from mailport.mailboxes.models import AuthMethod
from mailport.web.deps import wizard_user
from mailport.web.draft_step import DraftStep, draft_step
from mailport.web.drafts import Draft
from mailport.web.render import redirect, render
from mailport.web.session import WebSession
from mailport.web.state import WebState, get_web
from mailport.web.wizard.context import oauth_return_url, step_context
from mailport.web.wizard.testing import start_test

LINK_OAUTH_WINDOW = timedelta(minutes=15)


def _hint_for(code: str) -> str:
    for cls in all_error_classes():
        if cls.code == code:
            return cls.hint
    return "Try again, or configure the mailbox manually."


CONNECTOR_FIELD = Form("imap", max_length=40, description="imap, or the provider's mail API")


async def oauth_start(
    provider: str = Form(..., max_length=50),
    connector: str = CONNECTOR_FIELD,
    step: DraftStep = Depends(draft_step),
) -> Response:
    """The sign-in for the connector chosen on the method page (API or IMAP); the OAuth state
    carries it through the provider's redirect to the callback, which creates the mailbox."""
    draft = step.draft
    started = await step.web.services.oauth.authorize(
        step.tenant_id,
        provider,
        email=draft.email,
        mailbox_id=draft.mailbox_id,
        purpose=draft.purpose,
        return_url=oauth_return_url(step.web),
        connector=None if draft.mailbox_id else connector,
        owner=step.session.owner,  # a connect link's user: the callback creates the mailbox for it
    )
    return redirect(step.request, started.authorization_url)


async def oauth_return(
    request: Request,
    mailbox_id: str | None = Query(None, max_length=60),
    error: str | None = Query(None, max_length=100),
    session: WebSession = Depends(wizard_user),
    web: WebState = Depends(get_web),
) -> Response:
    if error or not mailbox_id:
        code = error or "oauth_error"
        return render(
            request,
            "error.html",
            {
                "code": code,
                "detail": "The sign-in did not complete, so no mailbox was connected.",
                "hint": _hint_for(code),
                "status": 400,
                "retry_url": "/connect",
            },
            status_code=400,
        )
    assert session.tenant_id is not None
    mailbox = await web.services.mailboxes.get(session.tenant_id, mailbox_id, owner=session.owner)
    if session.role == "link" and (
        mailbox.auth_method is not AuthMethod.OAUTH2
        or web.services.oauth.now() - mailbox.updated_at > LINK_OAUTH_WINDOW
    ):
        # A connect link finishes the mailbox its own sign-in just stored, nothing else of the tenant.
        raise InputError(
            "this sign-in does not belong to this connect session",
            hint="Start again from the link's first step.",
        )
    draft = Draft(
        tenant_id=session.tenant_id,
        email=mailbox.email,
        provider_id=mailbox.provider_id,
        provider_name=mailbox.oauth.provider.title() if mailbox.oauth else None,
        oauth_provider=mailbox.oauth.provider if mailbox.oauth else None,
        auth_method="oauth2",
        imap=mailbox.imap,
        smtp=mailbox.smtp,
        mailbox_id=mailbox.id,
        purpose=mailbox.purpose or (session.link.purpose if session.link else None),
        connector=mailbox.connector,
    )
    return await start_test(request, web, session, draft)


async def device_start(
    provider: str = Form(..., max_length=50),
    connector: str = CONNECTOR_FIELD,
    step: DraftStep = Depends(draft_step),
) -> Response:
    draft = step.draft
    oauth = step.web.services.oauth
    record = await oauth.start_device(
        step.tenant_id,
        provider,
        email=draft.email,
        purpose=draft.purpose,
        connector=connector,
        owner=step.session.owner,
    )
    remaining = int((record.expires_at - oauth.now()).total_seconds())
    return render(
        step.request,
        "wizard/device.html",
        step_context(3, draft=draft, sealed=step.token, flow=record, remaining=max(0, remaining)),
    )


async def device_status(
    request: Request,
    flow_id: str,
    session: WebSession = Depends(wizard_user),
    web: WebState = Depends(get_web),
) -> Response:
    assert session.tenant_id is not None
    record = await web.services.oauth.device_status(session.tenant_id, flow_id)
    if record.status == "complete" and record.mailbox_id:
        return redirect(request, f"/connect/oauth/return?{urlencode({'mailbox_id': record.mailbox_id})}")
    return render(request, "wizard/_device_status.html", {"flow": record})
