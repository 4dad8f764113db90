"""POP3 offers end to end: the local DNS server (SRV), the local autoconfig HTTPS server, and
probing Dovecot's POP3 listeners."""

from __future__ import annotations

import ssl

from mailport.detect.probe import ProbeTarget
from mailport.detect.schemas import DetectResponse
from mailport.servers import Security
from tests.fixtures.dns import LocalDNSServer
from tests.fixtures.http import AutoconfigServer
from tests.integration.detect.conftest import MakeDetector
from tests.integration.detect.test_probe import FOUND_WITHIN, probe_at
from tests.mailstack.dovecot import Dovecot, free_port
from tests.mailstack.smtp import SubmissionServer
from tests.unit.detect.test_pop3_offer import POP3_ONLY


def pop3_only(domain: str) -> bytes:
    return POP3_ONLY.replace(b"pop.example", domain.encode())


async def test_autoconfig_with_only_pop3_offers_pop3(
    dns_server: LocalDNSServer, autoconfig_server: AutoconfigServer, make_detector: MakeDetector
) -> None:
    dns_server.add("autoconfig.isp.example.", "A", "127.0.0.1")
    autoconfig_server.serve("autoconfig.isp.example", "/mail/config-v1.1.xml", pop3_only("isp.example"))

    result = await make_detector().detect("jane@isp.example")

    body = result.to_dict()
    assert (body["protocol"], body["source"], body["confidence"]) == ("pop3", "autoconfig", "high")
    assert body["imap"] is None
    assert body["pop3"] == {"host": "pop3.isp.example", "port": 995, "security": "ssl", "username": "jane"}
    assert body["smtp"]["host"] == "smtp.isp.example"
    assert "pop3_only" in {h["code"] for h in body["hints"]}


async def test_srv_pop3s_only_offers_pop3(dns_server: LocalDNSServer, make_detector: MakeDetector) -> None:
    dns_server.add("_pop3s._tcp.srvpop.example.", "SRV", "0 1 995 mail.srvpop.example.")
    dns_server.add("_imaps._tcp.srvpop.example.", "SRV", "0 0 0 .")
    dns_server.add("_submissions._tcp.srvpop.example.", "SRV", "0 1 465 mail.srvpop.example.")

    result = await make_detector().detect("a@srvpop.example")

    assert (result.protocol, result.source) == ("pop3", "srv")
    assert result.pop3 is not None and (result.pop3.host, result.pop3.port, result.pop3.security) == (
        "mail.srvpop.example",
        995,
        "ssl",
    )
    assert result.smtp is not None and result.smtp.port == 465
    assert dns_server.lookups("_pop3._tcp.srvpop.example.") == ["SRV"]


async def test_imap_found_by_a_less_trusted_step_wins_over_pop3(
    dns_server: LocalDNSServer, autoconfig_server: AutoconfigServer, make_detector: MakeDetector
) -> None:
    """HTTPS autoconfig (rank 2) lists POP3 only; SRV (rank 3) names an IMAP server. The race
    does not settle on the POP3 answer, and the answer is IMAP without any POP3 offer."""
    dns_server.add("autoconfig.mixed.example.", "A", "127.0.0.1")
    autoconfig_server.serve("autoconfig.mixed.example", "/mail/config-v1.1.xml", pop3_only("mixed.example"))
    dns_server.add("_imaps._tcp.mixed.example.", "SRV", "0 1 993 imap.mixed.example.")
    dns_server.make_late("_imaps._tcp.mixed.example.", 1.0)  # surely after the autoconfig answer

    result = await make_detector(timeout=4.0).detect("a@mixed.example")

    assert (result.protocol, result.source) == ("imap", "srv")
    assert result.imap is not None and result.imap.host == "imap.mixed.example"
    assert result.pop3 is None and all(a.pop3 is None for a in result.alternatives)


async def test_the_response_model_carries_protocol_and_pop3(
    dns_server: LocalDNSServer, make_detector: MakeDetector
) -> None:
    """``POST /v1/detect`` answers through this model (its key set: test_api_cli)."""
    dns_server.add("_pop3._tcp.apipop.example.", "SRV", "0 1 110 pop.apipop.example.")
    result = await make_detector().detect("a@apipop.example")
    body = DetectResponse.from_result(result).model_dump(mode="json")
    assert body["protocol"] == "pop3"
    assert body["pop3"] == {
        "host": "pop.apipop.example",
        "port": 110,
        "security": "starttls",
        "username": "a@apipop.example",
    }


async def test_pop3_probe_reads_capa_over_pop3s_and_after_stls(
    dovecot: Dovecot, tls_ctx: ssl.SSLContext
) -> None:
    implicit = await probe_at(
        ProbeTarget("pop3", "localhost", dovecot.pop3s_port, Security.SSL), ssl_context=tls_ctx
    )
    assert implicit.ok, implicit.error
    assert implicit.greeting.startswith("+OK") and "UIDL" in implicit.capabilities
    assert "PLAIN" in implicit.auth_mechanisms
    upgraded = await probe_at(
        ProbeTarget("pop3", "localhost", dovecot.pop3_port, Security.STARTTLS), ssl_context=tls_ctx
    )
    assert upgraded.ok, upgraded.error
    assert upgraded.starttls and upgraded.tls_verified


async def test_probing_offers_pop3_only_after_the_imap_probes_fail(
    probe_bed: tuple[Dovecot, SubmissionServer], dns_server: LocalDNSServer, make_detector: MakeDetector
) -> None:
    dovecot, smtp = probe_bed
    assert smtp.tls_port is not None
    dns_server.add("mail.probe.example.", "A", "127.0.0.1")
    dns_server.add("pop3.probe.example.", "A", "127.0.0.1")
    no_imap = make_detector(
        probe=True,
        **FOUND_WITHIN,
        imap_probe_ports=((free_port(), "ssl"),),  # nothing listens: no IMAP server
        smtp_probe_ports=((smtp.tls_port, "ssl"),),
        pop3_probe_ports=((dovecot.pop3s_port, "ssl"), (dovecot.pop3_port, "starttls")),
    )
    result = await no_imap.detect("desk@probe.example")
    assert (result.protocol, result.source, result.confidence) == ("pop3", "probe", "medium")
    assert result.pop3 is not None
    assert (result.pop3.host, result.pop3.port, result.pop3.security) == (
        "pop3.probe.example",
        dovecot.pop3s_port,
        "ssl",
    )
    assert result.smtp is not None and result.smtp.port == smtp.tls_port
    assert "pop3_only" in {h.code for h in result.hints} and "password" in result.auth_methods

    with_imap = make_detector(
        probe=True,
        **FOUND_WITHIN,
        imap_probe_ports=((dovecot.imaps_port, "ssl"),),
        smtp_probe_ports=(),
        pop3_probe_ports=((dovecot.pop3s_port, "ssl"),),
    )
    asked = len(dns_server.lookups("pop3.probe.example."))
    found = await with_imap.detect("desk@probe.example")
    assert found.protocol == "imap" and found.pop3 is None
    assert len(dns_server.lookups("pop3.probe.example.")) == asked  # POP3 hosts were not probed
