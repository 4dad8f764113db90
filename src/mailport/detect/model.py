"""The values detection works with: server templates, provider entries, candidates, the result.

Pure data with no I/O. A *template* keeps the username placeholders of Thunderbird's
autoconfig format (``%EMAILADDRESS%``, ``%EMAILLOCALPART%``, ``%EMAILDOMAIN%``) so one finding
per domain can be cached and rendered for every address of that domain.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from mailport.servers import Security as Security  # re-exported: detection names it too
from mailport.servers import ServerSettings as ServerSettings

Source = Literal["database", "autoconfig", "srv", "mx", "probe", "none"]
IncomingProtocol = Literal["imap", "pop3"]
Confidence = Literal["high", "medium", "low"]
AuthMethod = Literal["oauth2", "password", "app_password"]

SOURCES: tuple[Source, ...] = ("database", "autoconfig", "srv", "mx", "probe", "none")
CONFIDENCE_ORDER: dict[Confidence, int] = {"high": 0, "medium": 1, "low": 2}

EMAIL_ADDRESS = "%EMAILADDRESS%"
EMAIL_LOCALPART = "%EMAILLOCALPART%"
EMAIL_DOMAIN = "%EMAILDOMAIN%"


@dataclass(frozen=True, slots=True)
class Address:
    """A validated address: ``domain`` is the ASCII (IDNA) form used for lookups."""

    email: str
    local_part: str
    domain: str
    unicode_domain: str


def substitute(template: str, address: Address) -> str:
    """Fill Thunderbird's placeholders from ``address`` (the only three the format defines)."""
    return (
        template.replace(EMAIL_ADDRESS, address.email)
        .replace(EMAIL_LOCALPART, address.local_part)
        .replace(EMAIL_DOMAIN, address.unicode_domain)
    )


@dataclass(frozen=True, slots=True)
class ServerTemplate:
    """One IMAP, POP3 or SMTP server as a provider describes it (username still a template)."""

    host: str
    port: int
    security: Security
    username: str = EMAIL_ADDRESS
    auth: tuple[str, ...] = ()  # normalised: "oauth2", "password"

    def __post_init__(self) -> None:
        if not isinstance(self.security, Security):  # a value given as a string ("ssl")
            object.__setattr__(self, "security", Security(self.security))

    def render(self, address: Address) -> ServerSettings:
        return ServerSettings(
            host=substitute(self.host, address),
            port=self.port,
            security=self.security,
            username=substitute(self.username, address),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "port": self.port,
            "security": self.security.value,
            "username": self.username,
            "auth": list(self.auth),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ServerTemplate:
        return cls(
            host=str(data["host"]),
            port=int(data["port"]),
            security=Security(data["security"]),
            username=str(data.get("username", EMAIL_ADDRESS)),
            auth=tuple(data.get("auth", ())),
        )


@dataclass(frozen=True, slots=True)
class Hint:
    """Something the person must know or do (``code`` is stable, ``text`` is for people)."""

    code: str
    text: str
    url: str | None = None

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "text": self.text}
        if self.url:
            body["url"] = self.url
        return body

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Hint:
        return cls(code=str(data["code"]), text=str(data["text"]), url=data.get("url"))


@dataclass(frozen=True, slots=True)
class Provider:
    """A mail provider: from ISPDB, provider-db or our own overrides."""

    id: str
    name: str
    domains: tuple[str, ...] = ()
    imap: tuple[ServerTemplate, ...] = ()
    smtp: tuple[ServerTemplate, ...] = ()
    pop3: tuple[ServerTemplate, ...] = ()  # offered only when no IMAP is found (render)
    auth_methods: tuple[AuthMethod, ...] = ()
    oauth_provider: str | None = None  # "google" / "microsoft" when mailport can do its OAuth
    hints: tuple[Hint, ...] = ()
    origin: str = "ispdb"  # "ispdb", "provider-db" or "mailport"


@dataclass(frozen=True, slots=True)
class Candidate:
    """What one mechanism found for a domain, before it is rendered for an address."""

    source: Source
    confidence: Confidence
    imap: tuple[ServerTemplate, ...] = ()
    smtp: tuple[ServerTemplate, ...] = ()
    pop3: tuple[ServerTemplate, ...] = ()
    provider: Provider | None = None
    hints: tuple[Hint, ...] = ()
    rank: int = 99  # lower = more trusted (see mechanisms.RANK_*)
    detail: str = ""  # where it came from (URL, MX host, SRV owner…), for logs and alternatives

    @property
    def usable(self) -> bool:
        return bool(self.imap or self.smtp or self.pop3)


@dataclass(frozen=True, slots=True)
class Findings:
    """Everything learnt about one domain (cached; independent of the local part)."""

    candidates: tuple[Candidate, ...] = ()
    exists: bool | None = None
    null_mx: bool = False
    timed_out: bool = False


@dataclass(frozen=True, slots=True)
class OAuthInfo:
    provider: str
    usable: bool

    def to_dict(self) -> dict[str, Any]:
        return {"provider": self.provider, "usable": self.usable}


@dataclass(frozen=True, slots=True)
class Alternative:
    """Another plausible setting (a second port, or what a less trusted mechanism found)."""

    imap: ServerSettings | None
    smtp: ServerSettings | None
    source: Source
    confidence: Confidence
    provider: tuple[str, str] | None = None
    pop3: ServerSettings | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "provider": {"id": self.provider[0], "name": self.provider[1]} if self.provider else None,
            "imap": self.imap.to_dict() if self.imap else None,
            "pop3": self.pop3.to_dict() if self.pop3 else None,
            "smtp": self.smtp.to_dict() if self.smtp else None,
            "source": self.source,
            "confidence": self.confidence,
        }


@dataclass(frozen=True, slots=True)
class DetectionResult:
    """The one answer of the library, the API and the CLI.

    ``pop3`` is set only when no IMAP server was found (``imap`` is then None and a
    ``pop3_only`` hint says so); ``protocol`` names the incoming server to use.
    """

    email: str
    domain: str
    provider: tuple[str, str] | None  # (id, name)
    imap: ServerSettings | None
    smtp: ServerSettings | None
    auth_methods: tuple[AuthMethod, ...]
    oauth: OAuthInfo | None
    hints: tuple[Hint, ...]
    source: Source
    confidence: Confidence
    alternatives: tuple[Alternative, ...] = field(default=())
    pop3: ServerSettings | None = None

    @property
    def protocol(self) -> IncomingProtocol | None:
        """The incoming protocol the answer offers: IMAP whenever found, else POP3."""
        if self.imap is not None:
            return "imap"
        return "pop3" if self.pop3 is not None else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "email": self.email,
            "domain": self.domain,
            "provider": {"id": self.provider[0], "name": self.provider[1]} if self.provider else None,
            "protocol": self.protocol,
            "imap": self.imap.to_dict() if self.imap else None,
            "pop3": self.pop3.to_dict() if self.pop3 else None,
            "smtp": self.smtp.to_dict() if self.smtp else None,
            "auth_methods": list(self.auth_methods),
            "oauth": self.oauth.to_dict() if self.oauth else None,
            "hints": [h.to_dict() for h in self.hints],
            "source": self.source,
            "confidence": self.confidence,
            "alternatives": [a.to_dict() for a in self.alternatives],
        }
