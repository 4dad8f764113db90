"""The catalogue: from a failing step and the server's own words to the fix.

A connection check that only says "authentication failed" sends people to a support queue.
This module is the knowledge that turns the failure into a two-minute fix: given the step that
failed, the protocol, the detected provider and what the server said (an IMAP tagged ``NO``/
``BAD`` with its response code, an SMTP reply with its enhanced status code) or the low-level
exception (an ssl verification code, an errno, a timeout), :func:`diagnose` answers a
:class:`Diagnosis` with a stable ``code`` (each one a :mod:`mailport.errors` class and a section
in ``docs/troubleshooting.md``), a human ``detail``, a ``hint`` specific to the provider and to the
server's words, the server's words themselves, and — where we can tell — the settings to try
instead (the host the certificate names, the right port/security pair).

The failures before any words (DNS, TCP, TLS, greeting) are read in :mod:`.steps`; the words are
matched against :data:`RULES`, gathered here from the providers' files in one order, because the
first rule that matches wins: the generic limits first, then each provider's own words, then the
generic OAuth2 and password refusals.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Callable
from dataclasses import replace

from mailport.diagnosis.evidence import describe, find_in_chain, is_timeout, where
from mailport.diagnosis.model import STEPS, Diagnosis, Failure, ServerReply
from mailport.diagnosis.providers import (
    APP_PASSWORDS_ONLY,
    advice_of,
    effective_provider,
    generic,
    gmail,
    microsoft,
)
from mailport.diagnosis.providers.generic import invalid_credentials_hint
from mailport.diagnosis.rules import Rule
from mailport.diagnosis.steps import (
    dns_failure,
    greeting_failure,
    starttls_failure,
    tcp_failure,
    tls_failure,
)
from mailport.errors import (
    AuthenticationError,
    AuthUnavailableError,
    CommandError,
    InvalidCredentialsError,
    MaildropBusyError,
    MailportError,
    MailTimeoutError,
    ProviderError,
    SMTPRejectedError,
)

RULES: tuple[Rule, ...] = (
    # anywhere: connection limits; the credentials could not be checked now (not a verdict)
    *generic.LIMITS,
    *gmail.RULES,
    *microsoft.RULES,
    *gmail.SMTP_RULES,
    # OAuth2: a token without the mail scope, Microsoft's SMTP refusal of a token, any other refusal
    *generic.OAUTH_SCOPE,
    *microsoft.OAUTH_RULES,
    *generic.OAUTH_REJECTED,
    # passwords: the mechanism refused here, app-password-only providers, a wrong password
    *generic.MECHANISM,
    *generic.app_passwords_only(APP_PASSWORDS_ONLY),
    *generic.INVALID_CREDENTIALS,
)


def _words(failure: Failure) -> Diagnosis | None:
    reply = failure.reply
    if reply is None:
        return None
    provider = effective_provider(failure)
    for rule in RULES:
        if rule.matches(failure, reply, provider):
            hint = rule.hint_for(failure, advice_of(provider))
            return Diagnosis(rule.error_class, rule.detail, hint, server_said=reply.quoted())
    return None


def _fallback(failure: Failure) -> Diagnosis:
    reply = failure.reply
    error = failure.error
    said = reply.quoted() if reply else None
    step = failure.step
    if isinstance(error, MailportError) and (reply is None or not isinstance(error, ProviderError)):
        return Diagnosis(type(error), error.message, error.hint, server_said=error.server_said)
    if is_timeout(error):
        return Diagnosis(
            MailTimeoutError,
            f"{where(failure)} did not answer in time during {step}.",
            MailTimeoutError.hint,
        )
    if step in ("authentication", "smtp_auth", "pop3_auth"):
        kind = _refusal_kind(failure)
        if kind is InvalidCredentialsError:
            return Diagnosis(
                kind,
                f"{where(failure)} refused the user name or password.",
                invalid_credentials_hint(advice_of(effective_provider(failure)), failure.protocol),
                server_said=said,
            )
        return Diagnosis(
            kind,
            f"Sign-in to {where(failure)} failed.",
            kind.hint
            if kind is not AuthenticationError
            else invalid_credentials_hint(advice_of(effective_provider(failure)), failure.protocol)
            if reply
            else AuthenticationError.hint,
            server_said=said,
        )
    if step == "smtp_send":
        return Diagnosis(
            SMTPRejectedError,
            f"{where(failure)} refused the test message.",
            SMTPRejectedError.hint,
            server_said=said,
        )
    if reply is not None and step in ("greeting", "smtp_ehlo"):
        return Diagnosis(
            ProviderError,
            f"{where(failure)} refused the session.",
            "The server refused to talk to this machine; its words say why (often this machine's address "
            "is on a blocklist, or the server is overloaded). Retry later, or ask the server's operator.",
            server_said=said,
        )
    if reply is not None:
        return Diagnosis(
            CommandError, f"{where(failure)} refused {step}.", CommandError.hint, server_said=said
        )
    if error is not None:
        return Diagnosis(ProviderError, f"{step} failed: {describe(error)}", ProviderError.hint)
    return Diagnosis(ProviderError, f"{step} failed.", ProviderError.hint)


def _refusal_kind(failure: Failure) -> type[MailportError]:
    """A sign-in refusal no provider's words explain: the client's own verdict on the tagged
    reply when it has one (a password LOGIN/AUTHENTICATE answered ``NO`` is a refused password,
    with or without ``[AUTHENTICATIONFAILED]``), else the same rule applied to the reply."""
    error = failure.error
    if isinstance(error, AuthenticationError) and type(error) is not AuthenticationError:
        return type(error)
    reply = failure.reply
    password = (failure.auth or "password") == "password"
    if password and reply is not None:
        if failure.protocol == "imap" and reply.status == "NO":
            return InvalidCredentialsError
        if failure.protocol == "smtp" and reply.smtp_code in (535, 534):
            return InvalidCredentialsError
    if failure.protocol == "pop3" and reply is not None and reply.status == "-ERR":
        # RFC 2449 / RFC 3206 response codes say what a refused POP3 sign-in means.
        kind = POP3_REFUSALS.get(reply.response_code or "AUTH", AuthenticationError)
        if kind is not InvalidCredentialsError or password:
            return kind
    return AuthenticationError


POP3_REFUSALS: dict[str, type[MailportError]] = {
    "AUTH": InvalidCredentialsError,  # also a -ERR without a code after PASS
    "SYS/TEMP": AuthUnavailableError,
    "SYS/PERM": AuthenticationError,
    "IN-USE": MaildropBusyError,
    "LOGIN-DELAY": MaildropBusyError,
}


_BY_STEP: dict[str, tuple[Callable[[Failure], Diagnosis | None], ...]] = {
    "dns": (dns_failure,),
    "tcp_connect": (tcp_failure,),
    "tls_handshake": (tls_failure,),
    "greeting": (greeting_failure, _words),
    "starttls": (starttls_failure,),
    "smtp_starttls": (starttls_failure,),
    "smtp_ehlo": (greeting_failure, _words),
    "authentication": (_words,),
    "smtp_auth": (_words,),
    "select": (_words,),
    "smtp_send": (_words,),
    "pop3_capa": (_words,),
    "pop3_stls": (starttls_failure,),
    "pop3_auth": (_words,),
    "pop3_uidl": (_words,),
    "pop3_stat": (_words,),
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
    if failure.protocol == "pop3":
        return ServerReply.pop3(said)
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
    if (
        failure.step not in ("tls_handshake", "starttls", "smtp_starttls", "pop3_stls")
        and failure.error is not None
    ):
        tls = tls_failure(failure) if find_in_chain(failure.error, ssl.SSLError) else None
        if tls is not None:
            return tls
    return _fallback(failure)


__all__ = ["RULES", "diagnose"]
