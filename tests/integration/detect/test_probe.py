"""Probing real servers: the session's Dovecot/SMTP bed, and a bed with our test names."""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from pathlib import Path

from mailport.config import Settings
from mailport.detect import DetectOptions, Detector
from mailport.detect.probe import ProbeResult, ProbeTarget, probe
from mailport.net.guard import VettedHost
from tests.fixtures.dns import LocalDNSServer
from tests.fixtures.http import TestCA
from tests.integration.detect.conftest import MakeDetector
from tests.mailstack.dovecot import Dovecot, free_port
from tests.mailstack.smtp import SubmissionServer

# Deadlines of the detections that must find a server: bounds, not waits (each detection here
# takes ~0.3 s). A CI run's four workers on two cores once took longer than 3 s in all and 2 s
# per probe, and detection found nothing.
FOUND_WITHIN = {"timeout": 15.0, "probe_timeout": 10.0}


async def probe_at(
    target: ProbeTarget, *, ssl_context: ssl.SSLContext, timeout: float = 5.0, address: str = "127.0.0.1"
) -> ProbeResult:
    """Probe ``target`` at ``address`` (as if the guard had vetted it)."""
    vetted = VettedHost(
        target.host, target.port, (ipaddress.ip_address(address),), target.host, "allowed_hosts"
    )
    return await probe(target, vetted, ssl_context=ssl_context, timeout=timeout)


async def test_imap_implicit_tls_greeting_and_capabilities(dovecot: Dovecot, tls_ctx: ssl.SSLContext) -> None:
    result = await probe_at(ProbeTarget("imap", "localhost", dovecot.imaps_port, "ssl"), ssl_context=tls_ctx)
    assert result.ok, result.error
    assert result.greeting.startswith("* OK")
    assert "IMAP4rev1" in result.capabilities
    assert {"PLAIN", "XOAUTH2", "OAUTHBEARER"} <= set(result.auth_mechanisms)


async def test_imap_starttls_upgrade_is_verified(dovecot: Dovecot, tls_ctx: ssl.SSLContext) -> None:
    result = await probe_at(
        ProbeTarget("imap", "localhost", dovecot.imap_port, "starttls"), ssl_context=tls_ctx
    )
    assert result.ok, result.error
    assert result.starttls and result.tls_verified
    assert "PLAIN" in result.auth_mechanisms


async def test_smtp_both_ports(smtp: SubmissionServer, tls_ctx: ssl.SSLContext) -> None:
    assert smtp.tls_port is not None
    implicit = await probe_at(ProbeTarget("smtp", "localhost", smtp.tls_port, "ssl"), ssl_context=tls_ctx)
    assert implicit.ok, implicit.error
    assert implicit.greeting.startswith("220")
    assert {"PLAIN", "LOGIN", "XOAUTH2"} <= set(implicit.auth_mechanisms)

    upgraded = await probe_at(ProbeTarget("smtp", "localhost", smtp.port, "starttls"), ssl_context=tls_ctx)
    assert upgraded.ok, upgraded.error
    assert upgraded.starttls and "XOAUTH2" in upgraded.auth_mechanisms


async def test_certificate_for_another_name_is_reported_not_accepted(
    dovecot: Dovecot, tls_ctx: ssl.SSLContext
) -> None:
    target = ProbeTarget("imap", "imap.acme.example", dovecot.imaps_port, "ssl")
    result = await probe_at(target, ssl_context=tls_ctx)
    assert not result.ok and result.reachable
    assert result.error is not None and result.error.startswith("certificate not trusted")


async def test_closed_port_and_wrong_protocol(smtp: SubmissionServer, tls_ctx: ssl.SSLContext) -> None:
    closed = await probe_at(
        ProbeTarget("imap", "localhost", free_port(), "ssl"), ssl_context=tls_ctx, timeout=2
    )
    assert not closed.reachable and closed.error is not None and "connection failed" in closed.error

    assert smtp.tls_port is not None
    wrong = await probe_at(
        ProbeTarget("imap", "localhost", smtp.tls_port, "ssl"), ssl_context=tls_ctx, timeout=2
    )
    assert not wrong.ok and wrong.error is not None and "not an IMAP greeting" in wrong.error


