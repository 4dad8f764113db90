"""Troubleshooting catalog: from a failing step and the server's own words to the fix.

A connection check that only says "authentication failed" sends people to a support queue.
This module is the knowledge that turns the failure into a two-minute fix: given the step that
failed, the protocol, the detected provider and what the server said (an IMAP tagged ``NO``/
``BAD`` with its response code, an SMTP reply with its enhanced status code) or the low-level
exception (an ssl verification code, an errno, a timeout), :func:`diagnose` answers a
:class:`Diagnosis` with a stable ``code`` (each one a :mod:`mailport.errors` class and a section
in ``docs/troubleshooting.md``), a human ``detail``, a ``hint`` specific to the provider and to the
server's words, the server's words themselves, and — where we can tell — the settings to try
instead (the host the certificate names, the right port/security pair).

It is pure: no I/O, no clock. The server texts it recognises are the providers' exact words as
quoted in public bug reports; ``tests/unit/check/test_troubleshoot.py`` records each with its
source. No library catalogues provider error texts, so this table is ours to keep.

Use, in the connection check (the exception alone is enough when it carries the server's words:
aiosmtplib's reply exceptions, or a ``ProviderError`` with ``server_said``)::

    except Exception as exc:
        found = diagnose(Failure(step="authentication", protocol="imap", provider=provider,
                                 host=host, port=port, security=security, auth="password",
                                 error=exc))
        step.update(ok=False, **found.step_fields())   # detail, code, hint, server_said, suggestions

For a silent greeting pass the evidence of :func:`mailport.net.probe.probe_plaintext`
(``received``/``probe``); for a hostname mismatch the certificate's names from
:func:`mailport.net.probe.peer_certificate_names` (``peer_names``).
"""

from __future__ import annotations

import errno
import re
import socket
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from mailport.errors import (
    AppPasswordRequiredError,
    AuthenticationError,
    AuthMechanismUnsupportedError,
    BasicAuthBlockedError,
    CertificateChangedError,
    CertificateExpiredError,
    CertificateHostnameMismatchError,
    CertificateSelfSignedError,
    CertificateUntrustedError,
    CommandError,
    ConnectError,
    ConnectionLostError,
    ConnectionRefusedByServerError,
    ConnectTimeoutError,
    HostNotFoundError,
    IMAPDisabledError,
    InvalidCredentialsError,
    MailboxAccessDeniedError,
    MailportError,
    MailTimeoutError,
    OAuthPermissionMissingError,
    OAuthTokenRejectedError,
    PlaintextOnTLSPortError,
    ProviderError,
    ServerSilentError,
    SMTPAuthDisabledError,
    SMTPRejectedError,
    StartTLSNotOfferedError,
    TLSError,
    TLSOnPlaintextPortError,
    TooManyConnectionsError,
    WebLoginRequiredError,
    WrongServiceError,
)
from mailport.net.trust import PinMismatch

Step = Literal[
    "dns",
    "tcp_connect",
    "tls_handshake",
    "greeting",
    "starttls",
    "authentication",
    "select",
    "smtp_ehlo",
    "smtp_starttls",
    "smtp_auth",
    "smtp_send",
]
Protocol = Literal["imap", "smtp"]
Security = Literal["ssl", "starttls", "none"]

STEPS: tuple[str, ...] = Step.__args__  # type: ignore[attr-defined]

# The usual port for each protocol and security mode (RFC 8314: implicit TLS preferred).
STANDARD_PORTS: dict[str, dict[str, int]] = {
    "imap": {"ssl": 993, "starttls": 143},
    "smtp": {"ssl": 465, "starttls": 587},
}
IMPLICIT_TLS_PORTS: dict[str, frozenset[int]] = {"imap": frozenset({993}), "smtp": frozenset({465})}
PLAINTEXT_PORTS: dict[str, frozenset[int]] = {"imap": frozenset({143}), "smtp": frozenset({25, 587, 2525})}

# Where each big provider's servers are (used to suggest a host when the given one does not exist).
PROVIDER_HOSTS: dict[str, dict[str, str]] = {
    "gmail": {"imap": "imap.gmail.com", "smtp": "smtp.gmail.com"},
    "microsoft": {"imap": "outlook.office365.com", "smtp": "smtp.office365.com"},
    "yahoo": {"imap": "imap.mail.yahoo.com", "smtp": "smtp.mail.yahoo.com"},
    "aol": {"imap": "imap.aol.com", "smtp": "smtp.aol.com"},
    "icloud": {"imap": "imap.mail.me.com", "smtp": "smtp.mail.me.com"},
    "yandex": {"imap": "imap.yandex.com", "smtp": "smtp.yandex.com"},
}
PROVIDER_NAMES: dict[str, str] = {
    "gmail": "Gmail",
    "microsoft": "Microsoft 365 / Outlook.com",
    "yahoo": "Yahoo Mail",
    "aol": "AOL Mail",
    "icloud": "iCloud Mail",
    "yandex": "Yandex Mail",
}

# Stable links (each provider's own help page for the fix).
GOOGLE_APP_PASSWORDS = "https://support.google.com/accounts/answer/185833"
GOOGLE_APP_PASSWORDS_PAGE = "https://myaccount.google.com/apppasswords"
GOOGLE_UNLOCK = "https://accounts.google.com/DisplayUnlockCaptcha"
YAHOO_APP_PASSWORDS = "https://help.yahoo.com/kb/SLN15241.html"
AOL_APP_PASSWORDS = "https://help.aol.com/articles/Create-and-manage-app-password"
APPLE_APP_PASSWORDS = "https://support.apple.com/en-us/102654"
YANDEX_CLIENT_SETTINGS = "https://mail.yandex.com/#setup/client"
YANDEX_APP_PASSWORDS = "https://id.yandex.com/security/app-passwords"
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

