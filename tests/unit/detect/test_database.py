"""The shipped provider database: the user's table, MX recognition, data integrity."""

from __future__ import annotations

import asyncio
import json
from importlib import resources

import pytest

from mailport.detect import Detector
from mailport.detect.cache import TTLCache
from mailport.detect.database import default_database

# The user's table (docs/providers.md explains every difference and why).
# domain: (provider id, imap host, imap port, smtp host, smtp port, smtp security, oauth)
GMAIL = ("gmail", "imap.gmail.com", 993, "smtp.gmail.com", 587, "starttls", "google")
OUTLOOK = ("outlook", "outlook.office365.com", 993, "smtp-mail.outlook.com", 587, "starttls", "microsoft")
EXPECTED = {
    "gmail.com": GMAIL,
    "googlemail.com": GMAIL,
    "outlook.com": OUTLOOK,
    "hotmail.com": OUTLOOK,
    "live.com": OUTLOOK,
    "yahoo.com": ("yahoo", "imap.mail.yahoo.com", 993, "smtp.mail.yahoo.com", 587, "starttls", None),
    "icloud.com": ("icloud", "imap.mail.me.com", 993, "smtp.mail.me.com", 587, "starttls", None),
    "aol.com": ("aol", "imap.aol.com", 993, "smtp.aol.com", 465, "ssl", None),
}


@pytest.mark.parametrize("domain", sorted(EXPECTED))
async def test_users_table(domain: str) -> None:
    pid, imap_host, imap_port, smtp_host, smtp_port, smtp_security, oauth = EXPECTED[domain]
    result = await Detector(oauth_configured=lambda p: p == "google").detect(f"support@{domain}")
    assert result.source == "database" and result.confidence == "high"
    assert result.provider is not None and result.provider[0] == pid
    assert result.imap is not None and (result.imap.host, result.imap.port, result.imap.security) == (
        imap_host,
        imap_port,
        "ssl",
    )
    assert result.smtp is not None
    assert (result.smtp.host, result.smtp.port, result.smtp.security) == (smtp_host, smtp_port, smtp_security)
    assert result.smtp.username == f"support@{domain}"
    if oauth is None:
        assert result.oauth is None
    else:
        assert result.oauth is not None and result.oauth.provider == oauth
        assert result.oauth.usable is (oauth == "google")


async def test_gmail_offers_465_as_an_alternative_and_icloud_imap_wants_the_local_part() -> None:
    gmail = await Detector().detect("a@gmail.com")
    assert any(
        a.smtp is not None and (a.smtp.port, a.smtp.security) == (465, "ssl") for a in gmail.alternatives
    )
    icloud = await Detector().detect("jane@icloud.com")
    assert icloud.imap is not None and icloud.imap.username == "jane"
    assert icloud.smtp is not None and icloud.smtp.username == "jane@icloud.com"


def test_ispdb_domains_are_all_indexed() -> None:
    text = resources.files("mailport.detect").joinpath("data/ispdb.json").read_text(encoding="utf-8")
    data = json.loads(text)
    db = default_database()
    domains = {d for p in data["providers"] for d in p["domains"]}
    assert len(domains) > 900
    assert all(db.by_domain(d) is not None for d in domains)
    assert data["license"] == "MPL-2.0" and any(
        "c6ad79659b5fc321d1593ec4c277815b83e5dec5" in s for s in data["sources"]
    )


def test_licence_files_sit_beside_the_generated_data() -> None:
    data_dir = resources.files("mailport.detect").joinpath("data")
    assert "Mozilla Public License Version 2.0" in data_dir.joinpath("LICENSE-MPL-2.0").read_text(
        encoding="utf-8"
    )
    assert "MPL" in data_dir.joinpath("NOTICE").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("mx", "provider", "confidence"),
    [
        ("contoso-com.mail.protection.outlook.com", "microsoft365", "high"),
        ("contoso-com.l-v1.mx.microsoft", "microsoft365", "high"),
        ("aspmx.l.google.com", "google-workspace", "high"),
        ("smtp.google.com", "google-workspace", "high"),
        ("aspmx2.googlemail.com", "google-workspace", "high"),
        ("mx.zoho.eu", "zoho-workplace-eu", "high"),
        ("mx2.zoho.com", "zoho-workplace-us", "high"),
        ("in1-smtp.messagingengine.com", "fastmail", "high"),
        ("mx00.ionos.de", "ionos-de", "high"),
        ("mx01.ionos.co.uk", "ionos-co-uk", "high"),
        ("mx1.privateemail.com", "namecheap-privateemail", "high"),
        ("eforward3.registrar-servers.com", "namecheap-forwarding", "high"),
        ("mail.protonmail.ch", "proton-bridge", "high"),
        ("mx01.mail.icloud.com", "icloud-custom-domain", "high"),
        ("eur.olc.protection.outlook.com", "outlook", "high"),
        ("mta6.am0.yahoodns.net", "yahoo", "high"),
        ("mx00.kundenserver.de", "1und1.de", "high"),  # ISPDB's own MX entry, parent domain
        ("mx1.eu.web.de", "web.de", "medium"),  # registrable domain only
        ("mx1.web.de", "web.de", "high"),  # parent domain
    ],
)
def test_mx_recognition(mx: str, provider: str, confidence: str) -> None:
    match = default_database().by_mx(mx)
    assert match is not None and (match.provider.id, match.confidence) == (provider, confidence)


def test_unknown_mx() -> None:
    assert default_database().by_mx("mx.unknown-hoster.example") is None


def test_ttl_cache_expires_and_is_bounded() -> None:
    now = [0.0]
    cache: TTLCache[str, int] = TTLCache(10, max_entries=2, clock=lambda: now[0])
    cache.put("a", 1)
    assert cache.get("a") == 1
    now[0] = 10.0
    assert cache.get("a") is None
    cache.put("a", 1)
    cache.put("b", 2)
    cache.put("c", 3)
    assert len(cache) == 2 and cache.get("a") is None


def test_detection_of_known_domain_needs_no_network() -> None:
    # No resolver, no HTTP client: a database hit must not touch either.
    result = asyncio.run(Detector().detect("x@web.de"))
    assert result.source == "database" and result.imap is not None and result.imap.username == "x"


def test_provider_db_wildcard_domains_cover_subdomains() -> None:
    db = default_database()
    wildcard = next(d for d in db.domains() if d.startswith("*."))
    provider = db.by_domain("someone." + wildcard[2:])
    assert provider is not None and provider is db.by_domain(wildcard)
