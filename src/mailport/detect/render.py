"""From what was found for a domain to the answer for one address: the most trusted usable
candidate rendered for the address, the others as alternatives, and the hints a person needs.

POP3 is offered only when no candidate has an IMAP server: then the most trusted candidate
with a POP3 server answers, ``protocol`` is ``"pop3"`` and the ``pop3_only`` hint says why.
When IMAP is found, POP3 servers are left out of the answer altogether (mailport's POP3
connector has no folders, flags, search or push, so IMAP always serves a mailbox better).

Pure: no I/O, so cached findings render for every address of their domain.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from mailport.detect.model import (
    CONFIDENCE_ORDER,
    Address,
    Alternative,
    AuthMethod,
    Candidate,
    DetectionResult,
    Findings,
    Hint,
    IncomingProtocol,
    OAuthInfo,
    Provider,
    ServerSettings,
)

HINT_MANUAL = Hint(
    "manual_configuration",
    "No settings were found for this domain: enter the IMAP and SMTP servers by hand "
    "(your email provider or IT department knows them).",
)
HINT_NO_DOMAIN = Hint("domain_not_found", "This domain does not exist in DNS; check the address for typos.")
HINT_NULL_MX = Hint("domain_accepts_no_mail", "This domain declares that it accepts no email (null MX).")
HINT_POP3_ONLY = Hint(
    "pop3_only",
    "No IMAP server found: this mailbox can be connected over POP3, which reads new mail but has "
    "no folders, flags, search or push. If the provider offers IMAP, enter its server by hand.",
)
HINT_INCOMPLETE = Hint(
    "detection_incomplete",
    "Some lookups did not answer in time; the settings shown are what was found before the deadline.",
)


def render(address: Address, findings: Findings, oauth_configured: Callable[[str], bool]) -> DetectionResult:
    """The answer for ``address``; ``oauth_configured`` tells whether this instance can do a
    provider's OAuth."""
    ranked = sorted(
        (c for c in findings.candidates if c.usable),
        key=lambda c: (c.rank, CONFIDENCE_ORDER[c.confidence]),
    )
    incoming = _incoming_protocol(ranked)
    if incoming == "pop3":
        ranked.sort(key=lambda c: not c.pop3)  # stable: the most trusted with POP3 first
    else:
        ranked = [c for c in ranked if c.imap or c.smtp]  # POP3 is never offered beside IMAP
        ranked.sort(key=lambda c: not c.imap)
    informative = [c for c in findings.candidates if not c.usable and c.provider is not None]
    hints: list[Hint] = []
    if not ranked:
        provider = informative[0].provider if informative else None
        for c in informative:
            hints.extend(c.hints)
            if c.provider:
                hints.extend(c.provider.hints)
        if findings.exists is False:
            hints.append(HINT_NO_DOMAIN)
        elif findings.null_mx:
            hints.append(HINT_NULL_MX)
        if findings.timed_out:
            hints.append(HINT_INCOMPLETE)
        hints.append(HINT_MANUAL)
        return DetectionResult(
            email=address.email,
            domain=address.unicode_domain,
            provider=(provider.id, provider.name) if provider else None,
            imap=None,
            smtp=None,
            auth_methods=provider.auth_methods if provider else (),
            oauth=_oauth(provider, oauth_configured),
            hints=_unique(hints),
            source=informative[0].source if informative else "none",
            confidence=informative[0].confidence if informative else "low",
        )
    best = ranked[0]
    provider = best.provider
    if provider is not None:
        hints.extend(provider.hints)
    hints.extend(best.hints)
    if incoming == "pop3":
        hints.append(HINT_POP3_ONLY)
    if findings.timed_out:
        hints.append(HINT_INCOMPLETE)
    imap = best.imap[0].render(address) if best.imap else None
    pop3 = best.pop3[0].render(address) if incoming == "pop3" else None
    # The SMTP server of the candidate chosen, or else the most trusted one found elsewhere.
    smtp_from = best if best.smtp else next((c for c in ranked if c.smtp), None)
    smtp = smtp_from.smtp[0].render(address) if smtp_from else None
    return DetectionResult(
        email=address.email,
        domain=address.unicode_domain,
        provider=(provider.id, provider.name) if provider else None,
        imap=imap,
        smtp=smtp,
        auth_methods=_auth_methods(best),
        oauth=_oauth(provider, oauth_configured),
        hints=_unique(hints),
        source=best.source,
        confidence=best.confidence,
        alternatives=_alternatives(address, best, ranked[1:], (imap, pop3, smtp), with_pop3=pop3 is not None),
        pop3=pop3,
    )


def _incoming_protocol(ranked: list[Candidate]) -> IncomingProtocol | None:
    """IMAP whenever any candidate has it; POP3 only when none has IMAP."""
    if any(c.imap for c in ranked):
        return "imap"
    return "pop3" if any(c.pop3 for c in ranked) else None


def _oauth(provider: Provider | None, oauth_configured: Callable[[str], bool]) -> OAuthInfo | None:
    if provider is None or provider.oauth_provider is None:
        return None
    name = provider.oauth_provider
    return OAuthInfo(provider=name, usable=bool(oauth_configured(name)))


def _auth_methods(candidate: Candidate) -> tuple[AuthMethod, ...]:
    if candidate.provider is not None and candidate.provider.auth_methods:
        return candidate.provider.auth_methods
    methods: list[AuthMethod] = []
    for server in (*candidate.imap[:1], *candidate.pop3[:1], *candidate.smtp[:1]):
        for item in server.auth:
            if item in ("oauth2", "password") and item not in methods:
                methods.append(item)  # type: ignore[arg-type]
    return tuple(methods) or ("password",)


def _unique(hints: Iterable[Hint]) -> tuple[Hint, ...]:
    seen: set[tuple[str, str]] = set()
    out: list[Hint] = []
    for hint in hints:
        if (hint.code, hint.text) not in seen:
            seen.add((hint.code, hint.text))
            out.append(hint)
    return tuple(out)


def _alternatives(
    address: Address,
    best: Candidate,
    others: list[Candidate],
    chosen: tuple[ServerSettings | None, ServerSettings | None, ServerSettings | None],
    *,
    with_pop3: bool,
) -> tuple[Alternative, ...]:
    """The chosen candidate's further ports, then what the other candidates found (IMAP or,
    when POP3 is offered, POP3; and SMTP), without repeating a combination."""

    def ident(p: Provider | None) -> tuple[str, str] | None:
        return (p.id, p.name) if p else None

    imap, pop3, smtp = chosen
    out: list[Alternative] = []
    seen = {chosen}

    def add(
        c: Candidate, i: ServerSettings | None, p: ServerSettings | None, s: ServerSettings | None
    ) -> None:
        if (i, p, s) not in seen:
            seen.add((i, p, s))
            out.append(Alternative(i, s, c.source, c.confidence, ident(c.provider), pop3=p))

    for server in best.imap[1:]:
        add(best, server.render(address), pop3, smtp)
    for server in best.pop3[1:] if with_pop3 else ():
        add(best, imap, server.render(address), smtp)
    for server in best.smtp[1:]:
        add(best, imap, pop3, server.render(address))
    for other in others:
        add(
            other,
            other.imap[0].render(address) if other.imap else None,
            other.pop3[0].render(address) if with_pop3 and other.pop3 else None,
            other.smtp[0].render(address) if other.smtp else None,
        )
    return tuple(out)