_MAX_SERVER_SAID = 500


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class ServerReply:
    """What the server said, in its own words.

    For IMAP: ``status`` is ``NO``, ``BAD`` or ``BYE`` and ``response_code`` the bracketed code
    (``AUTHENTICATIONFAILED``, ``ALERT``, ``WEBALERT https://…``). For SMTP: ``smtp_code`` (535)
    and ``enhanced_code`` (``5.7.139``). ``text`` is the human text as the server sent it.
    """

    text: str
    status: str | None = None
    response_code: str | None = None
    smtp_code: int | None = None
    enhanced_code: str | None = None

    _IMAP = re.compile(
        r"^(?:(?P<tag>\*|[A-Za-z0-9.]+)\s+)?(?P<status>OK|NO|BAD|BYE|PREAUTH)\b\s*"
        r"(?:\[(?P<code>[^\]]*)\]\s*)?(?P<text>.*)$",
        re.I | re.S,
    )
    _ENHANCED = re.compile(r"^\s*([245]\.\d{1,3}\.\d{1,3})\s+")

    @classmethod
    def imap(cls, line: str | bytes) -> ServerReply:
        """Parse a status response such as ``A1 NO [ALERT] Application-specific password …``."""
        if isinstance(line, bytes):
            line = line.decode("utf-8", "replace")
        line = line.strip()
        match = cls._IMAP.match(line)
        if match is None:
            return cls(text=line)
        return cls(
            text=match["text"].strip(),
            status=match["status"].upper(),
            response_code=match["code"],
        )

    @classmethod
    def smtp(cls, code: int, message: str | bytes) -> ServerReply:
        """An SMTP reply as aiosmtplib reports it (``code``, ``message`` with lines joined by newlines).

        The enhanced status code repeated at the start of each continuation line is dropped.
        """
        if isinstance(message, bytes):
            message = message.decode("utf-8", "replace")
        enhanced: str | None = None
        lines: list[str] = []
        for raw in message.splitlines() or [""]:
            line = raw.strip()
            if line[:3].isdigit() and line[3:4] in ("-", " "):
                line = line[4:].strip()  # a full reply line ("535-5.7.8 …")
            match = cls._ENHANCED.match(line)
            if match:
                enhanced = enhanced or match[1]
                line = line[match.end() :]
            if line:
                lines.append(line)
        return cls(text=" ".join(lines), smtp_code=code, enhanced_code=enhanced)

    def quoted(self) -> str:
        """The server's words for ``server_said`` (one line, control characters removed, bounded)."""
        if self.smtp_code is not None:
            parts = [str(self.smtp_code), self.enhanced_code or "", self.text]
        else:
            code = f"[{self.response_code}]" if self.response_code else ""
            parts = [self.status or "", code, self.text]
        return _one_line(" ".join(p for p in parts if p))

    def words(self) -> str:
        """Everything searchable: response code, enhanced code and text."""
        return " ".join(p for p in (self.response_code, self.enhanced_code, self.text) if p)


@dataclass(frozen=True)
class Failure:
    """Everything known about a failing step. Only ``step`` and ``protocol`` are required.

    ``auth`` is ``"password"`` or ``"oauth2"`` (the credential kind, not the SASL mechanism);
    ``received`` the first bytes the server sent where a greeting or a TLS handshake was expected
    (``b""``: it closed the connection without a word); ``probe`` what came back after a silent
    greeting when the check sent one plaintext line (``b""``: the server hung up — a TLS port does
    that; see :func:`mailport.net.probe.probe_plaintext`); ``peer_names`` the names (SANs) in the
    server's certificate, when the check could read it (:func:`mailport.net.probe.peer_certificate_names`).
    """

    step: Step
    protocol: Protocol
    provider: str | None = None
    host: str | None = None
    port: int | None = None
    security: Security | None = None
    auth: str | None = None
    reply: ServerReply | None = None
    error: BaseException | None = None
    received: bytes | None = None
    probe: bytes | None = None
    peer_names: Sequence[str] = ()


# --------------------------------------------------------------------------- output


@dataclass(frozen=True)
class Suggestion:
    """Settings to try instead (only the fields that should change are set)."""

    host: str | None = None
    port: int | None = None
    security: Security | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in (("host", self.host), ("port", self.port), ("security", self.security)) if v}


@dataclass(frozen=True)
class Diagnosis:
    """The answer for one failing step."""

    error_class: type[MailportError]
    detail: str
    hint: str
    server_said: str | None = None
    suggestions: tuple[Suggestion, ...] = ()

    @property
    def code(self) -> str:
        return self.error_class.code

    def to_error(self) -> MailportError:
        """The error to raise (``raise diagnosis.to_error() from exc``)."""
        extra: dict[str, Any] = {}
        if self.suggestions:
            extra["suggestions"] = [s.as_dict() for s in self.suggestions]
        return self.error_class(self.detail, hint=self.hint, server_said=self.server_said, **extra)

    def step_fields(self) -> dict[str, Any]:
        """The failing step's fields in the check's answer (``detail``, ``code``, ``hint``, …)."""
        body: dict[str, Any] = {"detail": self.detail, "code": self.code, "hint": self.hint}
        if self.server_said:
            body["server_said"] = self.server_said
        if self.suggestions:
            body["suggestions"] = [s.as_dict() for s in self.suggestions]
        return body


# --------------------------------------------------------------------------- helpers


def _one_line(text: str) -> str:
    cleaned = "".join(ch if ch.isprintable() else " " for ch in text)
    cleaned = " ".join(cleaned.split())
    return cleaned[:_MAX_SERVER_SAID] + ("…" if len(cleaned) > _MAX_SERVER_SAID else "")


_PROVIDER_HINTS_BY_HOST: tuple[tuple[str, str], ...] = (
    ("gmail.com", "gmail"),
    ("googlemail.com", "gmail"),
    ("google.com", "gmail"),
    ("office365.com", "microsoft"),
    ("outlook.com", "microsoft"),
    ("hotmail.com", "microsoft"),
    ("live.com", "microsoft"),
    ("yahoo.com", "yahoo"),
    ("aol.com", "aol"),
    ("mail.me.com", "icloud"),
    ("icloud.com", "icloud"),
    ("yandex.com", "yandex"),
    ("yandex.ru", "yandex"),
    ("yandex.net", "yandex"),
)
_PROVIDER_BY_WORDS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"Microsoft Exchange|\.PROD\.OUTLOOK\.COM|aka\.ms/|outlook\.office365\.com", re.I),
        "microsoft",
    ),
    (re.compile(r"\bgsmtp\b|support\.google\.com|Gimap", re.I), "gmail"),
    (re.compile(r"Yandex", re.I), "yandex"),
    (re.compile(r"iSCREAM|\bicloud\b", re.I), "icloud"),
)


def infer_provider(host: str | None, words: str = "") -> str | None:
    """Best guess of the provider from the server's host name or its words (greeting, reply)."""
    if host:
        name = host.lower().rstrip(".")
        for suffix, provider in _PROVIDER_HINTS_BY_HOST:
            if name == suffix or name.endswith("." + suffix):
                return provider
    for pattern, provider in _PROVIDER_BY_WORDS:
        if words and pattern.search(words):
            return provider
    return None


