"""Detection end to end over the local DNS server and the local autoconfig HTTP(S) server."""

from __future__ import annotations

import asyncio
import time

import pytest

from mailport.detect.model import EMAIL_LOCALPART
from tests.fixtures.dns import LocalDNSServer
from tests.fixtures.http import AutoconfigServer
from tests.integration.detect.conftest import MakeDetector

AUTOCONFIG = """<?xml version="1.0"?>
<clientConfig version="1.1">
  <emailProvider id="{domain}">
    <domain>{domain}</domain>
    <displayName>{name}</displayName>
    <incomingServer type="imap">
      <hostname>{imap}</hostname><port>993</port><socketType>SSL</socketType>
      <username>{user}</username><authentication>password-cleartext</authentication>
    </incomingServer>
    <outgoingServer type="smtp">
      <hostname>smtp.{domain}</hostname><port>465</port><socketType>SSL</socketType>
      <username>%EMAILADDRESS%</username><authentication>password-cleartext</authentication>
    </outgoingServer>
  </emailProvider>
</clientConfig>
"""


def autoconfig(
    domain: str, *, imap: str | None = None, user: str = "%EMAILADDRESS%", name: str = "Acme"
) -> bytes:
    return AUTOCONFIG.format(domain=domain, imap=imap or f"imap.{domain}", user=user, name=name).encode()


def host(dns_server: LocalDNSServer, *names: str) -> None:
    for name in names:
        dns_server.add(f"{name}.", "A", "127.0.0.1")


async def test_microsoft_365_custom_domain_is_recognised_by_mx(
    dns_server: LocalDNSServer, make_detector: MakeDetector
) -> None:
    dns_server.add("acme.example.", "MX", "10 acme-example.mail.protection.outlook.com.")
    detector = make_detector(oauth_configured=lambda provider: provider == "microsoft")

    result = await detector.detect("support@acme.example")

    body = result.to_dict()
    assert body["provider"] == {"id": "microsoft365", "name": "Microsoft 365"}
    assert body["source"] == "mx" and body["confidence"] == "high"
    assert body["imap"] == {
        "host": "outlook.office365.com",
        "port": 993,
        "security": "ssl",
        "username": "support@acme.example",
    }
    assert body["smtp"]["host"] == "smtp.office365.com" and body["smtp"]["security"] == "starttls"
    assert body["oauth"] == {"provider": "microsoft", "usable": True}
    assert body["auth_methods"] == ["oauth2"]


async def test_google_workspace_by_lowest_preference_mx_and_oauth_not_configured(
    dns_server: LocalDNSServer, make_detector: MakeDetector
) -> None:
    dns_server.add("acme.example.", "MX", "1 smtp.google.com.", "50 backup.mx.example.net.")
    result = await make_detector().detect("help@acme.example")
    assert result.provider == ("google-workspace", "Google Workspace")
    assert result.imap is not None and result.imap.host == "imap.gmail.com"
    assert result.oauth is not None and result.oauth.to_dict() == {"provider": "google", "usable": False}
    assert "imap_admin_setting" in {h.code for h in result.hints}


async def test_https_autoconfig_on_autoconfig_subdomain_with_placeholders(
    dns_server: LocalDNSServer, autoconfig_server: AutoconfigServer, make_detector: MakeDetector
) -> None:
    host(dns_server, "autoconfig.acme.example")
    dns_server.add("acme.example.", "MX", "10 mx.acme.example.")
    autoconfig_server.serve(
        "autoconfig.acme.example", "/mail/config-v1.1.xml", autoconfig("acme.example", user=EMAIL_LOCALPART)
    )

    result = await make_detector().detect("Jane.Doe@acme.example")

    assert result.source == "autoconfig" and result.confidence == "high"
    assert result.provider == ("acme.example", "Acme")
    assert result.imap is not None and result.imap.username == "Jane.Doe"
    assert result.smtp is not None and (result.smtp.host, result.smtp.port, result.smtp.security) == (
        "smtp.acme.example",
        465,
        "ssl",
    )
    assert result.smtp.username == "Jane.Doe@acme.example"
    assert ("https", "autoconfig.acme.example", "/mail/config-v1.1.xml") in autoconfig_server.requests


async def test_well_known_autoconfig_on_the_bare_domain(
    dns_server: LocalDNSServer, autoconfig_server: AutoconfigServer, make_detector: MakeDetector
) -> None:
    host(dns_server, "wellknown.example")
    autoconfig_server.serve(
        "wellknown.example", "/.well-known/autoconfig/mail/config-v1.1.xml", autoconfig("wellknown.example")
    )
    result = await make_detector().detect("a@wellknown.example")
    assert result.source == "autoconfig" and result.confidence == "high"
    assert result.imap is not None and result.imap.host == "imap.wellknown.example"


