"""Words any server may say, and the advice that each provider may refine.

The rules here are not tied to one provider: connection limits, a temporary failure to check
the credentials, a refused OAuth2 token, a refused password (RFC 3501 ``[AUTHENTICATIONFAILED]``,
RFC 4954 ``535``). Their hints ask the recognised :class:`~mailport.diagnosis.rules.Provider` for
its own advice first (Gmail's connection limit, Yahoo's app passwords) and fall back to the
generic text. This file knows no provider by name: each provider's file fills its hooks.

The catalogue (:mod:`mailport.diagnosis.catalogue`) places these rules among the providers'
own; the first rule that matches wins.
"""

from __future__ import annotations

from mailport.diagnosis.model import STANDARD_PORTS, Failure
from mailport.diagnosis.rules import Provider, Rule, i
from mailport.errors import (
    AppPasswordRequiredError,
    AuthMechanismUnsupportedError,
    AuthUnavailableError,
    IMAPDisabledError,
    InvalidCredentialsError,
    OAuthPermissionMissingError,
    OAuthTokenRejectedError,
    TooManyConnectionsError,
)
from mailport.servers import Security

# --------------------------------------------------------------------------- advice


def app_password_hint(provider: Provider) -> str:
    return provider.app_password_hint or AppPasswordRequiredError.hint


def invalid_credentials_hint(provider: Provider, protocol: str) -> str:
    if provider.invalid_credentials_hint is not None:
        return provider.invalid_credentials_hint(protocol)
    if provider.app_password_hint is not None:
        return provider.app_password_hint
    return (
        "The server refused the user name or password. Check both (the user name is usually the full "
        "email address); if the account uses two-step verification, create an app password."
    )


def imap_disabled_hint(failure: Failure, provider: Provider) -> str:
    return provider.imap_disabled_hint or IMAPDisabledError.hint


def _too_many_hint(failure: Failure, provider: Provider) -> str:
    if provider.too_many_connections_hint is not None:
        return provider.too_many_connections_hint
    return (
        "The server limits simultaneous connections per account (or per account and address). Close other "
        "mail programs syncing this mailbox, wait a few minutes and retry; a server admin can raise the "
        "limit (Dovecot: mail_max_userip_connections)."
    )


def _oauth_rejected_hint(failure: Failure, provider: Provider) -> str:
    scope = provider.oauth_scope(failure.protocol) if provider.oauth_scope is not None else None
    scope_text = f" and that it was issued for the scope {scope}" if scope else ""
    return (
        "The server refused the access token: it expired or was revoked (password change, user removed "
        "the app's access), or it belongs to another account than the user name. Reconnect the mailbox "
        f"(sign in again) and check that the user name is the signed-in address{scope_text}."
    )


def _oauth_scope_hint(failure: Failure, provider: Provider) -> str:
    if provider.oauth_permission_hint is not None:
        return provider.oauth_permission_hint(failure)
    return "Reconnect the mailbox and grant mail access (Google: scope https://mail.google.com/)."


def _auth_mech_hint(failure: Failure, provider: Provider) -> str:
    if failure.security == Security.NONE:
        return (
            "The server refuses to log in over an unencrypted connection: choose security SSL/TLS "
            f"(port {STANDARD_PORTS[failure.protocol]['ssl']}) or STARTTLS."
        )
    return (
        "The server does not offer this sign-in mechanism. For OAuth2 it must advertise XOAUTH2 or "
        "OAUTHBEARER; otherwise use a password (or app password) if the provider allows it."
    )


def _credentials_hint(failure: Failure, provider: Provider) -> str:
    return invalid_credentials_hint(provider, failure.protocol)


def _app_password_hint(failure: Failure, provider: Provider) -> str:
    return app_password_hint(provider)


# --------------------------------------------------------------------------- words

