"""The troubleshooting catalog: each provider's exact words -> a stable code and the fix.

Every server text below is quoted verbatim from a public report (the ``source`` of each case),
so the catalog is tested against what the providers really send, not against our paraphrase.
"""

from __future__ import annotations

import errno
import socket
import ssl
from dataclasses import dataclass

import pytest

from mailport.diagnosis import (
    STEPS,
    Diagnosis,
    Failure,
    ServerReply,
    Suggestion,
    diagnose,
    infer_provider,
)
from mailport.diagnosis.catalogue import RULES as _RULES
from mailport.errors import (
    AuthenticationError,
    HostNotAllowedError,
    MailportError,
    ProviderError,
    all_error_classes,
)


@dataclass(frozen=True)
class Case:
    name: str
    protocol: str
    step: str
    provider: str | None
    auth: str
    reply: ServerReply
    code: str
    hint_has: tuple[str, ...]
    source: str


def imap(line: str) -> ServerReply:
    return ServerReply.imap(line)


def smtp(code: int, message: str) -> ServerReply:
    return ServerReply.smtp(code, message)


CASES = [
    # ------------------------------------------------------------------ Gmail (IMAP)
    Case(
        "gmail-app-password",
        "imap",
        "authentication",
        "gmail",
        "password",
        imap(
            "2 NO [ALERT] Application-specific password required: "
            "https://support.google.com/accounts/answer/185833 (Failure)"
        ),
        "app_password_required",
        ("https://support.google.com/accounts/answer/185833", "myaccount.google.com/apppasswords"),
        "https://github.com/imapsync/imapsync/issues/175",
    ),
    Case(
        "gmail-invalid-credentials",
        "imap",
        "authentication",
        "gmail",
        "password",
        imap("A1 NO [AUTHENTICATIONFAILED] Invalid credentials (Failure)"),
        "invalid_credentials",
        ("app password", "185833"),
        "https://github.com/pimalaya/himalaya/issues/52",
    ),
    Case(
        "gmail-web-login",
        "imap",
        "authentication",
        "gmail",
        "password",
        imap(
            "2 NO [ALERT] Please log in via your web browser: "
            "https://support.google.com/mail/accounts/answer/78754 (Failure)"
        ),
        "web_login_required",
        ("https://mail.google.com", "DisplayUnlockCaptcha"),
        "https://github.com/mailcow/mailcow-dockerized/issues/4277",
    ),
    Case(
        "gmail-webalert",
        "imap",
        "authentication",
        "gmail",
        "password",
        imap(
            "* NO [WEBALERT https://accounts.google.com/ContinueSignIn?sarp=1&scc=1&plt=X] "
            "Web login required."
        ),
        "web_login_required",
        ("mail.google.com",),
        "https://github.com/MailCore/mailcore2/issues/876",
    ),
    Case(
        "gmail-too-many-connections",
        "imap",
        "authentication",
        "gmail",
        "password",
        imap("a NO [ALERT] Too many simultaneous connections. (Failure)"),
        "too_many_connections",
        ("15 simultaneous",),
        "https://github.com/zone-eu/wildduck/issues/35",
    ),
    Case(
        "gmail-imap-disabled",
        "imap",
        "authentication",
        "gmail",
        "password",
        imap("a NO [ALERT] Your account is not enabled for IMAP use."),
        "imap_disabled",
        ("Forwarding and POP/IMAP",),
        "https://github.com/mozilla-b2g/gaia (gmail IMAP user disabled error test)",
    ),
    # ------------------------------------------------------------------ Microsoft (IMAP)
    Case(
        "microsoft-basic-auth-blocked",
        "imap",
        "authentication",
        "microsoft",
        "password",
        imap(
            "a1 NO [AUTHENTICATIONFAILED] AuthFailed:LogonDenied-BasicAuthBlocked-<UserType:OutlookCom> "
            "LogonFailed-BasicAuthBlocked"
        ),
        "basic_auth_blocked",
        ("OAuth2",),
        "user's tenant (seed 004); outlook_web test quoting Outlook.com",
    ),
    Case(
        "microsoft-basic-auth-blocked-bare",
        "imap",
        "authentication",
        None,  # recognised from the words alone
        "password",
        imap("A1 NO AuthFailed:LogonDenied-BasicAuthBlocked"),
        "basic_auth_blocked",
        ("OAuth2",),
        "the user's Microsoft 365 tenant (issue 6)",
    ),
    Case(
        "microsoft-basic-auth-disabled",
        "imap",
        "authentication",
        "microsoft",
        "password",
        imap("a1 NO Basic authentication is disabled."),
        "basic_auth_blocked",
        ("OAuth2",),
        "https://github.com/holon-run/uxc/issues/445",
    ),
    Case(
        "microsoft-login-failed",
        "imap",
        "authentication",
        "microsoft",
        "password",
        imap("A00000002 NO LOGIN failed."),
        "basic_auth_blocked",
        ("OAuth2",),
        "https://github.com/jstedfast/MailKit/issues/711",
    ),
    Case(
        "microsoft-authenticate-failed-oauth",
        "imap",
        "authentication",
        "microsoft",
        "oauth2",
        imap("A01 NO AUTHENTICATE failed."),
        "oauth_permission_missing",
        ("IMAP.AccessAsUser.All", "Add-MailboxPermission"),
        "https://github.com/jstedfast/MailKit/issues/1494 (XOAUTH2 exchange in Microsoft's docs)",
    ),
    Case(
        "microsoft-not-connected",
        "imap",
        "select",
        "microsoft",
        "oauth2",
        imap("00000003 BAD User is authenticated but not connected."),
        "mailbox_access_denied",
        ("another account", "FullAccess"),
        "https://github.com/simonrob/email-oauth2-proxy/issues/74",
    ),
    Case(
        "microsoft-account-blocked",
        "imap",
        "authentication",
        "microsoft",
        "password",
        imap(
            "A1 NO LOGIN failed. Account is blocked. Login to your account via a web browser to verify "
            "your identity."
        ),
        "web_login_required",
        ("outlook.live.com",),
        "https://github.com/mscdex/node-imap/issues/799",
    ),
    # ------------------------------------------------------------------ Microsoft (SMTP)
    Case(
        "microsoft-smtp-auth-disabled",
        "smtp",
        "smtp_auth",
        "microsoft",
        "password",
        smtp(
            535,
            "5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. "
            "Visit https://aka.ms/smtp_auth_disabled for more information. "
            "[MN2PR05CA0004.namprd05.prod.outlook.com 2023-09-12T20:59:57.214Z 08DBB276B7E699C4]",
        ),
        "smtp_auth_disabled",
        ("Set-CASMailbox", "authenticated-client-smtp-submission", "Authenticated SMTP"),
        "https://github.com/simonrob/email-oauth2-proxy/issues/193",
    ),
    Case(
        "microsoft-smtp-basic-auth-disabled",
        "smtp",
        "smtp_auth",
        "microsoft",
        "password",
        smtp(
            535,
            "5.7.139 Authentication unsuccessful, basic authentication is disabled. "
            "[PN0PR01CA0024.INDPRD01.PROD.OUTLOOK.COM 2025-01-26T18:54:30.055Z 08DD3DD7D75D7743]",
        ),
        "basic_auth_blocked",
        ("XOAUTH2",),
        "https://github.com/nodemailer/nodemailer/issues/1714",
    ),
    Case(
        "microsoft-smtp-5.7.3",
        "smtp",
        "smtp_auth",
        None,  # provider recognised from the server's words (…prod.outlook.com)
        "password",
        smtp(535, "5.7.3 Authentication unsuccessful [SN4PR0601CA0002.namprd06.prod.outlook.com]"),
        "invalid_credentials",
        ("Authenticated SMTP", "Manage email apps"),
        "https://github.com/nodemailer/nodemailer/issues/1071",
    ),
    Case(
        "microsoft-smtp-5.7.30",
        "smtp",
        "smtp_auth",
        "microsoft",
        "password",
        smtp(550, "5.7.30 Basic authentication is not supported for Client Submission."),
        "basic_auth_blocked",
        ("OAuth2", "XOAUTH2"),
        "Microsoft's announcement quoted in public repositories (SMTP AUTH basic auth retirement)",
    ),
    # ------------------------------------------------------------------ Gmail (SMTP)
    Case(
        "gmail-smtp-app-password",
        "smtp",
        "smtp_auth",
        "gmail",
        "password",
        smtp(
            534,
            "5.7.9 Application-specific password required. For more information, go to\n"
            "5.7.9  https://support.google.com/mail/?p=InvalidSecondFactor "
            "6a1803df08f44-8ffd82ea9casm7101606d6.42 - gsmtp",
        ),
        "app_password_required",
        ("185833",),
        "https://github.com/bberkay/openmail/issues/1",
    ),
    Case(
        "gmail-smtp-bad-credentials",
        "smtp",
        "smtp_auth",
        None,  # gsmtp
        "password",
        smtp(
            535,
            "5.7.8 Username and Password not accepted. Learn more at\n"
            "5.7.8  https://support.google.com/mail/?p=BadCredentials "
            "k125-20020a37a183000000b005f170f7e497sm4061876qke.47 - gsmtp",
        ),
        "invalid_credentials",
        ("app password",),
        "public README quoting smtplib.SMTPAuthenticationError from smtp.gmail.com",
    ),
    # ------------------------------------------------------------------ Yahoo, AOL, iCloud, Yandex
    Case(
        "yahoo-app-password",
        "imap",
        "authentication",
        "yahoo",
        "password",
        imap("a0 NO [AUTHENTICATIONFAILED] LOGIN Invalid credentials"),
        "app_password_required",
        ("Yahoo", "SLN15241"),
        "https://github.com/Enough-Software/enough_mail/issues/245",
    ),
    Case(
        "aol-app-password",
        "imap",
        "authentication",
        "aol",
        "password",
        imap("1 NO [AUTHENTICATIONFAILED] LOGIN Invalid credentials"),
        "app_password_required",
        ("AOL", "help.aol.com"),
        "https://github.com/Foundry376/Mailspring/issues/1351",
    ),
    Case(
        "icloud-app-password",
        "imap",
        "authentication",
        "icloud",
        "password",
        imap("1001 NO [AUTHENTICATIONFAILED] Authentication failed"),
        "app_password_required",
        ("App-Specific Passwords", "support.apple.com"),
        "https://github.com/lefcha/imapfilter/issues/125",
    ),
    Case(
        "yandex-imap-disabled",
        "imap",
        "authentication",
        "yandex",
        "password",
        imap(
            "2 NO [AUTHENTICATIONFAILED] LOGIN invalid credentials or IMAP is disabled "
            "sc=cYXlpv732Cg1_010534_2-1e59ad28a72c"
        ),
        "imap_disabled",
        ("https://mail.yandex.com/#setup/client", "app-passwords"),
        "https://github.com/Foundry376/Mailspring/issues/2111",
    ),
    # ------------------------------------------------------------------ any server
    Case(
        "dovecot-too-many",
        "imap",
        "authentication",
        None,
        "password",
        imap(
            "* BYE [UNAVAILABLE] Maximum number of connections from user+IP exceeded "
            "(mail_max_userip_connections=10)"
        ),
        "too_many_connections",
        ("mail_max_userip_connections",),
        "Dovecot source (login-common/client-common-auth.c)",
    ),
    Case(
        "dovecot-auth-failed",
        "imap",
        "authentication",
        None,
        "password",
        imap("a NO [AUTHENTICATIONFAILED] Authentication failed."),
        "invalid_credentials",
        ("full email address",),
        "Dovecot (the test bed)",
    ),
    Case(
        "generic-oauth-rejected",
        "imap",
        "authentication",
        None,
        "oauth2",
        imap("a NO [AUTHENTICATIONFAILED] Authentication failed."),
        "oauth_token_rejected",
        ("Reconnect",),
        "Dovecot XOAUTH2 with an expired token (the test bed)",
    ),
    Case(
        "login-disabled",
        "imap",
        "authentication",
        None,
        "password",
        imap(
            "a NO [PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure (SSL/TLS) connections."
        ),
        "auth_mechanism_unsupported",
        (),
        "Dovecot on a non-TLS connection",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_provider_words_give_the_right_code_and_a_concrete_hint(case: Case) -> None:
    failure = Failure(
        step=case.step,  # type: ignore[arg-type]
        protocol=case.protocol,  # type: ignore[arg-type]
        provider=case.provider,
        host=None,
        auth=case.auth,
        reply=case.reply,
    )
    diagnosis = diagnose(failure)
    assert diagnosis.code == case.code, (case.source, diagnosis)
    for needle in case.hint_has:
        assert needle in diagnosis.hint, (needle, diagnosis.hint)
    assert diagnosis.server_said and case.reply.text[:20] in diagnosis.server_said
    assert diagnosis.detail


def test_the_same_words_get_provider_specific_hints() -> None:
    reply = imap("a NO [AUTHENTICATIONFAILED] LOGIN Invalid credentials")
    hints = {
        provider: diagnose(
            Failure(step="authentication", protocol="imap", provider=provider, auth="password", reply=reply)
        ).hint
        for provider in ("yahoo", "aol", "icloud", "gmail", None)
    }
    assert len(set(hints.values())) == len(hints)
    assert "Yahoo" in hints["yahoo"] and "AOL" in hints["aol"] and "iCloud" in hints["icloud"]


def test_provider_is_inferred_from_the_host_name() -> None:
    reply = imap("a NO [AUTHENTICATIONFAILED] Invalid credentials (Failure)")
    diagnosis = diagnose(
        Failure(step="authentication", protocol="imap", host="imap.gmail.com", auth="password", reply=reply)
    )
    assert "myaccount.google.com/apppasswords" in diagnosis.hint
    assert infer_provider("outlook.office365.com") == "microsoft"
    assert infer_provider("smtp.mail.me.com") == "icloud"
    assert infer_provider("mail.example.com") is None
    assert infer_provider(None, "* OK The Microsoft Exchange IMAP4 service is ready.") == "microsoft"


def test_unknown_server_words_keep_the_family_code_and_quote_the_server() -> None:
    reply = imap("a NO [SERVERBUG] Internal error occurred. Refer to server log for more information.")
    diagnosis = diagnose(Failure(step="select", protocol="imap", reply=reply))
    assert diagnosis.code == "command_failed"
    assert (
        diagnosis.server_said
        == "NO [SERVERBUG] Internal error occurred. Refer to server log for more information."
    )
    send = diagnose(Failure(step="smtp_send", protocol="smtp", reply=smtp(554, "5.7.1 Message rejected")))
    assert send.code == "smtp_rejected"
    assert send.server_said == "554 5.7.1 Message rejected"
    auth = diagnose(Failure(step="smtp_auth", protocol="smtp", reply=smtp(501, "5.5.4 Syntax error")))
    assert auth.code == "auth_failed"
    assert auth.server_said == "501 5.5.4 Syntax error"


def test_a_refused_password_without_a_response_code_is_invalid_credentials() -> None:
    """The tagged NO to LOGIN is the verdict; the words are only a secondary signal."""
    for line in ("a NO Login failed: authentication failure", "a NO Sorry.", "a NO [ALERT] Try again"):
        diagnosis = diagnose(
            Failure(step="authentication", protocol="imap", auth="password", reply=imap(line))
        )
        assert diagnosis.code == "invalid_credentials", line
    bad = diagnose(Failure(step="authentication", protocol="imap", reply=imap("a BAD Invalid arguments")))
    assert bad.code == "auth_failed"


def test_a_temporary_failure_during_sign_in_is_never_a_wrong_password() -> None:
    for code, text in (
        (451, "4.3.0 Authentication failed, try again later"),
        (454, "4.7.0 Temporary failure"),
    ):
        diagnosis = diagnose(
            Failure(step="smtp_auth", protocol="smtp", auth="password", reply=smtp(code, text))
        )
        assert diagnosis.code == "auth_unavailable", code
    imap_reply = imap("a NO [UNAVAILABLE] Temporary authentication failure. [host:2026-12-04 18:00:00]")
    for auth in ("password", "oauth2"):
        diagnosis = diagnose(Failure(step="authentication", protocol="imap", auth=auth, reply=imap_reply))
        assert diagnosis.code == "auth_unavailable", auth


# --------------------------------------------------------------------------- low-level failures


def test_dns_name_does_not_exist_suggests_the_providers_host() -> None:
    error = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    diagnosis = diagnose(
        Failure(step="dns", protocol="imap", provider="gmail", host="imap.gmial.com", error=error)
    )
    assert diagnosis.code == "host_not_found"
    assert "imap.gmail.com" in diagnosis.hint
    assert diagnosis.suggestions == (Suggestion(host="imap.gmail.com"),)


def test_connection_refused_suggests_the_usual_ports() -> None:
    error = ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
    diagnosis = diagnose(Failure(step="tcp_connect", protocol="imap", host="h", port=1993, error=error))
    assert diagnosis.code == "connection_refused"
    assert [s.as_dict() for s in diagnosis.suggestions] == [
        {"port": 993, "security": "ssl"},
        {"port": 143, "security": "starttls"},
    ]


def test_connect_timeout_on_port_25_suggests_submission_ports() -> None:
    diagnosis = diagnose(
        Failure(step="tcp_connect", protocol="smtp", host="h", port=25, error=TimeoutError())
    )
    assert diagnosis.code == "connect_timeout"
    assert "587" in diagnosis.hint
    assert Suggestion(port=587, security="starttls") in diagnosis.suggestions


def _verify_error(code: int, message: str) -> ssl.SSLCertVerificationError:
    error = ssl.SSLCertVerificationError(
        1, f"[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: {message}"
    )
    error.verify_code = code
    error.verify_message = message
    return error


def test_hostname_mismatch_suggests_the_name_the_certificate_holds() -> None:
    error = _verify_error(62, "Hostname mismatch, certificate is not valid for 'mail.customer.example'.")
    diagnosis = diagnose(
        Failure(
            step="tls_handshake",
            protocol="imap",
            host="mail.customer.example",
            port=993,
            security="ssl",
            error=error,
            peer_names=("*.hoster.example", "smtp.hoster.example", "imap.hoster.example"),
        )
    )
    assert diagnosis.code == "certificate_hostname_mismatch"
    assert diagnosis.suggestions[0] == Suggestion(host="imap.hoster.example")
    assert "Use imap.hoster.example" in diagnosis.hint


@pytest.mark.parametrize(
    ("verify_code", "message", "code"),
    [
        (10, "certificate has expired", "certificate_expired"),
        (9, "certificate is not yet valid", "certificate_expired"),
        (18, "self-signed certificate", "certificate_self_signed"),
        (19, "self-signed certificate in certificate chain", "certificate_self_signed"),
        (20, "unable to get local issuer certificate", "certificate_untrusted"),
    ],
)
def test_certificate_problems(verify_code: int, message: str, code: str) -> None:
    diagnosis = diagnose(
        Failure(
            step="tls_handshake",
            protocol="smtp",
            host="h",
            port=465,
            error=_verify_error(verify_code, message),
        )
    )
    assert diagnosis.code == code
    assert message in diagnosis.detail


def test_tls_spoken_to_a_plaintext_port_suggests_starttls_or_993() -> None:
    error = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)")
    error.reason = "WRONG_VERSION_NUMBER"  # set by the ssl module for real errors
    diagnosis = diagnose(
        Failure(step="tls_handshake", protocol="imap", host="h", port=143, security="ssl", error=error)
    )
    assert diagnosis.code == "tls_on_plaintext_port"
    assert diagnosis.suggestions == (
        Suggestion(port=143, security="starttls"),
        Suggestion(port=993, security="ssl"),
    )


def test_plaintext_spoken_to_a_tls_port_is_recognised_from_silence_or_tls_bytes() -> None:
    silent = diagnose(
        Failure(
            step="greeting", protocol="imap", host="h", port=993, security="starttls", error=TimeoutError()
        )
    )
    assert silent.code == "plaintext_on_tls_port"
    assert silent.suggestions[0] == Suggestion(port=993, security="ssl")
    alert = diagnose(
        Failure(
            step="greeting",
            protocol="smtp",
            host="h",
            port=4650,
            security="none",
            received=b"\x15\x03\x03\x00\x02\x02\x32",
        )
    )
    assert alert.code == "plaintext_on_tls_port"
    assert alert.suggestions == (
        Suggestion(port=4650, security="ssl"),
        Suggestion(port=587, security="starttls"),
    )


def test_a_server_that_never_speaks() -> None:
    diagnosis = diagnose(
        Failure(step="greeting", protocol="imap", host="h", port=10143, security="ssl", error=TimeoutError())
    )
    assert diagnosis.code == "server_silent"


def test_another_service_on_the_port() -> None:
    diagnosis = diagnose(
        Failure(
            step="greeting",
            protocol="imap",
            host="h",
            port=25,
            received=b"220 mx.example.com ESMTP Postfix\r\n",
        )
    )
    assert diagnosis.code == "wrong_service"
    assert "SMTP server" in diagnosis.detail
    assert diagnosis.server_said == "220 mx.example.com ESMTP Postfix"


def test_starttls_not_offered() -> None:
    imap_missing = diagnose(Failure(step="starttls", protocol="imap", host="h", port=143))
    assert imap_missing.code == "starttls_not_offered"
    assert imap_missing.suggestions == (Suggestion(port=993, security="ssl"),)
    smtp_refused = diagnose(
        Failure(step="smtp_starttls", protocol="smtp", reply=smtp(502, "5.5.1 Unrecognized command"))
    )
    assert smtp_refused.code == "starttls_not_offered"
    assert smtp_refused.server_said == "502 5.5.1 Unrecognized command"


def test_errors_that_are_already_ours_pass_through() -> None:
    error = HostNotAllowedError("10.0.0.1 is a private address")
    diagnosis = diagnose(Failure(step="dns", protocol="imap", host="intranet", error=error))
    assert diagnosis.code == "host_not_allowed"


# --------------------------------------------------------------------------- parsing and output


def test_imap_reply_parsing() -> None:
    reply = ServerReply.imap(b"A7 NO [ALERT] Too many simultaneous connections. (Failure)\r\n")
    assert (reply.status, reply.response_code, reply.text) == (
        "NO",
        "ALERT",
        "Too many simultaneous connections. (Failure)",
    )
    bye = ServerReply.imap("* BYE Connection closed. 14")
    assert bye.status == "BYE" and bye.text == "Connection closed. 14"
    assert ServerReply.imap("garbage").text == "garbage"


def test_smtp_reply_parsing_drops_repeated_enhanced_codes() -> None:
    reply = ServerReply.smtp(
        535,
        "5.7.8 Username and Password not accepted. Learn more at\n"
        "5.7.8  https://support.google.com/mail/?p=BadCredentials x - gsmtp",
    )
    assert reply.enhanced_code == "5.7.8"
    assert reply.text == (
        "Username and Password not accepted. Learn more at "
        "https://support.google.com/mail/?p=BadCredentials x - gsmtp"
    )
    assert reply.quoted().startswith("535 5.7.8 Username")


def test_server_said_is_one_bounded_line_without_control_characters() -> None:
    reply = ServerReply.imap("a NO " + "x\x1b[31m" * 200 + "\r\nINJECTED")
    said = diagnose(Failure(step="select", protocol="imap", reply=reply)).server_said
    assert said is not None
    assert "\x1b" not in said and "\n" not in said and len(said) <= 501


def test_diagnosis_becomes_an_error_and_step_fields() -> None:
    diagnosis = diagnose(
        Failure(
            step="authentication",
            protocol="imap",
            provider="gmail",
            auth="password",
            reply=imap("2 NO [ALERT] Application-specific password required: x (Failure)"),
        )
    )
    error = diagnosis.to_error()
    assert isinstance(error, AuthenticationError)
    assert error.code == "app_password_required" and error.hint == diagnosis.hint
    assert error.to_dict()["server_said"].startswith("NO [ALERT] Application-specific")
    fields = diagnosis.step_fields()
    assert set(fields) >= {"detail", "code", "hint", "server_said"}


def test_every_step_is_handled_and_unknown_steps_are_refused() -> None:
    for step in STEPS:
        diagnosis = diagnose(Failure(step=step, protocol="imap"))  # type: ignore[arg-type]
        assert isinstance(diagnosis, Diagnosis) and diagnosis.code
    with pytest.raises(ValueError):
        diagnose(Failure(step="bogus", protocol="imap"))  # type: ignore[arg-type]


def test_every_catalog_code_is_a_documented_error_class_with_a_hint() -> None:
    codes = {cls.code: cls for cls in all_error_classes()}
    for rule in _RULES:
        cls = rule.error_class
        assert issubclass(cls, MailportError)
        assert codes[cls.code] is cls
        assert issubclass(cls, ProviderError)
        assert cls.hint and cls.hint != ProviderError.hint
    assert len(codes) == len(all_error_classes()), "error codes must be unique"


# --------------------------------------------------------------------------- words inside exceptions


def test_an_aiosmtplib_exception_carries_the_servers_words() -> None:
    import aiosmtplib

    error = aiosmtplib.SMTPAuthenticationError(
        535,
        "5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. "
        "Visit https://aka.ms/smtp_auth_disabled for more information.",
    )
    diagnosis = diagnose(Failure(step="smtp_auth", protocol="smtp", auth="password", error=error))
    assert diagnosis.code == "smtp_auth_disabled"
    assert diagnosis.server_said and diagnosis.server_said.startswith("535 5.7.139 Authentication")


def test_a_provider_error_with_server_said_is_read_like_a_reply() -> None:
    from mailport.errors import AuthenticationError as Auth
    from mailport.errors import SMTPRejectedError

    imap_error = Auth(
        "login failed", server_said="NO [ALERT] Application-specific password required: x (Failure)"
    )
    assert (
        diagnose(Failure(step="authentication", protocol="imap", error=imap_error)).code
        == "app_password_required"
    )
    smtp_error = SMTPRejectedError(
        "auth failed",
        smtp_code=550,
        server_said="5.7.30 Basic authentication is not supported for Client Submission.",
    )
    assert diagnose(Failure(step="smtp_auth", protocol="smtp", error=smtp_error)).code == "basic_auth_blocked"
    plain = Auth("login failed")
    assert diagnose(Failure(step="authentication", protocol="imap", error=plain)).code == "auth_failed"


def test_microsoft_smtp_5_7_3_with_a_token_points_at_scope_and_smtp_auth() -> None:
    reply = smtp(535, "5.7.3 Authentication unsuccessful [SN4PR0601CA0002.namprd06.prod.outlook.com]")
    diagnosis = diagnose(Failure(step="smtp_auth", protocol="smtp", auth="oauth2", reply=reply))
    assert diagnosis.code == "oauth_permission_missing"
    assert "SMTP.Send" in diagnosis.hint and "Authenticated SMTP" in diagnosis.hint


def test_session_refused_at_greeting_and_connection_closed_at_once() -> None:
    refused = diagnose(
        Failure(
            step="smtp_ehlo",
            protocol="smtp",
            reply=smtp(554, "5.7.1 Service unavailable; client host blocked"),
        )
    )
    assert refused.code == "provider_error" and "blocked" in (refused.server_said or "")
    closed = diagnose(Failure(step="greeting", protocol="imap", host="h", port=993, received=b""))
    assert closed.code == "connection_lost"


def test_silent_then_hung_up_on_plaintext_is_a_tls_port_on_any_port_number() -> None:
    diagnosis = diagnose(
        Failure(
            step="greeting",
            protocol="imap",
            host="h",
            port=40993,
            security="starttls",
            error=TimeoutError(),
            probe=b"",
        )
    )
    assert diagnosis.code == "plaintext_on_tls_port"
    assert diagnosis.suggestions[0] == Suggestion(port=40993, security="ssl")
