"""Pure logic on DNS answers: the MX host to recognise, and RFC 6186/8314 SRV records.

Kept apart from the resolver (:mod:`mailport.detect.dns`) so it is tested on plain tuples.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mailport.detect.model import Candidate, Confidence, Security, ServerTemplate


@dataclass(frozen=True, slots=True)
class MXRecord:
    preference: int
    host: str  # without the trailing dot; "" for a null MX (RFC 7505)


@dataclass(frozen=True, slots=True)
class SRVRecord:
    priority: int
    weight: int
    port: int
    target: str  # without the trailing dot; "" when the target is "." (service not offered)


# (service label, protocol, security) in order of preference: RFC 8314 prefers implicit TLS.
# RFC 6186 also names POP3's; the answer offers POP3 only when no IMAP is found (render).
SRV_SERVICES: tuple[tuple[str, str, Security], ...] = (
    ("_imaps._tcp", "imap", Security.SSL),
    ("_imap._tcp", "imap", Security.STARTTLS),
    ("_pop3s._tcp", "pop3", Security.SSL),
    ("_pop3._tcp", "pop3", Security.STARTTLS),
    ("_submissions._tcp", "smtp", Security.SSL),
    ("_submission._tcp", "smtp", Security.STARTTLS),
)


def lowest_preference_mx(records: Sequence[MXRecord]) -> str | None:
    """The MX host mail goes to first; ``None`` for no MX or a null MX ("0 .")."""
    usable = [r for r in records if r.host]
    if not usable:
        return None
    return min(usable, key=lambda r: (r.preference, r.host)).host


def is_null_mx(records: Sequence[MXRecord]) -> bool:
    """RFC 7505: a single "0 ." MX says the domain accepts no mail at all."""
    return len(records) == 1 and not records[0].host


def within(host: str, domain: str) -> bool:
    host, domain = host.lower().rstrip("."), domain.lower().rstrip(".")
    return host == domain or host.endswith("." + domain)


def _best(records: Sequence[SRVRecord]) -> SRVRecord | None:
    """RFC 2782 order (lowest priority, then highest weight); None if "." says 'not offered'."""
    if not records or any(not r.target for r in records):
        return None
    return min(records, key=lambda r: (r.priority, -r.weight, r.target))


def srv_candidate(domain: str, answers: Mapping[str, Sequence[SRVRecord]]) -> Candidate | None:
    """Turn the SRV answers (keyed by service label) into one candidate.

    A target of "." means the service is not offered there; a target outside the domain
    (e.g. a hoster's shared host) is plausible but lowers the confidence to medium.
    """
    servers: dict[str, list[ServerTemplate]] = {"imap": [], "pop3": [], "smtp": []}
    outside = False
    for label, protocol, security in SRV_SERVICES:
        best = _best(answers.get(label, ()))
        if best is None or not 0 < best.port < 65536:
            continue
        outside = outside or not within(best.target, domain)
        server = ServerTemplate(host=best.target.lower(), port=best.port, security=security)
        servers[protocol].append(server)
    if not any(servers.values()):
        return None
    confidence: Confidence = "medium" if outside else "high"
    return Candidate(
        source="srv",
        confidence=confidence,
        imap=tuple(servers["imap"]),
        smtp=tuple(servers["smtp"]),
        pop3=tuple(servers["pop3"]),
        detail=f"SRV records of {domain}",
    )
