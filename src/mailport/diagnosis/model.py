"""What a diagnosis takes and what it answers: the failing step, the server's words, the fix.

Plain frozen dataclasses with no knowledge of any provider, so the connection check, the
watcher and the catalogue's tests can build a :class:`Failure` and read a :class:`Diagnosis`
without pulling in the catalogue itself.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from mailport.errors import MailportError
from mailport.servers import DEFAULT_PORTS, Security

Step = Literal[
    "dns",
    "tcp_connect",
    "tls_handshake",
    "greeting",
    "starttls",
    "authentication",
    "select",
    "smtp_ehlo",
    "smtp_starttls",
    "smtp_auth",
    "smtp_send",
    "pop3_capa",
    "pop3_stls",
    "pop3_auth",
    "pop3_uidl",
    "pop3_stat",
]
Protocol = Literal["imap", "smtp", "pop3"]

STEPS: tuple[str, ...] = Step.__args__  # type: ignore[attr-defined]

# The usual port for each protocol and security mode (RFC 8314: implicit TLS preferred).
STANDARD_PORTS: dict[str, dict[str, int]] = {
    protocol: {security: port for security, port in ports.items() if security.tls}
    for protocol, ports in DEFAULT_PORTS.items()
}
IMPLICIT_TLS_PORTS: dict[str, frozenset[int]] = {
    "imap": frozenset({993}),
    "smtp": frozenset({465}),
    "pop3": frozenset({995}),
}
PLAINTEXT_PORTS: dict[str, frozenset[int]] = {
    "imap": frozenset({143}),
    "smtp": frozenset({25, 587, 2525}),
    "pop3": frozenset({110}),
}


_MAX_SERVER_SAID = 500


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class ServerReply:
    """What the server said, in its own words.

    For IMAP: ``status`` is ``NO``, ``BAD`` or ``BYE`` and ``response_code`` the bracketed code
    (``AUTHENTICATIONFAILED``, ``ALERT``, ``WEBALERT https://…``). For POP3: ``status`` is
    ``-ERR`` (or ``+OK``) and ``response_code`` RFC 2449's (``AUTH``, ``SYS/TEMP``, ``IN-USE``).
    For SMTP: ``smtp_code`` (535) and ``enhanced_code`` (``5.7.139``). ``text`` is the human
    text as the server sent it.
    """

    text: str
    status: str | None = None
    response_code: str | None = None
    smtp_code: int | None = None
    enhanced_code: str | None = None

    _IMAP = re.compile(
        r"^(?:(?P<tag>\*|[A-Za-z0-9.]+)\s+)?(?P<status>OK|NO|BAD|BYE|PREAUTH)\b\s*"
        r"(?:\[(?P<code>[^\]]*)\]\s*)?(?P<text>.*)$",
        re.I | re.S,
    )
    _ENHANCED = re.compile(r"^\s*([245]\.\d{1,3}\.\d{1,3})\s+")

    @classmethod
    def imap(cls, line: str | bytes) -> ServerReply:
        """Parse a status response such as ``A1 NO [ALERT] Application-specific password …``."""
        if isinstance(line, bytes):
            line = line.decode("utf-8", "replace")
        line = line.strip()
        match = cls._IMAP.match(line)
        if match is None:
            return cls(text=line)
        return cls(
            text=match["text"].strip(),
            status=match["status"].upper(),
            response_code=match["code"],
        )

    _POP3 = re.compile(r"^(?P<status>\+OK|-ERR)\s*(?:\[(?P<code>[^\]]*)\]\s*)?(?P<text>.*)$", re.I | re.S)

    @classmethod
    def pop3(cls, line: str | bytes) -> ServerReply:
        """Parse a POP3 status line such as ``-ERR [AUTH] Authentication failed.``."""
        if isinstance(line, bytes):
            line = line.decode("utf-8", "replace")
        match = cls._POP3.match(line.strip())
        if match is None:
            return cls(text=line.strip())
        return cls(text=match["text"].strip(), status=match["status"].upper(), response_code=match["code"])

    @classmethod
    def smtp(cls, code: int, message: str | bytes) -> ServerReply:
        """An SMTP reply as aiosmtplib reports it (``code``, ``message`` with lines joined by newlines).

        The enhanced status code repeated at the start of each continuation line is dropped.
        """
        if isinstance(message, bytes):
            message = message.decode("utf-8", "replace")
        enhanced: str | None = None
        lines: list[str] = []
        for raw in message.splitlines() or [""]:
            line = raw.strip()
            if line[:3].isdigit() and line[3:4] in ("-", " "):
                line = line[4:].strip()  # a full reply line ("535-5.7.8 …")
            match = cls._ENHANCED.match(line)
            if match:
                enhanced = enhanced or match[1]
                line = line[match.end() :]
            if line:
                lines.append(line)
        return cls(text=" ".join(lines), smtp_code=code, enhanced_code=enhanced)

    def quoted(self) -> str:
        """The server's words for ``server_said`` (one line, control characters removed, bounded)."""
        if self.smtp_code is not None:
            parts = [str(self.smtp_code), self.enhanced_code or "", self.text]
        else:
            code = f"[{self.response_code}]" if self.response_code else ""
            parts = [self.status or "", code, self.text]
        return one_line(" ".join(p for p in parts if p))

    def words(self) -> str:
        """Everything searchable: response code, enhanced code and text."""
        return " ".join(p for p in (self.response_code, self.enhanced_code, self.text) if p)


@dataclass(frozen=True)
class Failure:
    """Everything known about a failing step. Only ``step`` and ``protocol`` are required.

    ``auth`` is ``"password"`` or ``"oauth2"`` (the credential kind, not the SASL mechanism);
    ``received`` the first bytes the server sent where a greeting or a TLS handshake was expected
    (``b""``: it closed the connection without a word); ``probe`` what came back after a silent
    greeting when the check sent one plaintext line (``b""``: the server hung up — a TLS port does
    that; see :func:`mailport.net.probe.probe_plaintext`); ``peer_names`` the names (SANs) in the
    server's certificate, when the check could read it (:func:`mailport.net.probe.peer_certificate_names`).
    """

    step: Step
    protocol: Protocol
    provider: str | None = None
    host: str | None = None
    port: int | None = None
    security: Security | None = None
    auth: str | None = None
    reply: ServerReply | None = None
    error: BaseException | None = None
    received: bytes | None = None
    probe: bytes | None = None
    peer_names: Sequence[str] = ()


# --------------------------------------------------------------------------- output


@dataclass(frozen=True)
class Suggestion:
    """Settings to try instead (only the fields that should change are set)."""

    host: str | None = None
    port: int | None = None
    security: Security | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in (("host", self.host), ("port", self.port), ("security", self.security)) if v}


