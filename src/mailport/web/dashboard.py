"""The dashboard: every mailbox of the tenant with its health, a 24-hour chart and actions.

Figures per mailbox (live status, processed and failed in 24 h, messages per hour) come from
:mod:`mailport.web.figures` (the ingestion statistics). "Waiting for your
application" counts what a consumer still owes; events no consumer owes are shown apart, with
what to do about them (:mod:`mailport.events.acceptance`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from mailport.clock import utc_now
from mailport.events import acceptance
from mailport.mailboxes.models import AuthMethod, Mailbox, MailboxStatus
from mailport.web.charts import hourly_chart
from mailport.web.deps import csrf, operator
from mailport.web.drafts import Draft, seal
from mailport.web.figures import Figures, figures_for, hour_of
from mailport.web.render import WebRoute, redirect, render
from mailport.web.session import WebSession
from mailport.web.state import WebState, get_web
from mailport.web.wizard.context import form_values, oauth_return_url, step_context
from mailport.web.wizard.testing import record_check_result, run_check

router = APIRouter(route_class=WebRoute, include_in_schema=False)


@dataclass(frozen=True)
class Row:
    mailbox: Mailbox
    figures: Figures | None
    chart: str
    unclaimed: int = 0  # events no consumer owes (no webhook took them, no pull reader covers them)


@router.get("/")
async def dashboard(
    request: Request, session: WebSession = Depends(operator), web: WebState = Depends(get_web)
) -> Response:
    assert session.tenant_id is not None
    page = await web.services.mailboxes.list(session.tenant_id, limit=200)
    now = utc_now()
    all_figures = await figures_for(web.services.database, page.items, now=now)
    async with web.services.database.connect() as conn:
        waiting = await acceptance.waiting_counts(conn, [m.id for m in page.items])
    rows = []
    for mailbox in page.items:
        figures = all_figures.get(mailbox.id)
        chart = hourly_chart(
            figures.hourly if figures else [0] * 24,
            failed=figures.hourly_failed if figures else [],
            end=hour_of(now) + timedelta(hours=1),
            label=f"Messages processed per hour for {mailbox.email}",
        )
        rows.append(Row(mailbox, figures, chart, waiting.get(mailbox.id, acceptance.Waiting()).unclaimed))
    return render(request, "dashboard.html", {"rows": rows, "statuses": MailboxStatus})


@dataclass(frozen=True)
class MailboxAction:
    """A signed-in operator's request about one of the tenant's mailboxes (the buttons below)."""

    request: Request
    mailbox_id: str
    session: WebSession
    web: WebState

    @property
    def tenant_id(self) -> str:
        assert self.session.tenant_id is not None  # operator guarantees it
        return self.session.tenant_id

    async def mailbox(self) -> Mailbox:
        """The mailbox; 404 when it does not exist or belongs to another tenant."""
        return await self.web.services.mailboxes.get(self.tenant_id, self.mailbox_id)

    def back_to_dashboard(self) -> Response:
        return redirect(self.request, "/")


async def mailbox_action(
    request: Request,
    mailbox_id: str,
    session: WebSession = Depends(operator),
    web: WebState = Depends(get_web),
) -> MailboxAction:
    return MailboxAction(request, mailbox_id, session, web)


def _draft_for(session: WebSession, mailbox: Mailbox) -> Draft:
    return Draft(
        tenant_id=session.tenant_id or "",
        email=mailbox.email,
        provider_id=mailbox.provider_id,
        oauth_provider=mailbox.oauth.provider if mailbox.oauth else None,
        auth_method=mailbox.auth_method.value,
        imap=mailbox.imap,
        smtp=mailbox.smtp,
        pop3=mailbox.pop3,
        password=mailbox.password.reveal() if mailbox.password else None,
        mailbox_id=mailbox.id,
        purpose=mailbox.purpose,
        connector=mailbox.connector,
    )


@router.post("/mailboxes/{mailbox_id}/test", dependencies=[Depends(csrf)])
async def test_mailbox(action: MailboxAction = Depends(mailbox_action)) -> Response:
    mailbox = await action.mailbox()
    draft = _draft_for(action.session, mailbox)
    web = action.web
    run = await run_check(
        web,
        action.tenant_id,
        draft,
        context={"mailbox_id": mailbox.id, "smtp": mailbox.smtp is not None},
        on_done=record_check_result(web, action.tenant_id, draft.with_(password=None)),
    )
    return render(action.request, "_test_panel.html", {"run": run, "mailbox": mailbox})


@router.post("/mailboxes/{mailbox_id}/disable", dependencies=[Depends(csrf)])
async def disable(action: MailboxAction = Depends(mailbox_action)) -> Response:
    return await _set_enabled(action, enabled=False)


@router.post("/mailboxes/{mailbox_id}/enable", dependencies=[Depends(csrf)])
async def enable(action: MailboxAction = Depends(mailbox_action)) -> Response:
    return await _set_enabled(action, enabled=True)


async def _set_enabled(action: MailboxAction, *, enabled: bool) -> Response:
    await action.mailbox()
    await action.web.services.mailboxes.set_enabled(action.tenant_id, action.mailbox_id, enabled)
    return action.back_to_dashboard()


@router.post("/mailboxes/{mailbox_id}/delete", dependencies=[Depends(csrf)])
async def delete(action: MailboxAction = Depends(mailbox_action)) -> Response:
    await action.web.services.mailboxes.delete(action.tenant_id, action.mailbox_id)
    return action.back_to_dashboard()


@router.post("/mailboxes/{mailbox_id}/reconnect", dependencies=[Depends(csrf)])
async def reconnect(action: MailboxAction = Depends(mailbox_action)) -> Response:
    """OAuth mailboxes sign in again; password mailboxes get the settings form with a new password."""
    mailbox = await action.mailbox()
    web = action.web
    provider = mailbox.oauth.provider if mailbox.oauth else mailbox.provider_id
    if mailbox.auth_method is AuthMethod.OAUTH2 and provider:
        started = await web.services.oauth.authorize(
            action.tenant_id, provider, mailbox_id=mailbox.id, return_url=oauth_return_url(web)
        )
        return redirect(action.request, started.authorization_url)
    draft = _draft_for(action.session, mailbox).with_(password=None)
    return render(
        action.request,
        "wizard/manual.html",
        step_context(
            3,
            draft=draft,
            sealed=seal(web.sealer, draft),
            values=form_values(draft),
            errors={},
            reconnect=True,
        ),
    )


__all__ = ["router"]
