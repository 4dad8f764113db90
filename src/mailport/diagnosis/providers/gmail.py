"""Gmail's words and Gmail's advice.

Google answers a password from a mail program with its own words (``Application-specific
password required``, ``Please log in via your web browser``, ``[WEBALERT …]``, ``Username and
Password not accepted … gsmtp``); each text below is quoted from a public report, recorded with
its source in ``tests/unit/check/test_troubleshoot.py`` (the ``gmail-*`` cases).
"""

from __future__ import annotations

import re

from mailport.diagnosis.model import Failure
from mailport.diagnosis.providers.generic import imap_disabled_hint
from mailport.diagnosis.rules import Provider, Rule, i
from mailport.errors import (
    AppPasswordRequiredError,
    IMAPDisabledError,
    InvalidCredentialsError,
    WebLoginRequiredError,
)

# Stable links (Google's own help pages for the fix).
GOOGLE_APP_PASSWORDS = "https://support.google.com/accounts/answer/185833"
GOOGLE_APP_PASSWORDS_PAGE = "https://myaccount.google.com/apppasswords"
GOOGLE_UNLOCK = "https://accounts.google.com/DisplayUnlockCaptcha"

APP_PASSWORD_HINT = (
    "Google accepts only an app password from mail programs: turn on 2-Step Verification, create "
    f"an app password at {GOOGLE_APP_PASSWORDS_PAGE} (see {GOOGLE_APP_PASSWORDS}) and enter it "
    "instead of the Google password — or connect with Google (OAuth2) instead."
)

INVALID_CREDENTIALS_HINT = (
    "Google refused the user name or password. Use the full Gmail address as the user name. "
    "Google no longer accepts the account password from mail programs: create an app password "
    f"at {GOOGLE_APP_PASSWORDS_PAGE} (2-Step Verification must be on; see {GOOGLE_APP_PASSWORDS}); "
    "if an app password stopped working, it was revoked or the Google password changed — make a new "
    "one. Or connect with Google (OAuth2)."
)

WEB_LOGIN_HINT = (
    "Google blocked this sign-in as suspicious. Sign in once at https://mail.google.com from the "
    f"same network, confirm “It was me” on the security alert, open {GOOGLE_UNLOCK}, then retry with "
    f"an app password ({GOOGLE_APP_PASSWORDS}) — or connect with Google (OAuth2)."
)


def web_login_hint(failure: Failure, provider: Provider) -> str:
    """The words are Google's (``WEBALERT``, "log in via your web browser"), so the advice is
    Google's unless the recognised provider has its own."""
    return provider.web_login_hint or WEB_LOGIN_HINT


PROVIDER = Provider(
    key="gmail",
    name="Gmail",
    hosts={"imap": "imap.gmail.com", "smtp": "smtp.gmail.com"},
    domains=("gmail.com", "googlemail.com", "google.com"),
    words=re.compile(r"\bgsmtp\b|support\.google\.com|Gimap", re.I),
    app_password_hint=APP_PASSWORD_HINT,
    invalid_credentials_hint=lambda protocol: INVALID_CREDENTIALS_HINT,
    imap_disabled_hint=(
        "Enable IMAP in Gmail: Settings → See all settings → Forwarding and POP/IMAP → IMAP access."
    ),
    too_many_connections_hint=(
        "Gmail allows 15 simultaneous IMAP connections per account. Close other mail programs or "
        "devices syncing this mailbox (or remove stale ones), wait a few minutes and retry."
    ),
    oauth_scope=lambda protocol: "https://mail.google.com/",
)

RULES: tuple[Rule, ...] = (
    # gmail-app-password (imapsync/imapsync#175), gmail-smtp-app-password (bberkay/openmail#1)
    Rule(
        AppPasswordRequiredError,
        i(r"Application-specific password required|InvalidSecondFactor"),
        detail="Google requires an app password for this account (2-Step Verification is on).",
        hint=APP_PASSWORD_HINT,
    ),
    # gmail-web-login (mailcow/mailcow-dockerized#4277), gmail-webalert (MailCore/mailcore2#876)
    Rule(
        WebLoginRequiredError,
        i(r"Please log in via your web browser|Web login required|WEBALERT|Please log ?in via your web"),
        detail="Google blocked the sign-in until the account owner confirms it in a web browser.",
        hint=web_login_hint,
    ),
    # gmail-imap-disabled (mozilla-b2g/gaia), yandex-imap-disabled (Foundry376/Mailspring#2111)
    Rule(
        IMAPDisabledError,
        i(r"not enabled for IMAP use|IMAP access is disabled|IMAP is disabled"),
        detail="IMAP access is disabled for this account (or the password is not accepted for IMAP).",
        hint=imap_disabled_hint,
    ),
)

# Gmail's SMTP refusal of a password; after Microsoft's SMTP words in the catalogue.
SMTP_RULES: tuple[Rule, ...] = (
    # gmail-smtp-bad-credentials (smtplib.SMTPAuthenticationError from smtp.gmail.com)
    Rule(
        InvalidCredentialsError,
        i(r"Username and Password not accepted|BadCredentials"),
        protocols=frozenset({"smtp"}),
        auth="password",  # with a token, Gmail says the same after its OAuth error challenge
        detail="Google refused the user name or password.",
        hint=INVALID_CREDENTIALS_HINT,
    ),
)
