"""Parse Thunderbird's autoconfig format (``config-v1.1.xml``), the format of ISPDB too.

Pure functions on bytes: the same parser reads ISPDB files when the data is regenerated
(``scripts/build_provider_db.py``) and documents fetched from ``autoconfig.<domain>`` at run
time (:mod:`mailport.detect.fetch`). XML from the network is parsed with defusedxml (no
entities, no external references). IMAP, POP3 and SMTP servers are kept; EWS, Exchange and
the like are ignored because mailport does not speak them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from mailport.detect.model import EMAIL_ADDRESS, Hint, ServerTemplate
from mailport.servers import Security

MAX_DOCUMENT_BYTES = 256 * 1024

_AUTH = {
    "oauth2": "oauth2",
    "password-cleartext": "password",
    "password-encrypted": "password",
    "plain": "password",
    "secure": "password",
}


class AutoconfigParseError(ValueError):
    """The document is not a usable autoconfig document (internal; detection moves on)."""


@dataclass(frozen=True, slots=True)
class AutoconfigDocument:
    provider_id: str
    display_name: str
    domains: tuple[str, ...]
    imap: tuple[ServerTemplate, ...]
    smtp: tuple[ServerTemplate, ...]
    pop3: tuple[ServerTemplate, ...] = ()
    oauth_issuer: str | None = None
    hints: tuple[Hint, ...] = ()
    documentation: tuple[str, ...] = field(default=())


def _text(element: Element | None) -> str:
    return (element.text or "").strip() if element is not None else ""


def _server(element: Element) -> ServerTemplate | None:
    host = _text(element.find("hostname")).lower().rstrip(".")
    port_text = _text(element.find("port"))
    try:  # Thunderbird's socketType words: SSL, STARTTLS, plain (and "tls" in the wild)
        socket_type = Security.parse(_text(element.find("socketType")))
    except ValueError:
        return None
    if not host or not (port_text.isascii() and port_text.isdigit()):
        return None
    port = int(port_text)
    if not 0 < port < 65536:
        return None
    auth: list[str] = []
    for item in element.findall("authentication"):
        mapped = _AUTH.get(_text(item).lower())
        if mapped and mapped not in auth:
            auth.append(mapped)
    username = _text(element.find("username")) or EMAIL_ADDRESS
    return ServerTemplate(host=host, port=port, security=socket_type, username=username, auth=tuple(auth))


def _servers(provider: Element, element: str, kind: str) -> tuple[ServerTemplate, ...]:
    """The usable servers of one kind (``<incomingServer type="pop3">``…), in document order."""
    found = (_server(e) for e in provider.findall(element) if e.get("type") == kind)
    return tuple(s for s in found if s is not None)


def parse(xml: bytes) -> AutoconfigDocument:
    """Parse one autoconfig document; raises :class:`AutoconfigParseError` if unusable."""
    if len(xml) > MAX_DOCUMENT_BYTES:
        raise AutoconfigParseError("document too large")
    try:
        root = SafeET.fromstring(xml)
    except (SafeET.ParseError, DefusedXmlException, ValueError) as exc:
        raise AutoconfigParseError(f"malformed XML: {exc}") from exc
    if root.tag != "clientConfig":
        raise AutoconfigParseError(f"root element is <{root.tag}>, not <clientConfig>")
    provider = root.find("emailProvider")
    if provider is None:
        raise AutoconfigParseError("no <emailProvider>")
    imap = _servers(provider, "incomingServer", "imap")
    pop3 = _servers(provider, "incomingServer", "pop3")
    smtp = _servers(provider, "outgoingServer", "smtp")
    if not imap and not smtp and not pop3:
        raise AutoconfigParseError("no IMAP, POP3 or SMTP server")
    domains = tuple(d for d in (_text(e).lower().rstrip(".") for e in provider.findall("domain")) if d)
    hints: list[Hint] = []
    for enable in [*root.findall("enable"), *provider.findall("enable")]:
        instruction = _text(enable.find("instruction")) or "Enable IMAP access in the provider's settings."
        hints.append(Hint("enable_imap", instruction, enable.get("visiturl") or None))
    documentation = tuple(
        url for url in (d.get("url") for d in provider.findall("documentation")) if url is not None
    )
    return AutoconfigDocument(
        provider_id=(provider.get("id") or (domains[0] if domains else "")).lower(),
        display_name=_text(provider.find("displayName")) or _text(provider.find("displayShortName")),
        domains=domains,
        imap=imap,
        smtp=smtp,
        pop3=pop3,
        oauth_issuer=_text(root.find("oAuth2/issuer")) or None,
        hints=tuple(hints),
        documentation=documentation,
    )
