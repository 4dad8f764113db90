"""POP3 in detection without a network: the parser, SRV logic, the rendering rule (POP3 only
when no IMAP is found), the shipped data and the POP3 probe's CAPA reading."""

from __future__ import annotations

import io

from rich.console import Console

from mailport.cli.detect import render as render_table
from mailport.detect import Detector, parse_address
from mailport.detect.autoconfig import parse
from mailport.detect.database import default_database
from mailport.detect.model import Candidate, Findings, ServerTemplate
from mailport.detect.probe import pop3_auth_mechanisms
from mailport.detect.records import SRVRecord, srv_candidate
from mailport.detect.render import render

POP3_ONLY = b"""<?xml version="1.0"?>
<clientConfig version="1.1"><emailProvider id="pop.example">
  <domain>pop.example</domain><displayName>Pop Example</displayName>
  <incomingServer type="pop3">
    <hostname>pop3.pop.example</hostname><port>995</port><socketType>SSL</socketType>
    <username>%EMAILLOCALPART%</username><authentication>password-cleartext</authentication>
  </incomingServer>
  <incomingServer type="pop3">
    <hostname>pop3.pop.example</hostname><port>110</port><socketType>STARTTLS</socketType>
    <username>%EMAILLOCALPART%</username><authentication>password-cleartext</authentication>
  </incomingServer>
  <outgoingServer type="smtp">
    <hostname>smtp.pop.example</hostname><port>465</port><socketType>SSL</socketType>
  </outgoingServer>
</emailProvider></clientConfig>"""

ADDRESS = parse_address("jane@pop.example")


def never(_: str) -> bool:
    return False


def test_autoconfig_with_only_pop3_servers_is_usable() -> None:
    doc = parse(POP3_ONLY)
    assert doc.imap == ()
    assert [(s.host, s.port, s.security.value, s.username) for s in doc.pop3] == [
        ("pop3.pop.example", 995, "ssl", "%EMAILLOCALPART%"),
        ("pop3.pop.example", 110, "starttls", "%EMAILLOCALPART%"),
    ]


def test_srv_pop3s_only_makes_a_pop3_candidate() -> None:
    candidate = srv_candidate(
        "pop.example",
        {"_pop3s._tcp": [SRVRecord(0, 1, 995, "mail.pop.example")], "_imaps._tcp": [SRVRecord(0, 0, 0, "")]},
    )
    assert candidate is not None and candidate.imap == ()
    assert candidate.pop3 == (ServerTemplate("mail.pop.example", 995, "ssl"),)


def test_pop3_is_offered_when_no_imap_is_found_and_says_why() -> None:
    doc = parse(POP3_ONLY)
    found = Candidate("autoconfig", "high", smtp=doc.smtp, pop3=doc.pop3, rank=2)
    body = render(ADDRESS, Findings(candidates=(found,)), never).to_dict()
    assert body["protocol"] == "pop3" and body["imap"] is None
    assert body["pop3"] == {"host": "pop3.pop.example", "port": 995, "security": "ssl", "username": "jane"}
    assert body["smtp"]["host"] == "smtp.pop.example"
    hint = next(h for h in body["hints"] if h["code"] == "pop3_only")
    assert hint["text"].startswith("No IMAP server found")
    # The second POP3 port is an alternative, as a provider's second IMAP port is.
    assert [(a["pop3"]["port"], a["imap"]) for a in body["alternatives"]] == [(110, None)]


def test_imap_found_anywhere_means_no_pop3_offer() -> None:
    pop3 = Candidate("autoconfig", "high", pop3=(ServerTemplate("pop3.pop.example", 995, "ssl"),), rank=2)
    imap = Candidate("srv", "medium", imap=(ServerTemplate("imap.elsewhere.example", 993, "ssl"),), rank=3)
    result = render(ADDRESS, Findings(candidates=(pop3, imap)), never)
    body = result.to_dict()
    assert body["protocol"] == "imap" and body["imap"]["host"] == "imap.elsewhere.example"
    assert body["pop3"] is None
    assert all(a["pop3"] is None for a in body["alternatives"])
    assert "pop3_only" not in {h["code"] for h in body["hints"]}


def test_nothing_incoming_has_no_protocol() -> None:
    smtp = Candidate("srv", "high", smtp=(ServerTemplate("smtp.pop.example", 465, "ssl"),), rank=3)
    assert render(ADDRESS, Findings(candidates=(smtp,)), never).protocol is None


def test_shipped_data_carries_ispdb_pop3_servers() -> None:
    database = default_database()
    web_de = database.by_domain("web.de")
    assert web_de is not None and web_de.imap  # has IMAP: POP3 kept but never offered
    assert ("pop3.web.de", 995) in {(s.host, s.port) for s in web_de.pop3}
    nifty = database.by_domain("nifty.com")  # an ISPDB provider without IMAP
    assert nifty is not None and nifty.imap == () and nifty.pop3


async def test_a_pop3_only_provider_is_answered_from_the_database() -> None:
    result = await Detector().detect("taro@nifty.com")  # a database hit: no network
    assert result.protocol == "pop3" and result.source == "database"
    assert result.pop3 is not None and result.pop3.host == "pop.nifty.com" and result.pop3.username == "taro"
    assert "pop3_only" in {h.code for h in result.hints}
    gmail = await Detector().detect("a@gmail.com")
    assert gmail.protocol == "imap" and gmail.pop3 is None


def test_capa_sasl_line_names_the_mechanisms() -> None:
    caps = ("TOP", "UIDL", "RESP-CODES", "SASL PLAIN xoauth2", "USER")
    assert pop3_auth_mechanisms(caps) == ("PLAIN", "XOAUTH2")
    assert pop3_auth_mechanisms(("USER",)) == ()


async def test_the_cli_table_shows_a_pop3_row_only_when_pop3_is_offered() -> None:
    for email, shown in (("taro@nifty.com", True), ("a@gmail.com", False)):
        out = io.StringIO()
        render_table(await Detector().detect(email), Console(file=out, width=200))
        printed = out.getvalue()
        assert ("POP3" in printed and "pop.nifty.com" in printed and "pop3_only" in printed) is shown, printed
        assert "IMAP" in printed and "SMTP" in printed