async def test_detection_by_probing_finds_verified_servers(
    probe_bed: tuple[Dovecot, SubmissionServer], dns_server: LocalDNSServer, make_detector: MakeDetector
) -> None:
    dovecot, smtp = probe_bed
    assert smtp.tls_port is not None
    dns_server.add("probe.example.", "MX", "10 mx.probe.example.")
    dns_server.add("mail.probe.example.", "A", "127.0.0.1")
    dns_server.add("smtp.probe.example.", "A", "127.0.0.1")
    detector = make_detector(
        probe=True,
        **FOUND_WITHIN,
        imap_probe_ports=((free_port(), "ssl"), (dovecot.imap_port, "starttls")),
        smtp_probe_ports=((smtp.tls_port, "ssl"), (smtp.port, "starttls")),
    )

    result = await detector.detect("desk@probe.example")

    assert result.source == "probe" and result.confidence == "medium"
    assert result.imap is not None
    assert (result.imap.host, result.imap.port, result.imap.security) == (
        "mail.probe.example",
        dovecot.imap_port,
        "starttls",
    )
    assert result.smtp is not None
    assert (result.smtp.host, result.smtp.port, result.smtp.security) == (
        "smtp.probe.example",
        smtp.tls_port,
        "ssl",
    )
    assert result.imap.username == "desk@probe.example"
    assert "password" in result.auth_methods


async def test_probing_is_off_when_disabled(
    probe_bed: tuple[Dovecot, SubmissionServer], dns_server: LocalDNSServer, make_detector: MakeDetector
) -> None:
    dovecot, _ = probe_bed
    dns_server.add("imap.probe.example.", "A", "127.0.0.1")
    detector = make_detector(
        probe=True, **FOUND_WITHIN, imap_probe_ports=((dovecot.imaps_port, "ssl"),), smtp_probe_ports=()
    )
    assert (await detector.detect("a@probe.example", probe=False)).source == "none"
    assert (await detector.detect("a@probe.example")).source == "probe"


async def test_detection_reports_an_untrusted_certificate_with_low_confidence(
    dovecot: Dovecot, dns_server: LocalDNSServer, make_detector: MakeDetector
) -> None:
    # The session bed's certificate names only localhost: found, but not trusted for the name.
    dns_server.add("imap.acme.example.", "A", "127.0.0.1")
    detector = make_detector(
        probe=True,
        **FOUND_WITHIN,
        ca_files=(dovecot.ca_file,),
        imap_probe_ports=((dovecot.imaps_port, "ssl"),),
        smtp_probe_ports=(),
    )
    result = await detector.detect("a@acme.example")
    assert result.source == "probe" and result.confidence == "low"
    assert result.imap is not None and result.imap.host == "imap.acme.example"
    assert "certificate_untrusted" in {h.code for h in result.hints}


async def test_probes_trust_the_mail_ca_file_added_to_the_system_store(
    probe_bed: tuple[Dovecot, SubmissionServer], dns_server: LocalDNSServer, test_ca: TestCA, tmp_path: Path
) -> None:
    """Detection's probes trust what every mail connection trusts (MAILPORT_MAIL_CA_FILE)."""
    dovecot, _ = probe_bed
    dns_server.add("imap.probe.example.", "A", "127.0.0.1")
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path,
        dns_nameservers=[dns_server.nameserver],
        mail_ca_file=test_ca.ca_file,
        allowed_hosts=["127.0.0.1"],  # the bed's servers; the guard stays on for everything else
    )
    options = DetectOptions.from_settings(
        settings,
        probe=True,
        **FOUND_WITHIN,
        allow_private_hosts=True,
        online_ispdb=False,
        imap_probe_ports=((dovecot.imaps_port, "ssl"),),
        smtp_probe_ports=(),
    )
    result = await Detector.from_settings(settings, options=options).detect("trust@probe.example")
    assert result.source == "probe" and result.confidence == "medium"  # medium: verified
    assert "certificate_untrusted" not in {h.code for h in result.hints}


async def test_probing_never_contacts_a_private_address_unless_allowed(
    dns_server: LocalDNSServer, make_detector: MakeDetector
) -> None:
    """Probe hosts come from the user's domain: they pass the SSRF guard like every other host."""
    accepted: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = int(server.sockets[0].getsockname()[1])
    dns_server.add("imap.inside.example.", "A", "127.0.0.1")
    try:
        guarded = make_detector(
            probe=True, allow_private_hosts=False, imap_probe_ports=((port, "ssl"),), smtp_probe_ports=()
        )
        assert (await guarded.detect("a@inside.example")).source == "none"
        assert accepted == []
        allowed = make_detector(probe=True, imap_probe_ports=((port, "ssl"),), smtp_probe_ports=())
        await allowed.detect("a@inside.example")
        assert accepted  # the same probe reaches it once the operator allows private hosts
    finally:
        server.close()
