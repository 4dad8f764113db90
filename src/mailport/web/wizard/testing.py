"""Step 4, the connection test: start it (the wizard's and the dashboard's Test), show its
progress, trust a certificate it was refused, and keep a stored mailbox's health in step with
its outcome (through :class:`~mailport.mailboxes.service.MailboxService`, which tells the
watchers)."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import replace
from typing import Any

from fastapi import Depends, Form, Query, Request
from starlette.responses import Response

from mailport.crypto import Secret
from mailport.errors import ImapSettingsMissingError, InputError, NotFoundError
from mailport.failures import classify_code
from mailport.mailboxes.models import MailboxStatus
from mailport.web.checks import CheckRun, CheckTarget
from mailport.web.deps import wizard_user
from mailport.web.draft_step import DraftStep, draft_step
from mailport.web.drafts import Draft, open_draft, seal
from mailport.web.render import render
from mailport.web.session import WebSession
from mailport.web.state import WebState, get_web
from mailport.web.wizard.context import step_context


def check_target(web: WebState, draft: Draft) -> CheckTarget:
    """What the connection test of ``draft`` checks (with a token source for OAuth); a stored
    mailbox without IMAP settings is refused (the test signs in over IMAP; over POP3 for a pop3
    draft)."""
    if draft.imap is None and draft.pop3 is None:
        raise ImapSettingsMissingError(f"{draft.email} has no IMAP settings to test")
    token_source = None
    if draft.auth_method == "oauth2" and draft.mailbox_id:
        mailbox_id = draft.mailbox_id
        tokens = web.services.oauth.oauth.tokens

        async def token_source() -> Secret:
            return await tokens.get_access_token(mailbox_id)

    return CheckTarget(
        email=draft.email,
        imap=None if draft.pop3 else draft.imap,
        smtp=draft.smtp,
        pop3=draft.pop3,
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


async def run_check(
    web: WebState,
    tenant_id: str,
    draft: Draft,
    *,
    context: dict[str, Any],
    binding: str | None = None,
    on_done: Any = None,
) -> CheckRun:
    """Start the connection test of ``draft``: IMAP/SMTP step by step, or for a mailbox read
    through a mail API, the service's mailbox test through its connector (it records the
    mailbox's health itself). ``binding``: the digest of the sealed draft the page carries."""
    if draft.connector in ("imap", "pop3"):
        incoming = {"incoming": draft.connector}  # which group the progress shows before its steps
        return await web.runs.start(
            tenant_id,
            check_target(web, draft),
            context={**context, **incoming},
            binding=binding,
            on_done=on_done,
        )
    if draft.mailbox_id is None:
        raise InputError(f"the {draft.connector} connector is tested once the mailbox is connected")
    mailbox_id, checks = draft.mailbox_id, web.services.checks
    return await web.runs.start_api(
        tenant_id,
        lambda: checks.test_mailbox(tenant_id, mailbox_id),
        context={**context, "api": API_NAMES.get(draft.connector, draft.connector)},
        binding=binding,
    )


def draft_digest(token: str) -> str:
    """What the run keeps of the sealed draft it tests: a digest, to tell that a poll carries that
    draft (the draft itself, with the password, stays in the page)."""
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


def result_forms(web: WebState, run: CheckRun, token: str | None, tenant_id: str) -> dict[str, Any]:
    """The sealed drafts of the finished test's buttons: ``retry`` (Retry, Edit, Trust: the draft
    as tested) and ``tested`` (Continue: the same, marked as passed). Only for the draft this run
    tested (the page's poll carries it); otherwise neither, and the page offers to start again."""
    if not token or run.binding is None or not hmac.compare_digest(draft_digest(token), run.binding):
        return {"retry": None, "tested": None}
    tested = None
    if run.done and run.ok:
        draft = open_draft(web.sealer, token, tenant_id)
        tested = seal(web.sealer, draft.with_(tested=True)) if draft is not None else None
    return {"retry": token, "tested": tested}


async def start_test(request: Request, web: WebState, session: WebSession, draft: Draft) -> Response:
    assert session.tenant_id is not None
    # The same per-tenant budget as POST /v1/check: a connect-link visitor must not turn the
    # wizard into a password-guessing relay or a port scanner (the SSRF guard vets every host).
    # Counted on the check runs' rows too, so that N instances do not make it N budgets.
    await web.runs.admit(session.tenant_id)
    web.services.check_limiter.check(session.tenant_id)
    token = seal(web.sealer, draft)
    run = await run_check(
        web,
        session.tenant_id,
        draft,
        context={"smtp": draft.smtp is not None},
        binding=draft_digest(token),
        on_done=record_check_result(web, session.tenant_id, draft),
    )
    return render(
        request,
        "wizard/test.html",
        step_context(
            4, draft=draft, sealed=token, run=run, **result_forms(web, run, token, session.tenant_id)
        ),
    )


async def test_step(step: DraftStep = Depends(draft_step)) -> Response:
    return await start_test(step.request, step.web, step.session, step.draft)


async def trust_certificate(
    run_id: str = Form(..., alias="run", max_length=40),
    sha256: str = Form(..., max_length=100),
    step: DraftStep = Depends(draft_step),
) -> Response:
    """ "Trust this certificate": pin the certificate the server presented in that test run (taken
    from the run, never from the form) on the servers that refused it, and test again."""
    run = await step.web.runs.get(step.tenant_id, run_id)
    if run is None:
        raise InputError("this test is no longer available", hint="Run the test again.")
    draft = step.draft
    for certificate, protocols, _code in run.refused_certificates:
        if certificate.sha256 != sha256:
            continue
        for protocol in protocols:
            server = {"imap": draft.imap, "pop3": draft.pop3}.get(protocol, draft.smtp)
            if server is not None:
                trusted = replace(server, trusted_certificate=certificate)
                draft = draft.with_(**{protocol: trusted})
        return await start_test(step.request, step.web, step.session, draft)
    raise InputError("that certificate was not presented in this test", hint="Run the test again.")


async def test_progress(
    request: Request,
    run_id: str,
    panel: bool = Query(False),
    draft: str | None = Form(None, max_length=16_000),
    session: WebSession = Depends(wizard_user),
    web: WebState = Depends(get_web),
) -> Response:
    """The run's steps so far, from its row (any instance serves it). The wizard's poll posts the
    sealed draft being tested, which the finished test's buttons carry on."""
    assert session.tenant_id is not None
    run = await web.runs.get(session.tenant_id, run_id)
    if run is None:
        raise NotFoundError("this test is no longer available", hint="Run the test again.")
    forms = {} if panel else result_forms(web, run, draft, session.tenant_id)
    return render(request, "wizard/_steps.html", {"run": run, "wizard": not panel, **forms})
