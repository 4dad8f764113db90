"""The dashboard: every mailbox of the tenant with its health, a 24-hour chart and actions.

Figures per mailbox (live status, processed and failed in 24 h, messages per hour) come from
:mod:`mailport.web.figures` (the ingestion statistics of issue 8).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from mailport.mailboxes.models import AuthMethod, Mailbox, MailboxStatus
from mailport.web.charts import hourly_chart
from mailport.web.deps import csrf, operator
from mailport.web.drafts import Draft, Server, seal
from mailport.web.figures import Figures, figures_for, hour_of
from mailport.web.render import WebRoute, redirect, render
from mailport.web.session import WebSession
from mailport.web.state import WebState, get_web
from mailport.web.wizard import STEPS, _values

router = APIRouter(route_class=WebRoute, include_in_schema=False)


@dataclass(frozen=True)
class Row:
    mailbox: Mailbox
    figures: Figures | None
    chart: str


@router.get("/")
async def dashboard(
    request: Request, session: WebSession = Depends(operator), web: WebState = Depends(get_web)
) -> Response:
    assert session.tenant_id is not None
    page = await web.services.mailboxes.list(session.tenant_id, limit=200)
    now = datetime.now(UTC)
    all_figures = await figures_for(web.services.database, page.items, now=now)
    rows = []
    for mailbox in page.items:
        figures = all_figures.get(mailbox.id)
        chart = hourly_chart(
            figures.hourly if figures else [0] * 24,
            failed=figures.hourly_failed if figures else [],
            end=hour_of(now) + timedelta(hours=1),
            label=f"Messages processed per hour for {mailbox.email}",
        )
        rows.append(Row(mailbox, figures, chart))
    return render(request, "dashboard.html", {"rows": rows, "statuses": MailboxStatus})


async def _mailbox(web: WebState, session: WebSession, mailbox_id: str) -> Mailbox:
    assert session.tenant_id is not None
    return await web.services.mailboxes.get(session.tenant_id, mailbox_id)


def _draft_for(session: WebSession, mailbox: Mailbox) -> Draft:
    return Draft(
        tenant_id=session.tenant_id or "",
        email=mailbox.email,
        provider_id=mailbox.provider_id,
        oauth_provider=mailbox.oauth.provider if mailbox.oauth else None,
        auth_method=mailbox.auth_method.value,
        imap=Server.from_model(mailbox.imap),
        smtp=Server.from_model(mailbox.smtp),
        password=mailbox.password.reveal() if mailbox.password else None,
        mailbox_id=mailbox.id,
        purpose=mailbox.purpose,
    )


@router.post("/mailboxes/{mailbox_id}/test", dependencies=[Depends(csrf)])
async def test_mailbox(
    request: Request,
    mailbox_id: str,
    session: WebSession = Depends(operator),
    web: WebState = Depends(get_web),
) -> Response:
    mailbox = await _mailbox(web, session, mailbox_id)
    draft = _draft_for(session, mailbox)
    assert session.tenant_id is not None
    from mailport.web.wizard import _record_result, _target

    run = web.runs.start(
        session.tenant_id,
        _target(web, draft),
        context={"mailbox_id": mailbox.id, "smtp": mailbox.smtp is not None},
        on_done=_record_result(web, session.tenant_id, draft.with_(password=None)),
    )
    return render(request, "_test_panel.html", {"run": run, "mailbox": mailbox})


@router.post("/mailboxes/{mailbox_id}/disable", dependencies=[Depends(csrf)])
async def disable(
    request: Request,
    mailbox_id: str,
    session: WebSession = Depends(operator),
    web: WebState = Depends(get_web),
) -> Response:
    await _set_enabled(web, session, mailbox_id, enabled=False)
    return redirect(request, "/")


@router.post("/mailboxes/{mailbox_id}/enable", dependencies=[Depends(csrf)])
async def enable(
    request: Request,
    mailbox_id: str,
    session: WebSession = Depends(operator),
    web: WebState = Depends(get_web),
) -> Response:
    await _set_enabled(web, session, mailbox_id, enabled=True)
    return redirect(request, "/")


async def _set_enabled(web: WebState, session: WebSession, mailbox_id: str, *, enabled: bool) -> None:
    assert session.tenant_id is not None
    await _mailbox(web, session, mailbox_id)
    await web.services.mailboxes.set_enabled(session.tenant_id, mailbox_id, enabled)


@router.post("/mailboxes/{mailbox_id}/delete", dependencies=[Depends(csrf)])
async def delete(
    request: Request,
    mailbox_id: str,
    session: WebSession = Depends(operator),
    web: WebState = Depends(get_web),
) -> Response:
    assert session.tenant_id is not None
    await web.services.mailboxes.delete(session.tenant_id, mailbox_id)
    return redirect(request, "/")


@router.post("/mailboxes/{mailbox_id}/reconnect", dependencies=[Depends(csrf)])
async def reconnect(
    request: Request,
    mailbox_id: str,
    session: WebSession = Depends(operator),
    web: WebState = Depends(get_web),
) -> Response:
    """OAuth mailboxes sign in again; password mailboxes get the settings form with a new password."""
    mailbox = await _mailbox(web, session, mailbox_id)
    assert session.tenant_id is not None
    provider = mailbox.oauth.provider if mailbox.oauth else mailbox.provider_id
    if mailbox.auth_method is AuthMethod.OAUTH2 and provider:
        started = await web.services.oauth.authorize(
            session.tenant_id,
            provider,
            mailbox_id=mailbox.id,
            return_url=f"{web.services.settings.effective_public_url}/connect/oauth/return",
        )
        return redirect(request, started.authorization_url)
    draft = _draft_for(session, mailbox).with_(password=None)
    return render(
        request,
        "wizard/manual.html",
        {
            "steps": STEPS,
            "step": 3,
            "draft": draft,
            "sealed": seal(web.sealer, draft),
            "values": _values(draft),
            "errors": {},
            "reconnect": True,
        },
    )


__all__ = ["router"]
