"""mailport's own provider entries (Apache-2.0): what ISPDB lacks, or has stale.

ISPDB (MPL-2.0, ``data/ispdb.json``) describes consumer domains well but has little on
*hosted* mail for custom domains, which is what a helpdesk meets most: Microsoft 365 and
Google Workspace recognised by MX, Zoho's organisation hosts, IONOS, Namecheap, Proton
Bridge, iCloud+ custom domains. It also predates a few changes (Outlook.com's SMTP host,
Outlook.com accepting OAuth only). Each entry says which ISPDB/provider-db entries' domains
it takes over (``adopt``) and which MX host suffixes identify it (``mx_suffixes``).
Where and why these differ from the user's table is written down in ``docs/providers.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailport.detect.model import (
    EMAIL_ADDRESS,
    EMAIL_LOCALPART,
    AuthMethod,
    Hint,
    Provider,
    Security,
    ServerTemplate,
)


@dataclass(frozen=True, slots=True)
class Override:
    provider: Provider
    adopt: tuple[str, ...] = ()  # ids in data/ispdb.json whose domains this entry takes over
    mx_suffixes: tuple[str, ...] = ()  # MX host == suffix or ends with "." + suffix


def _srv(host: str, port: int, security: Security, username: str = EMAIL_ADDRESS) -> ServerTemplate:
    return ServerTemplate(host=host, port=port, security=security, username=username)


def _provider(
    id: str,
    name: str,
    imap: tuple[ServerTemplate, ...],
    smtp: tuple[ServerTemplate, ...],
    auth: tuple[AuthMethod, ...],
    *,
    oauth: str | None = None,
    hints: tuple[Hint, ...] = (),
    domains: tuple[str, ...] = (),
) -> Provider:
    return Provider(
        id=id,
        name=name,
        domains=domains,
        imap=imap,
        smtp=smtp,
        auth_methods=auth,
        oauth_provider=oauth,
        hints=hints,
        origin="mailport",
    )


GOOGLE_APP_PASSWORD = Hint(
    "app_password_required",
    "Without 'Connect with Google', Google needs 2-Step Verification and an app password; "
    "the normal account password is refused.",
    "https://support.google.com/accounts/answer/185833",
)
MICROSOFT_OAUTH_ONLY = Hint(
    "oauth_required",
    "Microsoft accepts only OAuth ('Connect with Microsoft') for IMAP and SMTP; passwords and "
    "app passwords no longer work.",
    "https://support.microsoft.com/office/pop-imap-and-smtp-settings-for-outlook-com-d088b986-291d-42b8-9564-9c414e2aa040",
)

_GMAIL_IMAP = (_srv("imap.gmail.com", 993, Security.SSL),)
_GMAIL_SMTP = (_srv("smtp.gmail.com", 587, Security.STARTTLS), _srv("smtp.gmail.com", 465, Security.SSL))


def _zoho(region: str, tld: str) -> Override:
    return Override(
        _provider(
            f"zoho-workplace-{region}",
            f"Zoho Mail (organisation, {region.upper()})",
            (_srv(f"imappro.zoho.{tld}", 993, Security.SSL),),
            (
                _srv(f"smtppro.zoho.{tld}", 465, Security.SSL),
                _srv(f"smtppro.zoho.{tld}", 587, Security.STARTTLS),
            ),
            ("password", "app_password"),
            hints=(
                Hint(
                    "enable_imap",
                    "Turn on IMAP access in Zoho Mail (Settings > Mail Accounts > IMAP); with "
                    "two-factor authentication use an application-specific password.",
                    "https://www.zoho.com/mail/help/imap-access.html",
                ),
            ),
        ),
        mx_suffixes=(f"zoho.{tld}",) if region != "ca" else ("zohocloud.ca",),
    )


def _ionos(tld: str) -> Override:
    return Override(
        _provider(
            f"ionos-{tld.replace('.', '-')}",
            f"IONOS ({tld})",
            (_srv(f"imap.ionos.{tld}", 993, Security.SSL),),
            (_srv(f"smtp.ionos.{tld}", 465, Security.SSL), _srv(f"smtp.ionos.{tld}", 587, Security.STARTTLS)),
            ("password",),
        ),
        mx_suffixes=(f"ionos.{tld}",),
    )


OVERRIDES: tuple[Override, ...] = (
    Override(
        _provider(
            "gmail",
            "Gmail",
            _GMAIL_IMAP,
            _GMAIL_SMTP,
            ("oauth2", "app_password"),
            oauth="google",
            hints=(GOOGLE_APP_PASSWORD,),
        ),
        adopt=("googlemail.com",),
    ),
    Override(
        _provider(
            "google-workspace",
            "Google Workspace",
            _GMAIL_IMAP,
            _GMAIL_SMTP,
            ("oauth2", "app_password"),
            oauth="google",
            hints=(
                Hint(
                    "imap_admin_setting",
                    "A Google Workspace administrator can switch IMAP off for the organisation "
                    "(Admin console > Apps > Google Workspace > Gmail > End User Access).",
                    "https://support.google.com/a/answer/105694",
                ),
                GOOGLE_APP_PASSWORD,
            ),
        ),
        mx_suffixes=("google.com", "googlemail.com"),
    ),
    Override(
        _provider(
            "outlook",
            "Outlook.com",
            (_srv("outlook.office365.com", 993, Security.SSL),),
            (_srv("smtp-mail.outlook.com", 587, Security.STARTTLS),),
            ("oauth2",),
            oauth="microsoft",
            hints=(MICROSOFT_OAUTH_ONLY,),
        ),
        adopt=("hotmail.com",),
        mx_suffixes=("olc.protection.outlook.com",),
    ),
    Override(
        _provider(
            "microsoft365",
            "Microsoft 365",
            (_srv("outlook.office365.com", 993, Security.SSL),),
            (_srv("smtp.office365.com", 587, Security.STARTTLS),),
            ("oauth2",),
            oauth="microsoft",
            hints=(
                MICROSOFT_OAUTH_ONLY,
                Hint(
                    "imap_admin_setting",
                    "A Microsoft 365 administrator must allow IMAP and Authenticated SMTP for "
                    "the mailbox (Microsoft 365 admin center > Users > Mail > Manage email apps).",
                    "https://learn.microsoft.com/exchange/clients-and-mobile-in-exchange-online/authenticated-client-smtp-submission",
                ),
            ),
        ),
        adopt=("office365.com",),
        mx_suffixes=("mail.protection.outlook.com", "mx.microsoft"),
    ),
    Override(
        _provider(
            "yahoo",
            "Yahoo Mail",
            (_srv("imap.mail.yahoo.com", 993, Security.SSL),),
            (
                _srv("smtp.mail.yahoo.com", 587, Security.STARTTLS),
                _srv("smtp.mail.yahoo.com", 465, Security.SSL),
            ),
            ("app_password",),
            hints=(
                Hint(
                    "app_password_required",
                    "Yahoo needs an app password for mail apps (Account Security > Generate app password).",
                    "https://help.yahoo.com/kb/SLN15241.html",
                ),
            ),
        ),
        adopt=("yahoo.com",),
    ),
    Override(
        _provider(
            "aol",
            "AOL Mail",
            (_srv("imap.aol.com", 993, Security.SSL),),
            (_srv("smtp.aol.com", 465, Security.SSL), _srv("smtp.aol.com", 587, Security.STARTTLS)),
            ("app_password",),
            hints=(
                Hint(
                    "app_password_required",
                    "AOL needs an app password for mail apps (Account Security > Generate app password).",
                    "https://help.aol.com/articles/Create-and-manage-app-password",
                ),
            ),
        ),
        adopt=("aol.com",),
    ),
    Override(
        _provider(
            "icloud",
            "iCloud Mail",
            (_srv("imap.mail.me.com", 993, Security.SSL, EMAIL_LOCALPART),),
            (_srv("smtp.mail.me.com", 587, Security.STARTTLS),),
            ("app_password",),
            hints=(
                Hint(
                    "app_password_required",
                    "iCloud Mail needs an app-specific password (account.apple.com > Sign-In and Security).",
                    "https://support.apple.com/en-us/102654",
                ),
            ),
        ),
        adopt=("me.com",),
    ),
    Override(
        _provider(
            "icloud-custom-domain",
            "iCloud+ Custom Email Domain",
            (_srv("imap.mail.me.com", 993, Security.SSL),),
            (_srv("smtp.mail.me.com", 587, Security.STARTTLS),),
            ("app_password",),
            hints=(
                Hint(
                    "username_differs",
                    "Sign in with your Apple Account's iCloud Mail address (…@icloud.com) as the "
                    "user name, not the custom-domain address, and an app-specific password.",
                    "https://support.apple.com/en-us/102525",
                ),
            ),
        ),
        mx_suffixes=("mail.icloud.com",),
    ),
    Override(
        _provider(
            "fastmail",
            "Fastmail",
            (_srv("imap.fastmail.com", 993, Security.SSL),),
            (_srv("smtp.fastmail.com", 465, Security.SSL), _srv("smtp.fastmail.com", 587, Security.STARTTLS)),
            ("app_password",),
            hints=(
                Hint(
                    "app_password_required",
                    "Fastmail needs an app password for IMAP/SMTP (Settings > Privacy & Security > "
                    "App passwords).",
                    "https://www.fastmail.help/hc/en-us/articles/360058752854",
                ),
            ),
        ),
        adopt=("fastmail", "messagingengine.com"),
        mx_suffixes=("messagingengine.com",),
    ),
    _zoho("us", "com"),
    _zoho("eu", "eu"),
    _zoho("in", "in"),
    _zoho("au", "com.au"),
    _zoho("jp", "jp"),
    _zoho("ca", "ca"),
    _ionos("de"),
    _ionos("com"),
    _ionos("co.uk"),
    _ionos("es"),
    _ionos("fr"),
    _ionos("it"),
    Override(
        _provider(
            "namecheap-privateemail",
            "Namecheap Private Email",
            (_srv("mail.privateemail.com", 993, Security.SSL),),
            (
                _srv("mail.privateemail.com", 465, Security.SSL),
                _srv("mail.privateemail.com", 587, Security.STARTTLS),
            ),
            ("password",),
        ),
        mx_suffixes=("privateemail.com",),
    ),
    Override(
        _provider(
            "namecheap-forwarding",
            "Namecheap Email Forwarding",
            (),
            (),
            (),
            hints=(
                Hint(
                    "forwarding_only",
                    "This domain only forwards mail (Namecheap Email Forwarding): there is no "
                    "mailbox to connect. Connect the mailbox the address forwards to.",
                    "https://www.namecheap.com/support/knowledgebase/article.aspx/308/2214/",
                ),
            ),
        ),
        mx_suffixes=("registrar-servers.com",),
    ),
    Override(
        _provider(
            "proton-bridge",
            "Proton Mail (via Proton Mail Bridge)",
            (_srv("127.0.0.1", 1143, Security.STARTTLS),),
            (_srv("127.0.0.1", 1025, Security.STARTTLS),),
            ("password",),
            hints=(
                Hint(
                    "bridge_required",
                    "Proton Mail has no IMAP of its own: run Proton Mail Bridge (paid plans) where "
                    "mailport can reach it, use the host/port and the Bridge password it shows, and "
                    "trust its certificate.",
                    "https://proton.me/mail/bridge",
                ),
            ),
            domains=("proton.me", "pm.me", "protonmail.com", "protonmail.ch"),
        ),
        adopt=("protonmail",),
        mx_suffixes=("protonmail.ch",),
    ),
)
