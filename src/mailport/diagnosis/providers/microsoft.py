"""Microsoft 365 / Outlook.com's words and Microsoft's advice.

Exchange Online answers with its own codes and texts (``BasicAuthBlocked``, ``5.7.139``,
``SmtpClientAuthentication is disabled``, ``User is authenticated but not connected``); each text
below is quoted from a public report, recorded with its source in
``tests/unit/check/test_troubleshoot.py`` (the ``microsoft-*`` cases). The advice names the admin
setting or the PowerShell command that fixes it, from Microsoft's own documentation.
"""

from __future__ import annotations

import re

from mailport.diagnosis.model import Failure
from mailport.diagnosis.providers.gmail import web_login_hint
from mailport.diagnosis.rules import Provider, Rule, i
from mailport.errors import (
    BasicAuthBlockedError,
    InvalidCredentialsError,
    MailboxAccessDeniedError,
    OAuthPermissionMissingError,
    SMTPAuthDisabledError,
    WebLoginRequiredError,
)

# Stable links (Microsoft's own documentation of the fix).
MS_SMTP_AUTH = (
    "https://learn.microsoft.com/en-us/exchange/clients-and-mobile-in-exchange-online/"
    "authenticated-client-smtp-submission"
)
MS_BASIC_AUTH = (
    "https://learn.microsoft.com/en-us/exchange/clients-and-mobile-in-exchange-online/"
    "deprecation-of-basic-authentication-exchange-online"
)
MS_OAUTH_IMAP = (
    "https://learn.microsoft.com/en-us/exchange/client-developer/legacy-protocols/"
    "how-to-authenticate-an-imap-pop-smtp-application-by-using-oauth"
)


def invalid_credentials_hint(protocol: str) -> str:
    if protocol == "smtp":
        return (
            "Microsoft refused the credentials. Check the password (sign in at https://outlook.office.com "
            "to be sure). If it is right: an admin must enable Authenticated SMTP for this mailbox "
            "(Microsoft 365 admin center → Users → Active users → the user → Mail → Manage email apps → "
            f"Authenticated SMTP; see {MS_SMTP_AUTH}); with multi-factor sign-in or security defaults "
            "passwords are refused — connect with Microsoft (OAuth2) instead."
        )
    return (
        "Microsoft refused the credentials; Microsoft 365 accepts only OAuth2 for IMAP — connect "
        "with Microsoft (OAuth2)."
    )


def _smtp_auth_hint(failure: Failure, provider: Provider | None = None) -> str:
    return (
        "Authenticated SMTP is turned off. A Microsoft 365 admin can enable it for this mailbox: "
        "Microsoft 365 admin center → Users → Active users → the user → Mail → Manage email apps → tick "
        "“Authenticated SMTP”, or in Exchange Online PowerShell `Set-CASMailbox -Identity <address> "
        "-SmtpClientAuthenticationDisabled $false` (tenant-wide: `Set-TransportConfig "
        f"-SmtpClientAuthenticationDisabled $false`). See {MS_SMTP_AUTH} and "
        "https://aka.ms/smtp_auth_disabled. "
        "Security defaults also block it; OAuth2 (connect with Microsoft) avoids all of this."
    )


def _basic_auth_hint(failure: Failure, provider: Provider) -> str:
    if failure.protocol == "smtp":
        return (
            "Microsoft no longer accepts passwords for sending from this account (basic authentication is "
            "off for SMTP). Connect with Microsoft (OAuth2): mailport then signs in to SMTP with XOAUTH2. "
            f"See {MS_SMTP_AUTH}."
        )
    return (
        "Microsoft 365 / Outlook.com no longer accepts passwords (nor app passwords) over IMAP — basic "
        "authentication is blocked for the tenant or the account. Connect with Microsoft (OAuth2) instead; "
        f"no admin setting brings passwords back (see {MS_BASIC_AUTH})."
    )


def oauth_permission_hint(failure: Failure) -> str:
    scope = "SMTP.Send" if failure.protocol == "smtp" else "IMAP.AccessAsUser.All"
    return (
        f"Microsoft accepted the token but refused it for {failure.protocol.upper()}. Check that: the token "
        f"was issued for the scope https://outlook.office.com/{scope} (plus offline_access) and for the same "
        "account as the user name; the app registration has that delegated permission with admin consent; "
        "for an app-only (client credentials) token, the app's service principal is registered in Exchange "
        "(New-ServicePrincipal) and has FullAccess on the mailbox (Add-MailboxPermission). If it worked "
        f"before, the token was revoked: reconnect the mailbox. See {MS_OAUTH_IMAP}."
    )


def _mailbox_access_hint(failure: Failure, provider: Provider) -> str:
    return (
        "Microsoft signed in the identity but could not open the mailbox. Usually the OAuth token belongs "
        "to another account than the user name given (sign in again with the mailbox's own account), or an "
        "app-only token lacks FullAccess on this mailbox (Add-MailboxPermission -Identity <mailbox> -User "
        "<service principal id> -AccessRights FullAccess), or the mailbox is not licensed for Exchange "
        "Online. With a password login this answer also follows a wrong password."
    )


