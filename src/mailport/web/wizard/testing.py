"""Step 4, the connection test: start it (the wizard's and the dashboard's Test), show its
progress, trust a certificate it was refused, and keep a stored mailbox's health in step with
its outcome (through :class:`~mailport.mailboxes.service.MailboxService`, which tells the
watchers)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from fastapi import Depends, Form, Query, Request
from starlette.responses import Response

from mailport.crypto import Secret
from mailport.errors import ImapSettingsMissingError, InputError
from mailport.failures import classify_code
from mailport.mailboxes.models import MailboxStatus
from mailport.web.checks import CheckRun, CheckTarget
from mailport.web.deps import wizard_user
from mailport.web.draft_step import DraftStep, draft_step
from mailport.web.drafts import Draft, seal
from mailport.web.render import render
from mailport.web.session import WebSession
from mailport.web.state import WebState, get_web
from mailport.web.wizard.context import step_context


def check_target(web: WebState, draft: Draft) -> CheckTarget:
    """What the connection test of ``draft`` checks (with a token source for OAuth); a stored
    mailbox without IMAP settings is refused (the test signs in over IMAP)."""
    if draft.imap is None:
        raise ImapSettingsMissingError(f"{draft.email} has no IMAP settings to test")
    token_source = None
    if draft.auth_method == "oauth2" and draft.mailbox_id:
        mailbox_id = draft.mailbox_id
        tokens = web.services.oauth.oauth.tokens

        async def token_source() -> Secret:
            return await tokens.get_access_token(mailbox_id)

    return CheckTarget(
        email=draft.email,
        imap=draft.imap,
        smtp=draft.smtp,
        password=draft.secret,
        token_source=token_source,
        provider=draft.provider_id or draft.oauth_provider,
    )


def record_check_result(web: WebState, tenant_id: str, draft: Draft) -> Any:
    """After testing a stored mailbox (OAuth), keep its status in step with the result."""

    async def done(run: CheckRun) -> None:
        if draft.mailbox_id is None or draft.password:
            return
        failure = run.first_failure
        if run.ok:
            status = MailboxStatus.CONNECTED
        elif failure is None:
            status = MailboxStatus.ERROR
        else:
            status = classify_code(failure.code, server_said=getattr(failure, "server_said", None)).status
        error = None if failure is None else f"{failure.step} [{failure.code}]: {failure.detail}"[:500]
        await web.services.mailboxes.record_health(
            tenant_id,
            draft.mailbox_id,
            status=status,
            error=None if run.ok else error,
            at=web.services.oauth.now(),
        )

    return done


API_NAMES = {"gmail_api": "Gmail API", "graph": "Microsoft Graph"}


def run_check(
    web: WebState,
    tenant_id: str,
    draft: Draft,
    *,
    context: dict[str, Any],
    on_done: Any = None,
) -> CheckRun:
    """Start the connection test of ``draft``: IMAP/SMTP step by step, or for a mailbox read
    through a mail API, the service's mailbox test through its connector (it records the
    mailbox's health itself)."""
    if draft.connector == "imap":
        return web.runs.start(tenant_id, check_target(web, draft), context=context, on_done=on_done)
    if draft.mailbox_id is None:
        raise InputError(f"the {draft.connector} connector is tested once the mailbox is connected")
    mailbox_id, checks = draft.mailbox_id, web.services.checks
    return web.runs.start_api(
        tenant_id,
        lambda: checks.test_mailbox(tenant_id, mailbox_id),
        context={**context, "api": API_NAMES.get(draft.connector, draft.connector)},
    )


def start_test(request: Request, web: WebState, session: WebSession, draft: Draft) -> Response:
    assert session.tenant_id is not None
    # The same per-tenant budget as POST /v1/check: a connect-link visitor must not turn the
    # wizard into a password-guessing relay or a port scanner (the SSRF guard vets every host).
    web.services.check_limiter.check(session.tenant_id)
    run = run_check(
        web,
        session.tenant_id,
        draft,
        context={
            "draft": seal(web.sealer, draft.with_(tested=True)),
            "retry": seal(web.sealer, draft),
            "smtp": draft.smtp is not None,
        },
        on_done=record_check_result(web, session.tenant_id, draft),
    )
    return render(
        request, "wizard/test.html", step_context(4, draft=draft, sealed=seal(web.sealer, draft), run=run)
    )


async def test_step(step: DraftStep = Depends(draft_step)) -> Response:
    return start_test(step.request, step.web, step.session, step.draft)


async def trust_certificate(
    run_id: str = Form(..., alias="run", max_length=40),
    sha256: str = Form(..., max_length=100),
    step: DraftStep = Depends(draft_step),
) -> Response:
    """ "Trust this certificate": pin the certificate the server presented in that test run (taken
    from the run, never from the form) on the servers that refused it, and test again."""
    run = step.web.runs.get(step.tenant_id, run_id)
    if run is None:
        raise InputError("this test is no longer available", hint="Run the test again.")
    draft = step.draft
    for certificate, protocols, _code in run.refused_certificates:
        if certificate.sha256 != sha256:
            continue
        for protocol in protocols:
            server = draft.imap if protocol == "imap" else draft.smtp
            if server is not None:
                trusted = replace(server, trusted_certificate=certificate)
                draft = draft.with_(**{protocol: trusted})
        return start_test(step.request, step.web, step.session, draft)
    raise InputError("that certificate was not presented in this test", hint="Run the test again.")


async def test_progress(
    request: Request,
    run_id: str,
    panel: bool = Query(False),
    session: WebSession = Depends(wizard_user),
    web: WebState = Depends(get_web),
) -> Response:
    assert session.tenant_id is not None
    run = web.runs.get(session.tenant_id, run_id)
    if run is None:
        raise InputError("this test is no longer available", hint="Run the test again.")
    return render(request, "wizard/_steps.html", {"run": run, "wizard": not panel})
