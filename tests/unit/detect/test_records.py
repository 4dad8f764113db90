"""SRV and MX logic on plain records (no DNS)."""

from __future__ import annotations

import pytest

from mailport.detect.dns import parse_nameserver
from mailport.detect.records import MXRecord, SRVRecord, is_null_mx, lowest_preference_mx, srv_candidate
from mailport.errors import ConfigurationError


def test_lowest_preference_mx_wins_and_ties_are_stable() -> None:
    records = [MXRecord(20, "b.example"), MXRecord(10, "z.example"), MXRecord(10, "a.example")]
    assert lowest_preference_mx(records) == "a.example"
    assert lowest_preference_mx([]) is None


def test_null_mx() -> None:
    assert is_null_mx([MXRecord(0, "")])
    assert lowest_preference_mx([MXRecord(0, "")]) is None
    assert not is_null_mx([MXRecord(0, "mx.example")])


def test_srv_prefers_implicit_tls_and_rfc2782_order() -> None:
    candidate = srv_candidate(
        "acme.example",
        {
            "_imaps._tcp": [SRVRecord(10, 0, 993, "b.acme.example"), SRVRecord(0, 5, 993, "a.acme.example")],
            "_imap._tcp": [SRVRecord(0, 0, 143, "a.acme.example")],
            "_submission._tcp": [
                SRVRecord(0, 10, 587, "heavy.acme.example"),
                SRVRecord(0, 1, 587, "light.acme.example"),
            ],
        },
    )
    assert candidate is not None and candidate.source == "srv" and candidate.confidence == "high"
    assert [(s.host, s.port, s.security) for s in candidate.imap] == [
        ("a.acme.example", 993, "ssl"),
        ("a.acme.example", 143, "starttls"),
    ]
    assert [(s.host, s.security) for s in candidate.smtp] == [("heavy.acme.example", "starttls")]


def test_srv_dot_target_means_not_offered() -> None:
    assert srv_candidate("acme.example", {"_imaps._tcp": [SRVRecord(0, 0, 0, "")]}) is None
    only_smtp = srv_candidate(
        "acme.example",
        {
            "_imaps._tcp": [SRVRecord(0, 0, 0, "")],
            "_submissions._tcp": [SRVRecord(0, 0, 465, "smtp.acme.example")],
        },
    )
    assert only_smtp is not None and only_smtp.imap == () and only_smtp.smtp[0].port == 465


def test_srv_target_outside_domain_lowers_confidence() -> None:
    candidate = srv_candidate("acme.example", {"_imaps._tcp": [SRVRecord(0, 0, 993, "imap.hoster.net")]})
    assert candidate is not None and candidate.confidence == "medium"
    inside = srv_candidate("acme.example", {"_imaps._tcp": [SRVRecord(0, 0, 993, "acme.example")]})
    assert inside is not None and inside.confidence == "high"


def test_srv_with_nonsense_port_is_ignored() -> None:
    assert srv_candidate("acme.example", {"_imaps._tcp": [SRVRecord(0, 0, 0, "imap.acme.example")]}) is None


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("127.0.0.1:5353", ("127.0.0.1", 5353)),
        ("9.9.9.9", ("9.9.9.9", 53)),
        ("[::1]:5300", ("::1", 5300)),
        ("::1", ("::1", 53)),
    ],
)
def test_nameserver_specs(spec: str, expected: tuple[str, int]) -> None:
    assert parse_nameserver(spec) == expected


@pytest.mark.parametrize("spec", ["dns.google", "1.2.3.4:0", "1.2.3.4:x"])
def test_bad_nameserver_specs(spec: str) -> None:
    with pytest.raises((ConfigurationError, ValueError)):
        parse_nameserver(spec)