def _host_suggestions(names: Sequence[str], protocol: str) -> tuple[str, ...]:
    """Concrete host names from a certificate's names, the protocol's likely one first."""
    concrete = [n for n in names if n and not n.startswith("*.")]
    wildcard = [n[2:] for n in names if n.startswith("*.")]
    prefixes = ("imap", "mail") if protocol == "imap" else ("smtp", "mail")
    concrete.sort(key=lambda n: 0 if n.split(".", 1)[0] in prefixes else 1)
    for base in wildcard:
        concrete.extend(f"{p}.{base}" for p in prefixes[:1])
    return tuple(dict.fromkeys(concrete))


def _provider_name(provider: str | None) -> str:
    return PROVIDER_NAMES.get(provider or "", "The provider")


def _errno_of(error: BaseException | None) -> int | None:
    while error is not None:
        if isinstance(error, OSError) and error.errno is not None:
            return error.errno
        error = error.__cause__ or error.__context__
    return None


def _find(error: BaseException | None, kind: type[BaseException]) -> BaseException | None:
    """``error`` or the first exception in its cause chain of type ``kind``."""
    seen = 0
    while error is not None and seen < 10:
        if isinstance(error, kind):
            return error
        error = error.__cause__ or error.__context__
        seen += 1
    return None


def _is_timeout(error: BaseException | None) -> bool:
    return _find(error, TimeoutError) is not None


def _describe(error: BaseException | None) -> str:
    if error is None:
        return ""
    text = str(error) or type(error).__name__
    return _one_line(f"{type(error).__name__}: {text}" if str(error) else text)


_TLS_RECORD_TYPES = frozenset({0x14, 0x15, 0x16, 0x17})


def _looks_like_tls(data: bytes | None) -> bool:
    """A TLS record header: content type 20–23 followed by major version 3."""
    return bool(data) and len(data or b"") >= 2 and data[0] in _TLS_RECORD_TYPES and data[1] == 3  # type: ignore[index]


def _service_of(data: bytes | None) -> str | None:
    """Recognise which service a banner belongs to."""
    if not data:
        return None
    if _looks_like_tls(data):
        return "tls"
    head = data[:64].decode("latin-1")
    if re.match(r"\* (OK|PREAUTH|BYE)\b", head, re.I):
        return "imap"
    if re.match(r"[245]\d\d[ -]", head):
        return "smtp"
    if head.startswith("+OK"):
        return "pop3"
    if head.startswith("SSH-"):
        return "ssh"
    if head.startswith("HTTP/") or head.startswith("<"):
        return "http"
    return "unknown"


# --------------------------------------------------------------------------- hints

_APP_PASSWORD_HINTS: dict[str, str] = {
    "gmail": (
        "Google accepts only an app password from mail programs: turn on 2-Step Verification, create "
        f"an app password at {GOOGLE_APP_PASSWORDS_PAGE} (see {GOOGLE_APP_PASSWORDS}) and enter it "
        "instead of the Google password — or connect with Google (OAuth2) instead."
    ),
    "yahoo": (
        "Yahoo accepts only an app password from mail programs: Yahoo account → Account security → "
        f"Generate app password (see {YAHOO_APP_PASSWORDS}), then enter that 16-letter password here."
    ),
    "aol": (
        "AOL accepts only an app password from mail programs: AOL account → Account security → "
        f"Generate app password (see {AOL_APP_PASSWORDS}), then enter that password here."
    ),
    "icloud": (
        "iCloud Mail accepts only an app-specific password: at https://account.apple.com → Sign-In "
        f"and Security → App-Specific Passwords, create one (see {APPLE_APP_PASSWORDS}); use the full "
        "iCloud address (name@icloud.com) as the user name."
    ),
    "yandex": (
        f"Yandex accepts only an app password from mail programs: create one at {YANDEX_APP_PASSWORDS} "
        f"(type “Mail”), and allow IMAP at {YANDEX_CLIENT_SETTINGS}."
    ),
    "microsoft": (
        "Microsoft accepts app passwords only for accounts with two-step verification and only where "
        "the organisation still allows basic authentication; connect with Microsoft (OAuth2) instead."
    ),
}


def _app_password_hint(provider: str | None) -> str:
    return _APP_PASSWORD_HINTS.get(provider or "", AppPasswordRequiredError.hint)


def _invalid_credentials_hint(provider: str | None, protocol: str) -> str:
    if provider == "gmail":
        return (
            "Google refused the user name or password. Use the full Gmail address as the user name. "
            "Google no longer accepts the account password from mail programs: create an app password "
            f"at {GOOGLE_APP_PASSWORDS_PAGE} (2-Step Verification must be on; see {GOOGLE_APP_PASSWORDS}); "
            "if an app password stopped working, it was revoked or the Google password changed — make a new "
            "one. Or connect with Google (OAuth2)."
        )
    if provider == "microsoft":
        return (
            "Microsoft refused the credentials. Check the password (sign in at https://outlook.office.com "
            "to be sure). If it is right: an admin must enable Authenticated SMTP for this mailbox "
            "(Microsoft 365 admin center → Users → Active users → the user → Mail → Manage email apps → "
            f"Authenticated SMTP; see {MS_SMTP_AUTH}); with multi-factor sign-in or security defaults "
            "passwords are refused — connect with Microsoft (OAuth2) instead."
            if protocol == "smtp"
            else "Microsoft refused the credentials; Microsoft 365 accepts only OAuth2 for IMAP — connect "
            "with Microsoft (OAuth2)."
        )
    if provider in _APP_PASSWORD_HINTS:
        return _app_password_hint(provider)
    return (
        "The server refused the user name or password. Check both (the user name is usually the full "
        "email address); if the account uses two-step verification, create an app password."
    )


# --------------------------------------------------------------------------- server words

Matcher = Callable[[Failure, ServerReply], bool]


@dataclass(frozen=True)
class _Rule:
    """One recognised server answer: where it applies, what it means, what to do."""

    error_class: type[MailportError]
    pattern: re.Pattern[str] | None = None
    protocols: frozenset[str] = frozenset({"imap", "smtp"})
    providers: frozenset[str] | None = None  # None: any provider (including unknown)
    auth: str | None = None  # "password" / "oauth2" / None for either
    enhanced: str | None = None  # SMTP enhanced status code prefix, e.g. "5.7.139"
    smtp_codes: frozenset[int] = frozenset()
    detail: str = ""
    hint: str | Callable[[Failure], str] | None = None
    also: Matcher | None = None

    def matches(self, failure: Failure, reply: ServerReply, provider: str | None) -> bool:
        if failure.protocol not in self.protocols:
            return False
        if self.providers is not None and provider not in self.providers:
            return False
        if self.auth is not None and (failure.auth or "password") != self.auth:
            return False
        if self.enhanced is not None and not (reply.enhanced_code or "").startswith(self.enhanced):
            return False
        if self.smtp_codes and reply.smtp_code not in self.smtp_codes:
            return False
        if self.pattern is not None and not self.pattern.search(reply.words()):
            return False
        return self.also is None or self.also(failure, reply)


