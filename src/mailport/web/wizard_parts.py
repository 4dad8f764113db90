"""The pieces of the connect wizard that the dashboard's reconnect and edit pages reuse: the step
context, the manual-settings form values, the OAuth return address and the connection test.

Apart from :mod:`mailport.web.wizard` so that two page modules do not import each other.
"""

from __future__ import annotations

from typing import Any

from mailport.crypto import Secret
from mailport.failures import classify_code
from mailport.mailboxes.models import MailboxStatus
from mailport.web.checks import CheckRun, CheckTarget
from mailport.web.drafts import Draft, Server
from mailport.web.state import WebState

STEPS = ("Email", "Sign-in method", "Connect", "Test", "Finish")


def step_context(step: int, **extra: Any) -> dict[str, Any]:
    """The template context of wizard step ``step`` (1-based, of :data:`STEPS`)."""
    return {"steps": STEPS, "step": step, **extra}


def form_values(draft: Draft) -> dict[str, Any]:
    """The manual-settings form, filled from ``draft`` (defaults for what it lacks)."""
    imap = draft.imap or Server(port=993, security="ssl")
    smtp = draft.smtp or Server(port=587, security="starttls")
    return {
        "imap_host": imap.host,
        "imap_port": imap.port or 993,
        "imap_security": imap.security,
        "imap_username": imap.username or draft.email,
        "smtp_host": smtp.host,
        "smtp_port": smtp.port or 587,
        "smtp_security": smtp.security,
        "smtp_username": smtp.username or draft.email,
        "use_smtp": draft.smtp is not None or draft.imap is None,
    }


def oauth_return_url(web: WebState) -> str:
    """Where the OAuth provider sends the browser back to the wizard."""
    return f"{web.services.settings.effective_public_url}/connect/oauth/return"


def check_target(web: WebState, draft: Draft) -> CheckTarget:
    """What the connection test of ``draft`` checks (with a token source for OAuth)."""
    assert draft.imap is not None
    token_source = None
    if draft.auth_method == "oauth2" and draft.mailbox_id:
        mailbox_id = draft.mailbox_id
        tokens = web.services.oauth.oauth.tokens

        async def token_source() -> Secret:
            return await tokens.get_access_token(mailbox_id)

    return CheckTarget(
        email=draft.email,
        imap=draft.imap.to_model(),
        smtp=draft.smtp.to_model() if draft.smtp else None,
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
        await web.services.mailboxes.repository.record_health(
            draft.mailbox_id, status=status, error=None if run.ok else error, at=web.services.oauth.now()
        )

    return done