@dataclass(frozen=True)
class Diagnosis:
    """The answer for one failing step."""

    error_class: type[MailportError]
    detail: str
    hint: str
    server_said: str | None = None
    suggestions: tuple[Suggestion, ...] = ()

    @property
    def code(self) -> str:
        return self.error_class.code

    def to_error(self) -> MailportError:
        """The error to raise (``raise diagnosis.to_error() from exc``)."""
        extra: dict[str, Any] = {}
        if self.suggestions:
            extra["suggestions"] = [s.as_dict() for s in self.suggestions]
        return self.error_class(self.detail, hint=self.hint, server_said=self.server_said, **extra)

    def step_fields(self) -> dict[str, Any]:
        """The failing step's fields in the check's answer (``detail``, ``code``, ``hint``, …)."""
        body: dict[str, Any] = {"detail": self.detail, "code": self.code, "hint": self.hint}
        if self.server_said:
            body["server_said"] = self.server_said
        if self.suggestions:
            body["suggestions"] = [s.as_dict() for s in self.suggestions]
        return body


def one_line(text: str) -> str:
    """``text`` as one printable line of at most 500 characters (for ``server_said``)."""
    cleaned = "".join(ch if ch.isprintable() else " " for ch in text)
    cleaned = " ".join(cleaned.split())
    return cleaned[:_MAX_SERVER_SAID] + ("…" if len(cleaned) > _MAX_SERVER_SAID else "")