async def test_https_autoconfig_beats_srv_and_mx_which_become_alternatives(
    dns_server: LocalDNSServer, autoconfig_server: AutoconfigServer, make_detector: MakeDetector
) -> None:
    host(dns_server, "autoconfig.both.example")
    autoconfig_server.serve("autoconfig.both.example", "/mail/config-v1.1.xml", autoconfig("both.example"))
    dns_server.add("_imaps._tcp.both.example.", "SRV", "0 1 993 mailhost.both.example.")
    dns_server.add("_submissions._tcp.both.example.", "SRV", "0 1 465 mailhost.both.example.")
    dns_server.add("both.example.", "MX", "10 both-example.mail.protection.outlook.com.")

    # Slow mechanisms cannot beat a finished more trusted one, but the finished ones are kept.
    result = await make_detector().detect("x@both.example")

    assert result.source == "autoconfig"
    assert result.imap is not None and result.imap.host == "imap.both.example"
    others = {(a.source, a.imap.host if a.imap else None) for a in result.alternatives}
    assert others <= {("srv", "mailhost.both.example"), ("mx", "outlook.office365.com")}


async def test_plain_http_autoconfig_is_a_low_confidence_last_resort(
    dns_server: LocalDNSServer, autoconfig_server: AutoconfigServer, make_detector: MakeDetector
) -> None:
    host(dns_server, "autoconfig.plainhttp.example")
    autoconfig_server.serve(
        "autoconfig.plainhttp.example",
        "/mail/config-v1.1.xml",
        autoconfig("plainhttp.example"),
        scheme="http",
    )
    result = await make_detector().detect("a@plainhttp.example")
    assert result.source == "autoconfig" and result.confidence == "low"
    assert result.imap is not None and result.imap.host == "imap.plainhttp.example"


async def test_malformed_autoconfig_is_ignored_and_srv_answers(
    dns_server: LocalDNSServer, autoconfig_server: AutoconfigServer, make_detector: MakeDetector
) -> None:
    host(dns_server, "autoconfig.badxml.example")
    autoconfig_server.serve("autoconfig.badxml.example", "/mail/config-v1.1.xml", b"<clientConfig><oops")
    dns_server.add("_imaps._tcp.badxml.example.", "SRV", "0 1 993 imap.badxml.example.")
    dns_server.add("_imap._tcp.badxml.example.", "SRV", "0 0 0 .")
    dns_server.add("_submission._tcp.badxml.example.", "SRV", "0 1 587 smtp.badxml.example.")
    result = await make_detector().detect("a@badxml.example")
    assert result.source == "srv" and result.confidence == "high"
    assert result.imap is not None and (result.imap.host, result.imap.port, result.imap.security) == (
        "imap.badxml.example",
        993,
        "ssl",
    )
    assert result.smtp is not None and (result.smtp.port, result.smtp.security) == (587, "starttls")


async def test_srv_target_outside_the_domain_lowers_confidence(
    dns_server: LocalDNSServer, make_detector: MakeDetector
) -> None:
    dns_server.add("_imaps._tcp.acme.example.", "SRV", "0 1 993 imap.hoster.example.net.")
    dns_server.add("_submissions._tcp.acme.example.", "SRV", "0 0 0 .")
    result = await make_detector().detect("a@acme.example")
    assert result.source == "srv" and result.confidence == "medium"
    assert result.imap is not None and result.imap.host == "imap.hoster.example.net"
    assert result.smtp is None


async def test_domain_that_does_not_exist(make_detector: MakeDetector) -> None:
    result = await make_detector().detect("someone@no-such-domain.example")
    body = result.to_dict()
    assert body["source"] == "none" and body["provider"] is None
    assert body["imap"] is None and body["smtp"] is None
    codes = [h["code"] for h in body["hints"]]
    assert "domain_not_found" in codes and "manual_configuration" in codes


async def test_unknown_existing_domain_without_anything_asks_for_manual_settings(
    dns_server: LocalDNSServer, make_detector: MakeDetector
) -> None:
    dns_server.add("acme.example.", "MX", "10 mx.acme.example.")
    result = await make_detector().detect("a@acme.example")
    assert result.source == "none" and result.provider is None
    assert [h.code for h in result.hints] == ["manual_configuration"]


@pytest.mark.serial
async def test_timeouts_answer_within_the_deadline_with_what_was_found(
    dns_server: LocalDNSServer, autoconfig_server: AutoconfigServer, make_detector: MakeDetector
) -> None:
    dns_server.add("_imaps._tcp.slow.example.", "SRV", "0 1 993 imap.slow.example.")
    dns_server.make_slow("slow.example.")  # MX never answers
    host(dns_server, "autoconfig.slow.example")
    autoconfig_server.serve(
        "autoconfig.slow.example", "/mail/config-v1.1.xml", autoconfig("slow.example"), delay=5, scheme="*"
    )
    detector = make_detector(timeout=1.0)

    started = time.monotonic()
    result = await detector.detect("a@slow.example")
    elapsed = time.monotonic() - started

    assert elapsed < 1.6
    assert result.source == "srv"
    assert result.imap is not None and result.imap.host == "imap.slow.example"
    assert "detection_incomplete" in {h.code for h in result.hints}


