"""The shape of the catalogue's knowledge: a rule for a server answer, and a provider's advice.

A :class:`Rule` says where a server answer applies (protocol, provider, credential kind, SMTP
codes), what it means (an error class and a detail) and what to do (a hint). A :class:`Provider`
holds what one provider's file knows beyond its words: where its servers are, how to recognise
them, and its own advice for failures the generic rules recognise (its app passwords, its
connection limit, its OAuth scope). A hint that depends on the provider receives the resolved
:class:`Provider` (:data:`UNKNOWN` when none is recognised), so a provider's file never has to
know about the others'.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from mailport.diagnosis.model import Failure, ServerReply
from mailport.errors import MailportError


@dataclass(frozen=True)
class Provider:
    """One provider's servers, its fingerprints and its advice (``None``: the generic advice)."""

    key: str
    name: str
    hosts: Mapping[str, str] = field(default_factory=dict)  # protocol -> its usual host
    domains: tuple[str, ...] = ()  # host names under these belong to the provider
    words: re.Pattern[str] | None = None  # words in a greeting or reply that name the provider
    # It refuses the account's own password from mail programs: only app passwords.
    app_passwords_only: bool = False
    app_password_hint: str | None = None
    invalid_credentials_hint: Callable[[str], str] | None = None  # by protocol
    web_login_hint: str | None = None
    imap_disabled_hint: str | None = None
    too_many_connections_hint: str | None = None
    oauth_scope: Callable[[str], str] | None = None  # by protocol
    oauth_permission_hint: Callable[[Failure], str] | None = None


UNKNOWN = Provider(key="", name="The provider")

Hint = str | Callable[[Failure, Provider], str] | None
Matcher = Callable[[Failure, ServerReply], bool]


@dataclass(frozen=True)
class Rule:
    """One recognised server answer: where it applies, what it means, what to do."""

    error_class: type[MailportError]
    pattern: re.Pattern[str] | None = None
    protocols: frozenset[str] = frozenset({"imap", "smtp", "pop3"})
    providers: frozenset[str] | None = None  # None: any provider (including unknown)
    auth: str | None = None  # "password" / "oauth2" / None for either
    enhanced: str | None = None  # SMTP enhanced status code prefix, e.g. "5.7.139"
    smtp_codes: frozenset[int] = frozenset()
    detail: str = ""
    hint: Hint = None
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

    def hint_for(self, failure: Failure, provider: Provider) -> str:
        if callable(self.hint):
            return self.hint(failure, provider)
        return self.hint or self.error_class.hint


def i(pattern: str) -> re.Pattern[str]:
    """A case-insensitive pattern (servers vary the case of their own words)."""
    return re.compile(pattern, re.I)