def _i(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.I)


def _ms_smtp_auth_hint(failure: Failure) -> str:
    return (
        "Authenticated SMTP is turned off. A Microsoft 365 admin can enable it for this mailbox: "
        "Microsoft 365 admin center → Users → Active users → the user → Mail → Manage email apps → tick "
        "“Authenticated SMTP”, or in Exchange Online PowerShell `Set-CASMailbox -Identity <address> "
        "-SmtpClientAuthenticationDisabled $false` (tenant-wide: `Set-TransportConfig "
        f"-SmtpClientAuthenticationDisabled $false`). See {MS_SMTP_AUTH} and "
        "https://aka.ms/smtp_auth_disabled. "
        "Security defaults also block it; OAuth2 (connect with Microsoft) avoids all of this."
    )


def _ms_basic_auth_hint(failure: Failure) -> str:
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


def _ms_oauth_permission_hint(failure: Failure) -> str:
    scope = "SMTP.Send" if failure.protocol == "smtp" else "IMAP.AccessAsUser.All"
    return (
        f"Microsoft accepted the token but refused it for {failure.protocol.upper()}. Check that: the token "
        f"was issued for the scope https://outlook.office.com/{scope} (plus offline_access) and for the same "
        "account as the user name; the app registration has that delegated permission with admin consent; "
        "for an app-only (client credentials) token, the app's service principal is registered in Exchange "
        "(New-ServicePrincipal) and has FullAccess on the mailbox (Add-MailboxPermission). If it worked "
        f"before, the token was revoked: reconnect the mailbox. See {MS_OAUTH_IMAP}."
    )


def _mailbox_access_hint(failure: Failure) -> str:
    return (
        "Microsoft signed in the identity but could not open the mailbox. Usually the OAuth token belongs "
        "to another account than the user name given (sign in again with the mailbox's own account), or an "
        "app-only token lacks FullAccess on this mailbox (Add-MailboxPermission -Identity <mailbox> -User "
        "<service principal id> -AccessRights FullAccess), or the mailbox is not licensed for Exchange "
        "Online. With a password login this answer also follows a wrong password."
    )


def _web_login_hint(failure: Failure) -> str:
    if _effective_provider(failure) == "microsoft":
        return (
            "Microsoft blocked the sign-in until the owner verifies it: sign in at "
            "https://outlook.live.com (or https://outlook.office.com), complete the verification, then "
            "connect with Microsoft (OAuth2)."
        )
    return (
        "Google blocked this sign-in as suspicious. Sign in once at https://mail.google.com from the "
        f"same network, confirm “It was me” on the security alert, open {GOOGLE_UNLOCK}, then retry with "
        f"an app password ({GOOGLE_APP_PASSWORDS}) — or connect with Google (OAuth2)."
    )


def _imap_disabled_hint(failure: Failure) -> str:
    provider = _effective_provider(failure)
    if provider == "yandex":
        return (
            f"Yandex answers this when IMAP is off or the password is not an app password: enable “From the "
            f"imap.yandex.com server via IMAP” at {YANDEX_CLIENT_SETTINGS} (Settings → Email clients), then "
            f"create an app password at {YANDEX_APP_PASSWORDS} and use it here."
        )
    if provider == "gmail":
        return "Enable IMAP in Gmail: Settings → See all settings → Forwarding and POP/IMAP → IMAP access."
    return IMAPDisabledError.hint


def _too_many_hint(failure: Failure) -> str:
    if _effective_provider(failure) == "gmail":
        return (
            "Gmail allows 15 simultaneous IMAP connections per account. Close other mail programs or "
            "devices syncing this mailbox (or remove stale ones), wait a few minutes and retry."
        )
    return (
        "The server limits simultaneous connections per account (or per account and address). Close other "
        "mail programs syncing this mailbox, wait a few minutes and retry; a server admin can raise the "
        "limit (Dovecot: mail_max_userip_connections)."
    )


def _oauth_rejected_hint(failure: Failure) -> str:
    provider = _effective_provider(failure)
    scope = {
        "gmail": "https://mail.google.com/",
        "microsoft": "https://outlook.office.com/"
        + ("SMTP.Send" if failure.protocol == "smtp" else "IMAP.AccessAsUser.All"),
    }.get(provider or "")
    scope_text = f" and that it was issued for the scope {scope}" if scope else ""
    return (
        "The server refused the access token: it expired or was revoked (password change, user removed "
        "the app's access), or it belongs to another account than the user name. Reconnect the mailbox "
        f"(sign in again) and check that the user name is the signed-in address{scope_text}."
    )


def _auth_mech_hint(failure: Failure) -> str:
    if failure.security == "none":
        return (
            "The server refuses to log in over an unencrypted connection: choose security SSL/TLS "
            f"(port {STANDARD_PORTS[failure.protocol]['ssl']}) or STARTTLS."
        )
    return (
        "The server does not offer this sign-in mechanism. For OAuth2 it must advertise XOAUTH2 or "
        "OAUTHBEARER; otherwise use a password (or app password) if the provider allows it."
    )