async def test_internationalised_domain(
    dns_server: LocalDNSServer, autoconfig_server: AutoconfigServer, make_detector: MakeDetector
) -> None:
    host(dns_server, "autoconfig.xn--bcher-kva.example")
    autoconfig_server.serve(
        "autoconfig.bücher.example",
        "/mail/config-v1.1.xml",
        autoconfig("xn--bcher-kva.example", name="Bücher"),
    )
    result = await make_detector().detect("Støtte@Bücher.example")
    assert result.domain == "bücher.example"
    assert result.source == "autoconfig"
    assert result.imap is not None and result.imap.host == "imap.xn--bcher-kva.example"
    assert result.email == "Støtte@bücher.example"


async def test_results_are_cached_per_domain_until_the_ttl(
    dns_server: LocalDNSServer, make_detector: MakeDetector
) -> None:
    dns_server.add("acme.example.", "MX", "10 acme-example.mail.protection.outlook.com.")
    now = [1000.0]
    detector = make_detector(cache_ttl=60, clock=lambda: now[0])

    first = await detector.detect("a@acme.example")
    asked = len(dns_server.queries)
    second = await detector.detect("b@acme.example")
    assert len(dns_server.queries) == asked  # from the cache
    assert second.imap is not None and second.imap.username == "b@acme.example"
    assert first.provider == second.provider

    now[0] += 61
    await detector.detect("c@acme.example")
    assert len(dns_server.queries) > asked


async def test_online_ispdb_is_off_by_default_and_used_when_enabled(
    dns_server: LocalDNSServer, autoconfig_server: AutoconfigServer, make_detector: MakeDetector
) -> None:
    host(dns_server, "ispdb.example")
    dns_server.add("acme.example.", "MX", "10 mx.acme.example.")
    autoconfig_server.serve(
        "ispdb.example", "/v1.1/acme.example", autoconfig("acme.example", name="From ISPDB")
    )

    off = await make_detector().detect("a@acme.example")
    assert off.source == "none"
    assert not any(h == "ispdb.example" for _, h, _ in autoconfig_server.requests)

    url = f"https://ispdb.example:{autoconfig_server.https_port}/v1.1/"
    on = await make_detector(online_ispdb=True, online_ispdb_url=url).detect("a@acme.example")
    assert on.source == "database" and on.provider == ("acme.example", "From ISPDB")


async def test_private_addresses_are_not_contacted_unless_allowed(
    dns_server: LocalDNSServer, autoconfig_server: AutoconfigServer, make_detector: MakeDetector
) -> None:
    host(dns_server, "autoconfig.acme.example", "acme.example")
    autoconfig_server.serve("autoconfig.acme.example", "/mail/config-v1.1.xml", autoconfig("acme.example"))
    result = await make_detector(allow_private_hosts=False).detect("a@acme.example")
    assert result.source == "none"
    assert autoconfig_server.requests == []


@pytest.mark.serial
async def test_dead_dns_with_probing_still_answers_by_the_deadline(
    dns_server: LocalDNSServer, make_detector: MakeDetector
) -> None:
    dns_server.silent = True
    detector = make_detector(timeout=1.0, probe=True)
    started = time.monotonic()
    result = await detector.detect("a@acme.example")
    assert time.monotonic() - started < 1.6
    assert result.source == "none"
    assert {"detection_incomplete", "manual_configuration"} <= {h.code for h in result.hints}


async def test_concurrent_detections_of_one_domain_share_one_investigation(
    dns_server: LocalDNSServer, make_detector: MakeDetector
) -> None:
    dns_server.add("acme.example.", "MX", "10 acme-example.mail.protection.outlook.com.")
    detector = make_detector()
    results = await asyncio.gather(*(detector.detect(f"u{i}@acme.example") for i in range(5)))
    assert {r.provider for r in results} == {("microsoft365", "Microsoft 365")}
    assert [r.imap.username for r in results if r.imap] == [f"u{i}@acme.example" for i in range(5)]
    assert sum(1 for name, kind in dns_server.queries if (name, kind) == ("acme.example.", "MX")) == 1


async def test_provider_known_without_imap_keeps_its_hint(make_detector: MakeDetector) -> None:
    result = await make_detector().detect("someone@hey.com")
    assert result.provider is not None and result.provider[0] == "hey-com"
    assert result.imap is None
    assert "imap_not_offered" in {h.code for h in result.hints}
