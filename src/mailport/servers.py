"""A mail server as every layer names it: one :class:`Security` and one :class:`ServerSettings`.

Detection finds servers, checks test them, the wizard's drafts carry them, mailboxes store them
and the IMAP and SMTP clients connect to them: all with these two types, so that there is no
table translating one layer's words into another's. No I/O here, so any layer may import it.

The values are the public API's (``ssl``, ``starttls``, ``none``). The IMAP and SMTP clients
also take the words they used to (``tls`` for implicit TLS, ``plain`` for no TLS), read by
:meth:`Security.parse` only: the API and stored rows accept the three values alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from mailport.net.trust import Certificate

Protocol = Literal["imap", "smtp", "pop3"]


class Security(StrEnum):
    """How a connection to a mail server is protected."""

    SSL = "ssl"  # implicit TLS (993, 465)
    STARTTLS = "starttls"  # plain connection upgraded with STARTTLS (143, 587)
    NONE = "none"  # no TLS at all (tests and local relays only)
    # The IMAP and SMTP clients' older names for the same two modes (aliases: the same members).
    TLS = "ssl"
    PLAIN = "none"

    @classmethod
    def parse(cls, value: Security | str) -> Security:
        """A client's ``security=`` argument: a value, or one of the clients' older words."""
        if isinstance(value, Security):
            return value
        word = value.strip().lower()
        return cls(_ALIASES.get(word, word))

    @property
    def tls(self) -> bool:
        """Whether the connection ends up encrypted (at once or after STARTTLS)."""
        return self is not Security.NONE


_ALIASES = {"tls": "ssl", "plain": "none"}

# The usual port for each protocol and security mode (RFC 8314: implicit TLS preferred).
DEFAULT_PORTS: dict[Protocol, dict[Security, int]] = {
    "imap": {Security.SSL: 993, Security.STARTTLS: 143, Security.NONE: 143},
    "smtp": {Security.SSL: 465, Security.STARTTLS: 587, Security.NONE: 25},
    "pop3": {Security.SSL: 995, Security.STARTTLS: 110, Security.NONE: 110},
}


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """Where one IMAP or SMTP server listens and how to reach it.

    ``username`` None: sign in with the mailbox's address. ``trusted_certificate``: the one
    certificate this server must present (a pin; see :mod:`mailport.net.trust`); None: CAs.
    """

    host: str
    port: int
    security: Security
    username: str | None = None
    trusted_certificate: Certificate | None = None

    def __post_init__(self) -> None:
        # Callers may pass the value as a string ("ssl"); the field always holds the member.
        if not isinstance(self.security, Security):
            object.__setattr__(self, "security", Security(self.security))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (detection's ``imap``/``smtp`` objects, sealed wizard drafts)."""
        body: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "security": self.security.value,
            "username": self.username,
        }
        if self.trusted_certificate is not None:
            body["trusted_certificate"] = self.trusted_certificate.pem
        return body

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ServerSettings:
        """The inverse of :meth:`to_dict` (the input is our own output, not a person's)."""
        pem = data.get("trusted_certificate")
        return cls(
            host=str(data["host"]),
            port=int(data["port"]),
            security=Security(data["security"]),
            username=data.get("username"),
            trusted_certificate=Certificate.from_pem(pem) if pem else None,
        )