_RULES: tuple[_Rule, ...] = (
    # --- anywhere: connection limits ----------------------------------------------------------
    _Rule(
        TooManyConnectionsError,
        _i(
            r"too many (simultaneous|concurrent)? ?connections|maximum number of connections|"
            r"connection limit|too many sessions"
        ),
        detail="The server refused: too many simultaneous connections for this account.",
        hint=_too_many_hint,
    ),
    _Rule(
        TooManyConnectionsError,
        also=lambda f, r: (r.response_code or "").upper() == "LIMIT",
        protocols=frozenset({"imap"}),
        detail="The server refused: a per-account limit was reached.",
        hint=_too_many_hint,
    ),
    # --- Gmail ---------------------------------------------------------------------------------
    _Rule(
        AppPasswordRequiredError,
        _i(r"Application-specific password required|InvalidSecondFactor"),
        detail="Google requires an app password for this account (2-Step Verification is on).",
        hint=lambda f: _app_password_hint("gmail"),
    ),
    _Rule(
        WebLoginRequiredError,
        _i(r"Please log in via your web browser|Web login required|WEBALERT|Please log ?in via your web"),
        detail="Google blocked the sign-in until the account owner confirms it in a web browser.",
        hint=_web_login_hint,
    ),
    _Rule(
        IMAPDisabledError,
        _i(r"not enabled for IMAP use|IMAP access is disabled|IMAP is disabled"),
        detail="IMAP access is disabled for this account (or the password is not accepted for IMAP).",
        hint=_imap_disabled_hint,
    ),
    # --- Microsoft ----------------------------------------------------------------------------
    _Rule(
        WebLoginRequiredError,
        _i(r"Account is blocked\. Login to your account via a web browser"),
        detail="Microsoft blocked the account until its owner signs in on the web.",
        hint=_web_login_hint,
    ),
    _Rule(
        SMTPAuthDisabledError,
        _i(r"SmtpClientAuthentication is disabled|smtp_auth_disabled"),
        protocols=frozenset({"smtp"}),
        detail="Authenticated SMTP (SMTP AUTH) is disabled for this mailbox or its whole tenant.",
        hint=_ms_smtp_auth_hint,
    ),
    _Rule(
        BasicAuthBlockedError,
        _i(r"security defaults"),
        protocols=frozenset({"smtp"}),
        enhanced="5.7.139",
        detail="The tenant's security defaults block password sign-in to SMTP.",
        hint=lambda f: (
            "Microsoft Entra security defaults block SMTP AUTH with a password. Connect with Microsoft "
            "(OAuth2), or an admin turns security defaults off in favour of Conditional Access "
            f"(see {MS_SMTP_AUTH})."
        ),
    ),
    _Rule(
        InvalidCredentialsError,
        _i(r"user credentials were incorrect"),
        protocols=frozenset({"smtp"}),
        enhanced="5.7.139",
        detail="Microsoft says the user name or password is wrong.",
        hint=lambda f: _invalid_credentials_hint("microsoft", "smtp"),
    ),
    _Rule(
        BasicAuthBlockedError,
        _i(
            r"BasicAuthBlocked|Basic authentication is (disabled|not supported)|"
            r"basic auth(entication)? is blocked"
        ),
        detail="Microsoft refuses password sign-in (basic authentication) for this account.",
        hint=_ms_basic_auth_hint,
    ),
    _Rule(
        BasicAuthBlockedError,
        protocols=frozenset({"smtp"}),
        enhanced="5.7.139",
        detail="Microsoft refused the sign-in by policy (multi-factor, Conditional Access or basic "
        "authentication turned off).",
        hint=_ms_basic_auth_hint,
    ),
    _Rule(
        InvalidCredentialsError,
        protocols=frozenset({"smtp"}),
        enhanced="5.7.3",
        smtp_codes=frozenset({535}),
        auth="password",
        detail="Microsoft refused the sign-in (wrong password, or Authenticated SMTP is off for the mailbox"
        ").",
        hint=lambda f: _invalid_credentials_hint("microsoft", "smtp"),
    ),
    _Rule(
        MailboxAccessDeniedError,
        _i(r"User is authenticated but not connected"),
        protocols=frozenset({"imap"}),
        detail="Microsoft authenticated the identity but did not connect it to the mailbox.",
        hint=_mailbox_access_hint,
    ),
    _Rule(
        OAuthPermissionMissingError,
        _i(r"AUTHENTICATE failed|AuthFailed|LogonDenied"),
        protocols=frozenset({"imap"}),
        providers=frozenset({"microsoft"}),
        auth="oauth2",
        detail="Microsoft refused the OAuth2 token for IMAP (missing scope or mailbox permission).",
        hint=_ms_oauth_permission_hint,
    ),
    _Rule(
        BasicAuthBlockedError,
        _i(r"LOGIN failed|AUTHENTICATE failed|AuthFailed|LogonDenied"),
        protocols=frozenset({"imap"}),
        providers=frozenset({"microsoft"}),
        auth="password",
        detail="Microsoft refused the password: Microsoft 365 and Outlook.com accept only OAuth2 over IMAP.",
        hint=_ms_basic_auth_hint,
    ),
    # --- SMTP (Gmail and the generic RFC 4954 answers) -----------------------------------------
    _Rule(
        InvalidCredentialsError,
        _i(r"Username and Password not accepted|BadCredentials"),
        protocols=frozenset({"smtp"}),
        auth="password",  # with a token, Gmail says the same after its OAuth error challenge
        detail="Google refused the user name or password.",
        hint=lambda f: _invalid_credentials_hint("gmail", "smtp"),
    ),
    # --- OAuth2 in general ----------------------------------------------------------------------
    _Rule(
        OAuthPermissionMissingError,
        _i(r"insufficient_scope|invalid_scope"),
        auth="oauth2",
        detail="The access token does not carry the mail scope.",
        hint=lambda f: (
            _ms_oauth_permission_hint(f)
            if _effective_provider(f) == "microsoft"
            else "Reconnect the mailbox and grant mail access (Google: scope https://mail.google.com/)."
        ),
    ),
    _Rule(
        OAuthPermissionMissingError,
        protocols=frozenset({"smtp"}),
        providers=frozenset({"microsoft"}),
        auth="oauth2",
        smtp_codes=frozenset({535}),
        detail="Microsoft refused the OAuth2 token for SMTP (missing scope, or SMTP AUTH is off).",
        hint=lambda f: _ms_oauth_permission_hint(f) + " " + _ms_smtp_auth_hint(f),
    ),
    _Rule(
        OAuthTokenRejectedError,
        auth="oauth2",
        also=lambda f, r: r.status in ("NO", "BAD") or (r.smtp_code or 0) >= 500 or r.smtp_code == 334,
        detail="The server refused the OAuth2 access token.",
        hint=_oauth_rejected_hint,
    ),
    # --- password login in general --------------------------------------------------------------
    _Rule(
        AuthMechanismUnsupportedError,
        _i(
            r"PRIVACYREQUIRED|LOGINDISABLED|Plaintext authentication disallowed|"
            r"mechanism is not supported|Unsupported authentication mechanism|"
            r"Authentication mechanism is too weak|Must issue a STARTTLS command first"
        ),
        detail="The server does not accept this sign-in here.",
        hint=_auth_mech_hint,
    ),
    _Rule(
        AppPasswordRequiredError,
        _i(
            r"AUTHENTICATIONFAILED|Invalid credentials|Authentication failed|LOGIN failed|"
            r"authentication credentials invalid|Authentication unsuccessful"
        ),
        providers=frozenset({"yahoo", "aol", "icloud", "yandex"}),
        auth="password",
        detail="The provider refused the password; it accepts only app passwords from mail programs.",
        hint=lambda f: _app_password_hint(_effective_provider(f)),
    ),
    _Rule(
        AppPasswordRequiredError,
        providers=frozenset({"yahoo", "aol", "icloud", "yandex"}),
        protocols=frozenset({"smtp"}),
        auth="password",
        smtp_codes=frozenset({535}),
        detail="The provider refused the password; it accepts only app passwords from mail programs.",
        hint=lambda f: _app_password_hint(_effective_provider(f)),
    ),
    _Rule(
        InvalidCredentialsError,
        _i(
            r"AUTHENTICATIONFAILED|Invalid credentials|Authentication failed|LOGIN failed|"
            r"authentication credentials invalid|Authentication unsuccessful|incorrect password|"
            r"bad (user ?name|password)"
        ),
        detail="The server refused the user name or password.",
        hint=lambda f: _invalid_credentials_hint(_effective_provider(f), f.protocol),
    ),
    _Rule(
        InvalidCredentialsError,
        protocols=frozenset({"smtp"}),
        smtp_codes=frozenset({535}),
        detail="The server refused the user name or password.",
        hint=lambda f: _invalid_credentials_hint(_effective_provider(f), f.protocol),
    ),
)


