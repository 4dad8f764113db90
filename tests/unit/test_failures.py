"""The one rule for "retry, or does a person have to act?" (mailport.failures)."""

from __future__ import annotations

import pytest

from mailport.errors import (
    ApiNotEnabledError,
    ApiRateLimitedError,
    AuthenticationError,
    AuthUnavailableError,
    ConnectionLostError,
    InvalidCredentialsError,
    MailTimeoutError,
    OAuthClientRejectedError,
    OAuthInvalidGrantError,
    OAuthNotConfiguredError,
    OAuthTokenRejectedError,
    OAuthUnavailableError,
    ReauthRequiredError,
)
from mailport.failures import Verdict, classify, classify_code, is_temporary
from mailport.mailboxes.models import MailboxStatus

UNAVAILABLE = "[UNAVAILABLE] Temporary authentication failure. [mail:2026-12-04 18:00:00]"


@pytest.mark.parametrize(
    ("exc", "verdict"),
    [
        (
            OAuthInvalidGrantError(
                "refused", server_said="invalid_grant: Token has been expired or revoked."
            ),
            "REAUTH",
        ),
        (ReauthRequiredError("dead"), "REAUTH"),
        (OAuthUnavailableError("HTTP 503"), "RETRY"),
        (AuthUnavailableError("NO [UNAVAILABLE]", server_said=UNAVAILABLE), "RETRY"),
        (AuthenticationError("AUTHENTICATE failed", server_said=UNAVAILABLE, status="NO"), "RETRY"),
        (OAuthTokenRejectedError("refused", server_said=UNAVAILABLE), "RETRY"),
        (
            AuthenticationError(
                "AUTH failed", server_said="4.7.0 Temporary authentication failure", smtp_code=454
            ),
            "RETRY",
        ),
        (AuthenticationError("AUTH failed", server_said="Try later", smtp_code=451), "RETRY"),
        (MailTimeoutError("no answer"), "RETRY"),
        (ConnectionLostError("closed"), "RETRY"),
        (ConnectionResetError(), "RETRY"),
        (TimeoutError(), "RETRY"),
        (RuntimeError("anything else"), "RETRY"),
        (AuthenticationError("AUTHENTICATE failed", server_said="[AUTHENTICATIONFAILED] Invalid"), "ERROR"),
        (OAuthTokenRejectedError("refused", server_said="[AUTHENTICATIONFAILED] Invalid"), "ERROR"),
        (InvalidCredentialsError("Login failed: authentication failure"), "ERROR"),
        (OAuthClientRejectedError("invalid_client"), "ERROR"),
        (OAuthNotConfiguredError("no app"), "ERROR"),
        (ApiRateLimitedError("Gmail: 429", retry_after=30.0), "RETRY"),  # throttled: wait, go on
        (ApiNotEnabledError("the Gmail API is off for this project"), "ERROR"),
    ],
)
def test_each_failure_has_one_verdict(exc: BaseException, verdict: str) -> None:
    assert classify(exc) is Verdict[verdict]


def test_only_a_dead_grant_is_reauth_required() -> None:
    assert Verdict.REAUTH.status is MailboxStatus.REAUTH_REQUIRED
    assert Verdict.RETRY.status is Verdict.ERROR.status is MailboxStatus.ERROR
    assert is_temporary(OAuthUnavailableError("down")) and not is_temporary(OAuthInvalidGrantError("x"))
    assert is_temporary(ApiRateLimitedError("Graph: MailboxConcurrency"))


@pytest.mark.parametrize(
    ("code", "server_said", "verdict"),
    [
        ("reauth_required", "invalid_grant: revoked", "REAUTH"),
        ("oauth_invalid_grant", None, "REAUTH"),
        ("oauth_token_rejected", UNAVAILABLE, "RETRY"),  # the server could not check the token
        ("oauth_token_rejected", "[AUTHENTICATIONFAILED] Invalid credentials", "ERROR"),
        ("oauth_unavailable", None, "RETRY"),
        ("auth_unavailable", UNAVAILABLE, "RETRY"),
        ("auth_failed", "4.7.0 Temporary authentication failure", "RETRY"),
        ("invalid_credentials", "5.7.8 Username and Password not accepted", "ERROR"),
        ("connect_timeout", None, "RETRY"),
    ],
)
def test_recorded_codes_get_the_same_verdicts(code: str, server_said: str | None, verdict: str) -> None:
    assert classify_code(code, server_said=server_said) is Verdict[verdict]
