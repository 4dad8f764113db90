"""The one rule for "retry, or does a person have to act?" after a mailbox failed.

The watcher, the token manager, the connection test (API and wizard) and the OAuth connect
service all meet the same failures; each used to decide by its own rule, and they disagreed: a
provider outage (IMAP ``NO [UNAVAILABLE]``) was read as a refused token, the mailbox was marked
``reauth_required`` and stayed dead after the provider came back. Every such decision now asks
:func:`classify` (an exception) or :func:`classify_code` (a recorded code and the server's words).

* :attr:`Verdict.RETRY` — temporary: the provider, the network or the mail server's own
  authentication backend is down (``[UNAVAILABLE]``, SMTP 4xx, HTTP 5xx, timeouts, refused or
  lost connections). Status ``error``; retried within seconds to minutes, with backoff.
* :attr:`Verdict.ERROR` — a person must fix something, but signing in again is not proven to
  be it (wrong password, a token the mail server refuses, the app's client id refused). Status
  ``error``; retried slowly.
* :attr:`Verdict.REAUTH` — only a definitive refusal of the grant by the token endpoint
  (``invalid_grant``, see :class:`~mailport.errors.OAuthInvalidGrantError`) means the grant is
  dead. Status ``reauth_required``. Even then the next token request tries one refresh, so a
  mailbox marked by mistake recovers as soon as a refresh succeeds.
"""

from __future__ import annotations

import re
from enum import StrEnum

from mailport.errors import (
    AuthenticationError,
    AuthUnavailableError,
    ConnectError,
    ConnectionLostError,
    MailportError,
    MailTimeoutError,
    OAuthError,
    OAuthInvalidGrantError,
    OAuthNotConfiguredError,
    OAuthUnavailableError,
)
from mailport.mailboxes.models import MailboxStatus


class Verdict(StrEnum):
    RETRY = "retry"
    ERROR = "error"
    REAUTH = "reauth_required"

    @property
    def status(self) -> MailboxStatus:
        """The mailbox status this verdict leaves (never ``reauth_required`` unless REAUTH)."""
        return MailboxStatus.REAUTH_REQUIRED if self is Verdict.REAUTH else MailboxStatus.ERROR


# Codes that only the token endpoint's refusal of the grant produces.
_DEAD_GRANT_CODES = frozenset({"reauth_required", "oauth_invalid_grant"})
# Codes of failures that pass by themselves (network, provider or server outages).
_TEMPORARY_CODES = frozenset(
    {
        "oauth_unavailable",
        "auth_unavailable",
        "connect_failed",
        "connection_refused",
        "too_many_connections",
        "connection_lost",
        "timeout",
        "connect_timeout",
        "server_silent",
        "provider_rate_limited",  # the mail APIs' throttling: wait as asked, then go on
    }
)
# Codes that need a person: anything about credentials, tokens, permissions or the OAuth app.
_PERSON_CODES = frozenset(
    {
        "auth_failed",
        "invalid_credentials",
        "app_password_required",
        "web_login_required",
        "basic_auth_blocked",
        "smtp_auth_disabled",
        "imap_disabled",
        "auth_mechanism_unsupported",
        "oauth_token_rejected",
        "oauth_permission_missing",
        "mailbox_access_denied",
        "imap_not_configured",
        "oauth_client_rejected",
        "oauth_not_configured",
        "oauth_error",
        "oauth_denied",
        "oauth_identity_invalid",
        "oauth_account_mismatch",
        "api_not_enabled",
        "uidl_unsupported",  # a POP3 server without UIDL: the mailbox needs another connector
        "pop3_not_configured",
    }
)
# RFC 5530 ``[UNAVAILABLE]``: "temporary failure because a subsystem is down" (Dovecot says it
# when its passdb or OAuth introspection cannot be reached); RFC 3463 4.x.x / an SMTP 4yz reply.
_UNAVAILABLE_RE = re.compile(r"\[UNAVAILABLE\b", re.I)
_SMTP_TRANSIENT_RE = re.compile(r"^\s*(?:4\d\d[\s-]+)?4\.\d{1,3}\.\d{1,3}\b")


def server_said_temporary(server_said: str | None, smtp_code: object = None) -> bool:
    """True when a mail server's refusal says "try again later" rather than "no"."""
    if isinstance(smtp_code, int) and 400 <= smtp_code < 500:
        return True
    if not server_said:
        return False
    return bool(_UNAVAILABLE_RE.search(server_said) or _SMTP_TRANSIENT_RE.match(server_said))


def is_temporary(exc: BaseException) -> bool:
    """A failure that passes by itself: retry soon, and never as an authentication failure."""
    if isinstance(
        exc,
        OAuthUnavailableError | AuthUnavailableError | ConnectError | MailTimeoutError | ConnectionLostError,
    ):
        return True
    if isinstance(exc, MailportError):
        return exc.code in _TEMPORARY_CODES or server_said_temporary(
            exc.server_said, exc.details.get("smtp_code")
        )
    return isinstance(exc, OSError | TimeoutError)


def classify(exc: BaseException) -> Verdict:
    """The verdict for an exception raised while connecting, signing in or refreshing."""
    if isinstance(exc, OAuthInvalidGrantError):
        return Verdict.REAUTH
    if is_temporary(exc):
        return Verdict.RETRY
    if isinstance(exc, AuthenticationError | OAuthError | OAuthNotConfiguredError):
        return Verdict.ERROR
    if isinstance(exc, MailportError) and exc.code in _PERSON_CODES:
        return Verdict.ERROR
    return Verdict.RETRY


def classify_code(code: str | None, *, server_said: str | None = None, smtp_code: object = None) -> Verdict:
    """The verdict for a recorded failure (a connection test's failed step)."""
    if code in _DEAD_GRANT_CODES:
        return Verdict.REAUTH
    if code in _TEMPORARY_CODES or server_said_temporary(server_said, smtp_code):
        return Verdict.RETRY
    if code in _PERSON_CODES:
        return Verdict.ERROR
    return Verdict.RETRY