def _effective_provider(failure: Failure) -> str | None:
    words = failure.reply.words() if failure.reply else ""
    return failure.provider or infer_provider(failure.host, words)


# --------------------------------------------------------------------------- per step


def _suggest_standard(protocol: str, security: str) -> Suggestion:
    return Suggestion(port=STANDARD_PORTS[protocol][security], security=security)  # type: ignore[arg-type]


def _at(failure: Failure) -> str:
    if failure.host and failure.port:
        return f"{failure.host}:{failure.port}"
    return failure.host or "the server"


def _dns(failure: Failure) -> Diagnosis | None:
    error = failure.error
    name_missing = isinstance(error, HostNotFoundError) or type(error).__name__ in ("NXDOMAIN", "NoAnswer")
    gai = _find(error, socket.gaierror)
    if isinstance(gai, socket.gaierror) and gai.errno in _GAI_NO_NAME:
        name_missing = True
    if name_missing:
        provider = _effective_provider(failure)
        usual = PROVIDER_HOSTS.get(provider or "", {}).get(failure.protocol)
        suggestions = (Suggestion(host=usual),) if usual and usual != failure.host else ()
        hint = "Check the spelling of the host name; it has no address in DNS."
        if suggestions:
            hint += f" {_provider_name(provider)}'s {failure.protocol.upper()} server is {usual}."
        else:
            hint += " Your provider's help pages list the exact IMAP and SMTP server names."
        return Diagnosis(
            HostNotFoundError,
            f"The host name {failure.host or ''} does not exist.".replace("  ", " "),
            hint,
            suggestions=suggestions,
        )
    if error is None:
        return None
    return Diagnosis(
        ConnectError,
        f"Looking up {failure.host or 'the host'} failed: {_describe(error)}",
        "DNS did not answer; check this machine's network and DNS servers (MAILPORT_DNS_NAMESERVERS), "
        "then retry.",
    )


_GAI_NO_NAME = frozenset(
    {
        socket.EAI_NONAME,
        getattr(socket, "EAI_NODATA", socket.EAI_NONAME),
        getattr(socket, "EAI_ADDRFAMILY", -9),
    }
)


def _tcp(failure: Failure) -> Diagnosis | None:
    error = failure.error
    number = _errno_of(error)
    protocol = failure.protocol
    ssl_port, tls_port = STANDARD_PORTS[protocol]["ssl"], STANDARD_PORTS[protocol]["starttls"]
    suggestions: tuple[Suggestion, ...] = ()
    if (
        isinstance(error, ConnectionRefusedByServerError)
        or isinstance(_find(error, ConnectionRefusedError), ConnectionRefusedError)
        or number == errno.ECONNREFUSED
    ):
        suggestions = tuple(
            s
            for s in (_suggest_standard(protocol, "ssl"), _suggest_standard(protocol, "starttls"))
            if s.port != failure.port
        )
        return Diagnosis(
            ConnectionRefusedByServerError,
            f"{_at(failure)} refused the connection: nothing listens on port {failure.port}.",
            f"Check the port: {protocol.upper()} is usually {ssl_port} with SSL/TLS or {tls_port} with "
            "STARTTLS. If the port is right, the server is down or a firewall rejects the connection.",
            suggestions=suggestions,
        )
    if _is_timeout(error) or number == errno.ETIMEDOUT:
        hint = (
            "No answer at all: a firewall (on this network or the server's) drops the connection, or the "
            "host/port is wrong."
        )
        if protocol == "smtp" and failure.port == 25:
            hint += (
                " Many networks and cloud hosts block outgoing port 25; use 587 (STARTTLS) or 465 (SSL/TLS)."
            )
            suggestions = (_suggest_standard("smtp", "starttls"), _suggest_standard("smtp", "ssl"))
        return Diagnosis(
            ConnectTimeoutError, f"Connecting to {_at(failure)} timed out.", hint, suggestions=suggestions
        )
    if number in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return Diagnosis(
            ConnectError,
            f"{_at(failure)} is unreachable from here ({_describe(error)}).",
            "This machine has no route to that address (often IPv6 without IPv6 connectivity, or "
            "a private address); check the host name and this machine's network.",
        )
    return None


_TLS_MISMATCH_REASONS = frozenset(
    {
        "WRONG_VERSION_NUMBER",
        "HTTP_REQUEST",
        "PACKET_LENGTH_TOO_LONG",
        "RECORD_LAYER_FAILURE",
        "UNKNOWN_PROTOCOL",
        "RECORD_TOO_LARGE",
    }
)


def _tls(failure: Failure) -> Diagnosis | None:
    error = failure.error
    verify = _find(error, ssl.SSLCertVerificationError)
    if isinstance(verify, ssl.SSLCertVerificationError):
        return _certificate(failure, verify)
    ssl_error = _find(error, ssl.SSLError)
    reason = getattr(ssl_error, "reason", None) or ""
    service = _service_of(failure.received)
    if reason in _TLS_MISMATCH_REASONS or service in ("imap", "smtp"):
        return _tls_on_plaintext(failure)
    if reason in ("UNSUPPORTED_PROTOCOL", "TLSV1_ALERT_PROTOCOL_VERSION", "NO_PROTOCOLS_AVAILABLE"):
        return Diagnosis(
            TLSError,
            f"{_at(failure)} and mailport share no TLS version ({reason}).",
            "The server only speaks an outdated TLS version (1.0/1.1); its operator must enable "
            "TLS 1.2 or later.",
        )
    if _is_timeout(error):
        return Diagnosis(
            ServerSilentError,
            f"{_at(failure)} accepted the connection but never answered the TLS handshake.",
            "The port is probably wrong or a proxy/firewall holds the connection; check host and port.",
        )
    if ssl_error is not None or isinstance(_find(error, ConnectionResetError), ConnectionResetError):
        return Diagnosis(
            TLSError,
            f"The TLS handshake with {_at(failure)} failed: {_describe(ssl_error or error)}",
            "The server closed the connection during the handshake: check the port/security "
            "pair (implicit TLS on 993/465, STARTTLS on 143/587) and that the server supports "
            "TLS 1.2 or later.",
        )
    return None