LIMITS: tuple[Rule, ...] = (
    # --- anywhere: connection limits ----------------------------------------------------------
    Rule(
        TooManyConnectionsError,
        i(
            r"too many (simultaneous|concurrent)? ?connections|maximum number of connections|"
            r"connection limit|too many sessions"
        ),
        detail="The server refused: too many simultaneous connections for this account.",
        hint=_too_many_hint,
    ),
    Rule(
        TooManyConnectionsError,
        also=lambda f, r: (r.response_code or "").upper() == "LIMIT",
        protocols=frozenset({"imap"}),
        detail="The server refused: a per-account limit was reached.",
        hint=_too_many_hint,
    ),
    # --- anywhere: the server could not check the credentials now (temporary, not a verdict) ----
    Rule(
        AuthUnavailableError,
        protocols=frozenset({"imap"}),
        also=lambda f, r: (r.response_code or "").upper() == "UNAVAILABLE",
        detail="The server could not check the credentials right now (a temporary failure).",
    ),
    Rule(
        AuthUnavailableError,
        protocols=frozenset({"smtp"}),
        also=lambda f, r: f.step == "smtp_auth" and 400 <= (r.smtp_code or 0) < 500,
        detail="The server could not check the credentials right now (a temporary 4xx reply).",
    ),
)

# --- OAuth2 in general: a token without the mail scope (before a provider's own OAuth words) ---
OAUTH_SCOPE: tuple[Rule, ...] = (
    Rule(
        OAuthPermissionMissingError,
        i(r"insufficient_scope|invalid_scope"),
        auth="oauth2",
        detail="The access token does not carry the mail scope.",
        hint=_oauth_scope_hint,
    ),
)

# --- OAuth2 in general: any other refusal of a token --------------------------------------------
OAUTH_REJECTED: tuple[Rule, ...] = (
    Rule(
        OAuthTokenRejectedError,
        auth="oauth2",
        also=lambda f, r: r.status in ("NO", "BAD") or (r.smtp_code or 0) >= 500 or r.smtp_code == 334,
        detail="The server refused the OAuth2 access token.",
        hint=_oauth_rejected_hint,
    ),
)

# --- password login in general: the mechanism refused here ----------------------------------------
MECHANISM: tuple[Rule, ...] = (
    Rule(
        AuthMechanismUnsupportedError,
        i(
            r"PRIVACYREQUIRED|LOGINDISABLED|Plaintext authentication disallowed|"
            r"mechanism is not supported|Unsupported authentication mechanism|"
            r"Authentication mechanism is too weak|Must issue a STARTTLS command first"
        ),
        detail="The server does not accept this sign-in here.",
        hint=_auth_mech_hint,
    ),
)


def app_passwords_only(providers: frozenset[str]) -> tuple[Rule, ...]:
    """A refused password from a provider that accepts only app passwords from mail programs
    (the providers whose files say ``app_passwords_only``)."""
    return (
        Rule(
            AppPasswordRequiredError,
            i(
                r"AUTHENTICATIONFAILED|Invalid credentials|Authentication failed|LOGIN failed|"
                r"authentication credentials invalid|Authentication unsuccessful"
            ),
            providers=providers,
            auth="password",
            detail="The provider refused the password; it accepts only app passwords from mail programs.",
            hint=_app_password_hint,
        ),
        Rule(
            AppPasswordRequiredError,
            providers=providers,
            protocols=frozenset({"smtp"}),
            auth="password",
            smtp_codes=frozenset({535}),
            detail="The provider refused the password; it accepts only app passwords from mail programs.",
            hint=_app_password_hint,
        ),
    )


# --- password login in general: a refused user name or password ----------------------------------
INVALID_CREDENTIALS: tuple[Rule, ...] = (
    Rule(
        InvalidCredentialsError,
        i(
            r"AUTHENTICATIONFAILED|Invalid credentials|Authentication failed|LOGIN failed|"
            r"authentication credentials invalid|Authentication unsuccessful|incorrect password|"
            r"bad (user ?name|password)"
        ),
        detail="The server refused the user name or password.",
        hint=_credentials_hint,
    ),
    Rule(
        InvalidCredentialsError,
        protocols=frozenset({"smtp"}),
        smtp_codes=frozenset({535}),
        detail="The server refused the user name or password.",
        hint=_credentials_hint,
    ),
)
