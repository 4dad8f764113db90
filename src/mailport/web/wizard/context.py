"""What every wizard page shares, and the dashboard's reconnect and edit pages too: the step
context, the manual-settings form values and the OAuth return address."""

from __future__ import annotations

from typing import Any

from mailport.servers import Security, ServerSettings
from mailport.web.drafts import Draft
from mailport.web.state import WebState

STEPS = ("Email", "Sign-in method", "Connect", "Test", "Finish")


def step_context(step: int, **extra: Any) -> dict[str, Any]:
    """The template context of wizard step ``step`` (1-based, of :data:`STEPS`)."""
    return {"steps": STEPS, "step": step, **extra}


def form_values(draft: Draft) -> dict[str, Any]:
    """The manual-settings form, filled from ``draft`` (defaults for what it lacks)."""
    imap = draft.imap or ServerSettings("", 993, Security.SSL)
    smtp = draft.smtp or ServerSettings("", 587, Security.STARTTLS)
    return {
        "imap_host": imap.host,
        "imap_port": imap.port or 993,
        "imap_security": imap.security.value,
        "imap_username": imap.username or draft.email,
        "smtp_host": smtp.host,
        "smtp_port": smtp.port or 587,
        "smtp_security": smtp.security.value,
        "smtp_username": smtp.username or draft.email,
        "use_smtp": draft.smtp is not None or draft.imap is None,
        **pop3_form_values(draft),
    }


def pop3_form_values(draft: Draft) -> dict[str, Any]:
    """The form's POP3 server and which incoming protocol is chosen (POP3 when detection
    offered it, i.e. found no IMAP server)."""
    pop3 = draft.pop3 or ServerSettings("", 995, Security.SSL)
    return {
        "incoming": "pop3" if draft.connector == "pop3" else "imap",
        "pop3_host": pop3.host,
        "pop3_port": pop3.port or 995,
        "pop3_security": pop3.security.value,
        "pop3_username": pop3.username or draft.email,
    }


def oauth_return_url(web: WebState) -> str:
    """Where the OAuth provider sends the browser back to the wizard."""
    return f"{web.services.settings.effective_public_url}/connect/oauth/return"