def _certificate(failure: Failure, error: ssl.SSLCertVerificationError) -> Diagnosis:
    code = error.verify_code
    message = error.verify_message or str(error)
    at = _at(failure)
    if isinstance(error, PinMismatch):
        presented = error.presented.sha256 if error.presented else "none"
        return Diagnosis(
            CertificateChangedError,
            f"{at}: the server presented a different certificate (SHA-256 {presented}) than the "
            f"one trusted for this server (SHA-256 {error.pinned}).",
            CertificateChangedError.hint,
        )
    if code in (62, 64) or any(
        m in message.lower() for m in ("hostname mismatch", "ip address mismatch", "doesn't match")
    ):
        hosts = _host_suggestions(failure.peer_names, failure.protocol)
        names = ", ".join(failure.peer_names) or "another host"
        hint = f"The certificate is valid for {names}, not for {failure.host or 'this host'}."
        if hosts:
            hint += f" Use {hosts[0]} as the server name."
        else:
            hint += (
                " Use the host name your provider publishes for IMAP/SMTP (the one the certificate names)."
            )
        return Diagnosis(
            CertificateHostnameMismatchError,
            f"{at}: {message}",
            hint,
            suggestions=tuple(Suggestion(host=h) for h in hosts),
        )
    if code in (10, 9):
        when = "has expired" if code == 10 else "is not valid yet"
        return Diagnosis(
            CertificateExpiredError,
            f"{at}: the certificate {when} ({message}).",
            f"The server's certificate {when}. Its operator must renew it; if this machine's "
            "clock is wrong, fix the clock. Do not turn verification off.",
        )
    if code in (18, 19):
        return Diagnosis(
            CertificateSelfSignedError,
            f"{at}: {message}.",
            "The server presents a self-signed certificate. If you trust this server, trust this "
            "certificate for it after comparing its fingerprint with the server's operator (the "
            "wizard's \"Trust this certificate\", or the server's `trusted_certificate`); better, "
            "its operator installs a certificate from a public CA.",
        )
    if code in (2, 20, 21, 27, 28):
        return Diagnosis(
            CertificateUntrustedError,
            f"{at}: {message}.",
            "The certificate is issued by a CA this machine does not trust (a private/company CA, "
            "or the server omits its intermediate certificate). Add the CA (MAILPORT_MAIL_CA_FILE, "
            "`ca_pem`, `--imap-ca-file`/`--smtp-ca-file`) or trust this server's certificate; the "
            "server's operator should send the full chain.",
        )
    return Diagnosis(TLSError, f"{at}: certificate verification failed ({message}).", TLSError.hint)


def _tls_on_plaintext(failure: Failure) -> Diagnosis:
    protocol = failure.protocol
    port = failure.port
    suggestions = [Suggestion(port=port, security="starttls")] if port else []
    ssl_port = STANDARD_PORTS[protocol]["ssl"]
    if port != ssl_port:
        suggestions.append(Suggestion(port=ssl_port, security="ssl"))
    said = failure.received.decode("latin-1", "replace").strip() if failure.received else None
    return Diagnosis(
        TLSOnPlaintextPortError,
        f"mailport started TLS, but {_at(failure)} answered in plaintext: "
        "the port expects STARTTLS (or no TLS).",
        f"Use security STARTTLS on port {port}, or SSL/TLS on port {ssl_port}."
        if port
        else f"Use STARTTLS on this port, or SSL/TLS on port {ssl_port}.",
        server_said=_one_line(said) if said else None,
        suggestions=tuple(suggestions),
    )


def _plaintext_on_tls(failure: Failure, how: str) -> Diagnosis:
    port = failure.port
    protocol = failure.protocol
    plain = STANDARD_PORTS[protocol]["starttls"]
    suggestions = [Suggestion(port=port, security="ssl")] if port else []
    if port != plain:
        suggestions.append(Suggestion(port=plain, security="starttls"))
    return Diagnosis(
        PlaintextOnTLSPortError,
        f"{_at(failure)} {how}: the port expects TLS from the first byte (implicit TLS).",
        f"Choose security SSL/TLS for port {port}, or STARTTLS on port {plain}."
        if port
        else f"Choose security SSL/TLS, or STARTTLS on port {plain}.",
        suggestions=tuple(suggestions),
    )


def _greeting(failure: Failure) -> Diagnosis | None:
    error = failure.error
    service = _service_of(failure.received)
    if service == "tls":
        return _plaintext_on_tls(failure, "answered with TLS data")
    if failure.received == b"" and not _is_timeout(error):
        return Diagnosis(
            ConnectionLostError,
            f"{_at(failure)} closed the connection before greeting.",
            "The server hung up at once: it may refuse this machine's address (blocklist, firewall, "
            "connection limit) or be overloaded. Retry later; check the host and port.",
        )
    if _is_timeout(error) or (error is None and failure.reply is None and not failure.received):
        if failure.probe is not None and (failure.probe == b"" or _looks_like_tls(failure.probe)):
            return _plaintext_on_tls(failure, "never greeted and hung up on plaintext")
        implicit = failure.port in IMPLICIT_TLS_PORTS[failure.protocol]
        if failure.security in ("starttls", "none") and implicit:
            return _plaintext_on_tls(failure, "never greeted (it waits for a TLS handshake)")
        return Diagnosis(
            ServerSilentError,
            f"{_at(failure)} accepted the connection but never sent a greeting.",
            "A server that accepts TCP and stays silent is usually the wrong port (one that expects TLS: "
            f"choose SSL/TLS for {failure.protocol.upper()} on {STANDARD_PORTS[failure.protocol]['ssl']}), a "
            "firewall or proxy that holds connections, or an overloaded server. Check host and port.",
            suggestions=(Suggestion(port=failure.port, security="ssl"),)
            if failure.port and failure.security != "ssl"
            else (),
        )
    if service and service not in ("unknown", failure.protocol):
        names = {
            "imap": "an IMAP server",
            "smtp": "an SMTP server",
            "pop3": "a POP3 server",
            "ssh": "an SSH server",
            "http": "a web server",
        }
        said = failure.received.decode("latin-1", "replace") if failure.received else ""
        right = STANDARD_PORTS[failure.protocol]
        return Diagnosis(
            WrongServiceError,
            f"{_at(failure)} is {names.get(service, 'another service')}, not {failure.protocol.upper()}.",
            f"Use the {failure.protocol.upper()} port: {right['ssl']} (SSL/TLS) "
            f"or {right['starttls']} (STARTTLS).",
            server_said=_one_line(said),
            suggestions=(
                _suggest_standard(failure.protocol, "ssl"),
                _suggest_standard(failure.protocol, "starttls"),
            ),
        )
    return None


