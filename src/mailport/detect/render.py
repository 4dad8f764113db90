"""From what was found for a domain to the answer for one address: the most trusted usable
candidate rendered for the address, the others as alternatives, and the hints a person needs.

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
    if findings.timed_out:
        hints.append(HINT_INCOMPLETE)
    imap = best.imap[0].render(address) if best.imap else None
    smtp = best.smtp[0].render(address) if best.smtp else None
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
        alternatives=_alternatives(address, best, ranked[1:], imap, smtp),
    )


def _oauth(provider: Provider | None, oauth_configured: Callable[[str], bool]) -> OAuthInfo | None:
    if provider is None or provider.oauth_provider is None:
        return None
    name = provider.oauth_provider
    return OAuthInfo(provider=name, usable=bool(oauth_configured(name)))


def _auth_methods(candidate: Candidate) -> tuple[AuthMethod, ...]:
    if candidate.provider is not None and candidate.provider.auth_methods:
        return candidate.provider.auth_methods
    methods: list[AuthMethod] = []
    for server in (*candidate.imap[:1], *candidate.smtp[:1]):
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
    imap: ServerSettings | None,
    smtp: ServerSettings | None,
) -> tuple[Alternative, ...]:
    def ident(p: Provider | None) -> tuple[str, str] | None:
        return (p.id, p.name) if p else None

    out: list[Alternative] = []
    seen = {(imap, smtp)}

    def add(alt: Alternative) -> None:
        if (alt.imap, alt.smtp) not in seen:
            seen.add((alt.imap, alt.smtp))
            out.append(alt)

    for server in best.imap[1:]:
        add(Alternative(server.render(address), smtp, best.source, best.confidence, ident(best.provider)))
    for server in best.smtp[1:]:
        add(Alternative(imap, server.render(address), best.source, best.confidence, ident(best.provider)))
    for other in others:
        add(
            Alternative(
                other.imap[0].render(address) if other.imap else None,
                other.smtp[0].render(address) if other.smtp else None,
                other.source,
                other.confidence,
                ident(other.provider),
            )
        )
    return tuple(out)