PROVIDER = Provider(
    key="microsoft",
    name="Microsoft 365 / Outlook.com",
    hosts={"imap": "outlook.office365.com", "smtp": "smtp.office365.com"},
    domains=("office365.com", "outlook.com", "hotmail.com", "live.com"),
    words=re.compile(r"Microsoft Exchange|\.PROD\.OUTLOOK\.COM|aka\.ms/|outlook\.office365\.com", re.I),
    app_password_hint=(
        "Microsoft accepts app passwords only for accounts with two-step verification and only where "
        "the organisation still allows basic authentication; connect with Microsoft (OAuth2) instead."
    ),
    invalid_credentials_hint=invalid_credentials_hint,
    web_login_hint=(
        "Microsoft blocked the sign-in until the owner verifies it: sign in at "
        "https://outlook.live.com (or https://outlook.office.com), complete the verification, then "
        "connect with Microsoft (OAuth2)."
    ),
    oauth_scope=lambda protocol: (
        "https://outlook.office.com/" + ("SMTP.Send" if protocol == "smtp" else "IMAP.AccessAsUser.All")
    ),
    oauth_permission_hint=oauth_permission_hint,
)

RULES: tuple[Rule, ...] = (
    # microsoft-account-blocked (mscdex/node-imap#799)
    Rule(
        WebLoginRequiredError,
        i(r"Account is blocked\. Login to your account via a web browser"),
        detail="Microsoft blocked the account until its owner signs in on the web.",
        hint=web_login_hint,
    ),
    # microsoft-smtp-auth-disabled (simonrob/email-oauth2-proxy#193)
    Rule(
        SMTPAuthDisabledError,
        i(r"SmtpClientAuthentication is disabled|smtp_auth_disabled"),
        protocols=frozenset({"smtp"}),
        detail="Authenticated SMTP (SMTP AUTH) is disabled for this mailbox or its whole tenant.",
        hint=_smtp_auth_hint,
    ),
    Rule(
        BasicAuthBlockedError,
        i(r"security defaults"),
        protocols=frozenset({"smtp"}),
        enhanced="5.7.139",
        detail="The tenant's security defaults block password sign-in to SMTP.",
        hint=(
            "Microsoft Entra security defaults block SMTP AUTH with a password. Connect with Microsoft "
            "(OAuth2), or an admin turns security defaults off in favour of Conditional Access "
            f"(see {MS_SMTP_AUTH})."
        ),
    ),
    Rule(
        InvalidCredentialsError,
        i(r"user credentials were incorrect"),
        protocols=frozenset({"smtp"}),
        enhanced="5.7.139",
        detail="Microsoft says the user name or password is wrong.",
        hint=invalid_credentials_hint("smtp"),
    ),
    # microsoft-basic-auth-blocked, -bare, -disabled (holon-run/uxc#445), microsoft-smtp-5.7.30
    Rule(
        BasicAuthBlockedError,
        i(
            r"BasicAuthBlocked|Basic authentication is (disabled|not supported)|"
            r"basic auth(entication)? is blocked"
        ),
        detail="Microsoft refuses password sign-in (basic authentication) for this account.",
        hint=_basic_auth_hint,
    ),
    # microsoft-smtp-basic-auth-disabled (nodemailer/nodemailer#1714)
    Rule(
        BasicAuthBlockedError,
        protocols=frozenset({"smtp"}),
        enhanced="5.7.139",
        detail="Microsoft refused the sign-in by policy (multi-factor, Conditional Access or basic "
        "authentication turned off).",
        hint=_basic_auth_hint,
    ),
    # microsoft-smtp-5.7.3 (nodemailer/nodemailer#1071)
    Rule(
        InvalidCredentialsError,
        protocols=frozenset({"smtp"}),
        enhanced="5.7.3",
        smtp_codes=frozenset({535}),
        auth="password",
        detail="Microsoft refused the sign-in (wrong password, or Authenticated SMTP is off for the mailbox"
        ").",
        hint=invalid_credentials_hint("smtp"),
    ),
    # microsoft-not-connected (simonrob/email-oauth2-proxy#74)
    Rule(
        MailboxAccessDeniedError,
        i(r"User is authenticated but not connected"),
        protocols=frozenset({"imap"}),
        detail="Microsoft authenticated the identity but did not connect it to the mailbox.",
        hint=_mailbox_access_hint,
    ),
    # microsoft-authenticate-failed-oauth (jstedfast/MailKit#1494)
    Rule(
        OAuthPermissionMissingError,
        i(r"AUTHENTICATE failed|AuthFailed|LogonDenied"),
        protocols=frozenset({"imap"}),
        providers=frozenset({"microsoft"}),
        auth="oauth2",
        detail="Microsoft refused the OAuth2 token for IMAP (missing scope or mailbox permission).",
        hint=lambda f, p: oauth_permission_hint(f),
    ),
    # microsoft-login-failed (jstedfast/MailKit#711)
    Rule(
        BasicAuthBlockedError,
        i(r"LOGIN failed|AUTHENTICATE failed|AuthFailed|LogonDenied"),
        protocols=frozenset({"imap"}),
        providers=frozenset({"microsoft"}),
        auth="password",
        detail="Microsoft refused the password: Microsoft 365 and Outlook.com accept only OAuth2 over IMAP.",
        hint=_basic_auth_hint,
    ),
)

# Microsoft's refusal of a token for SMTP; after the generic "token without the mail scope".
OAUTH_RULES: tuple[Rule, ...] = (
    Rule(
        OAuthPermissionMissingError,
        protocols=frozenset({"smtp"}),
        providers=frozenset({"microsoft"}),
        auth="oauth2",
        smtp_codes=frozenset({535}),
        detail="Microsoft refused the OAuth2 token for SMTP (missing scope, or SMTP AUTH is off).",
        hint=lambda f, p: oauth_permission_hint(f) + " " + _smtp_auth_hint(f),
    ),
)