def _starttls(failure: Failure) -> Diagnosis | None:
    tls = _tls(failure) if failure.error is not None else None
    if tls is not None:
        return tls
    reply = failure.reply
    refused = reply is None or reply.status in ("NO", "BAD") or (reply.smtp_code or 0) >= 400
    if failure.error is None and refused:
        ssl_port = STANDARD_PORTS[failure.protocol]["ssl"]
        return Diagnosis(
            StartTLSNotOfferedError,
            f"{_at(failure)} does not offer STARTTLS.",
            f"Use implicit TLS instead (security SSL/TLS, port {ssl_port}); "
            "if the server offers no TLS at all, "
            "its operator must enable it — mailport does not send passwords over an unencrypted connection.",
            server_said=reply.quoted() if reply else None,
            suggestions=(_suggest_standard(failure.protocol, "ssl"),),
        )
    return None


def _words(failure: Failure) -> Diagnosis | None:
    reply = failure.reply
    if reply is None:
        return None
    provider = _effective_provider(failure)
    for rule in _RULES:
        if rule.matches(failure, reply, provider):
            hint = rule.hint(failure) if callable(rule.hint) else (rule.hint or rule.error_class.hint)
            return Diagnosis(rule.error_class, rule.detail, hint, server_said=reply.quoted())
    return None


def _fallback(failure: Failure) -> Diagnosis:
    reply = failure.reply
    error = failure.error
    said = reply.quoted() if reply else None
    step = failure.step
    if isinstance(error, MailportError) and (reply is None or not isinstance(error, ProviderError)):
        return Diagnosis(type(error), error.message, error.hint, server_said=error.server_said)
    if _is_timeout(error):
        return Diagnosis(
            MailTimeoutError, f"{_at(failure)} did not answer in time during {step}.", MailTimeoutError.hint
        )
    if step in ("authentication", "smtp_auth"):
        return Diagnosis(
            AuthenticationError,
            f"Sign-in to {_at(failure)} failed.",
            _invalid_credentials_hint(_effective_provider(failure), failure.protocol)
            if reply
            else AuthenticationError.hint,
            server_said=said,
        )
    if step == "smtp_send":
        return Diagnosis(
            SMTPRejectedError,
            f"{_at(failure)} refused the test message.",
            SMTPRejectedError.hint,
            server_said=said,
        )
    if reply is not None and step in ("greeting", "smtp_ehlo"):
        return Diagnosis(
            ProviderError,
            f"{_at(failure)} refused the session.",
            "The server refused to talk to this machine; its words say why (often this machine's address "
            "is on a blocklist, or the server is overloaded). Retry later, or ask the server's operator.",
            server_said=said,
        )
    if reply is not None:
        return Diagnosis(CommandError, f"{_at(failure)} refused {step}.", CommandError.hint, server_said=said)
    if error is not None:
        return Diagnosis(ProviderError, f"{step} failed: {_describe(error)}", ProviderError.hint)
    return Diagnosis(ProviderError, f"{step} failed.", ProviderError.hint)


_BY_STEP: dict[str, tuple[Callable[[Failure], Diagnosis | None], ...]] = {
    "dns": (_dns,),
    "tcp_connect": (_tcp,),
    "tls_handshake": (_tls,),
    "greeting": (_greeting, _words),
    "starttls": (_starttls,),
    "smtp_starttls": (_starttls,),
    "smtp_ehlo": (_greeting, _words),
    "authentication": (_words,),
    "smtp_auth": (_words,),
    "select": (_words,),
    "smtp_send": (_words,),
}


def _reply_from_error(failure: Failure) -> ServerReply | None:
    """The server's words carried by an exception (aiosmtplib's ``code``/``message``, or a
    :class:`ProviderError`'s ``server_said``), so the check may pass the exception alone."""
    error = failure.error
    code = getattr(error, "code", None) if not isinstance(error, MailportError) else None
    message = getattr(error, "message", None)
    if isinstance(code, int) and isinstance(message, str):  # aiosmtplib.SMTPResponseException
        return ServerReply.smtp(code, message)
    said = error.server_said if isinstance(error, ProviderError) else None
    if not said:
        return None
    if failure.protocol == "smtp":
        smtp_code = getattr(error, "smtp_code", None)
        match = re.match(r"^\s*([2-5]\d\d)[ -](.*)$", said, re.S)
        if isinstance(smtp_code, int):
            return ServerReply.smtp(smtp_code, match[2] if match and int(match[1]) == smtp_code else said)
        if match:
            return ServerReply.smtp(int(match[1]), match[2])
        return ServerReply(text=said)
    return ServerReply.imap(said)


def diagnose(failure: Failure) -> Diagnosis:
    """The diagnosis for a failing step; unknown failures get their family's code.

    Raises ``ValueError`` only for an unknown step. The server's words may come as ``reply`` or
    inside ``error`` (an aiosmtplib reply exception, or a ``ProviderError`` with ``server_said``).
    """
    if failure.step not in _BY_STEP:
        raise ValueError(f"unknown step {failure.step!r}; expected one of {', '.join(STEPS)}")
    if failure.reply is None and failure.error is not None:
        derived = _reply_from_error(failure)
        if derived is not None:
            failure = replace(failure, reply=derived)
    if isinstance(failure.error, MailportError) and not isinstance(failure.error, ProviderError):
        # Already ours (e.g. host_not_allowed from the SSRF guard): keep it.
        return _fallback(failure)
    for handler in _BY_STEP[failure.step]:
        found = handler(failure)
        if found is not None:
            return found
    # A refused command late in the session can still be a connection limit or a TLS problem.
    if failure.step not in ("tls_handshake", "starttls", "smtp_starttls") and failure.error is not None:
        tls = _tls(failure) if _find(failure.error, ssl.SSLError) else None
        if tls is not None:
            return tls
    return _fallback(failure)


__all__ = [
    "IMPLICIT_TLS_PORTS",
    "PLAINTEXT_PORTS",
    "PROVIDER_HOSTS",
    "STANDARD_PORTS",
    "STEPS",
    "Diagnosis",
    "Failure",
    "ServerReply",
    "Suggestion",
    "diagnose",
    "infer_provider",
]
