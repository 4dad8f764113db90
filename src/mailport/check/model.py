"""What a connection check takes and what it answers: plain dataclasses, no I/O.

The answer is the one shape the library, ``POST /v1/check``, ``POST /v1/mailboxes/{id}/test``
and ``mailport check --json`` share::

    {"ok": bool,
     "imap": {"ok": bool, "steps": [{"step", "ok", "ms", "detail", "code"?, "hint"?, "server_said"?,
                                      "certificate"?}]} | null,
     "smtp": {...} | null,
     "pop3": {...}}          # only when POP3 was checked (a POP3 mailbox or settings)

A mailbox read through a provider's mail API (``gmail_api``, ``graph``) has no servers to probe:
its answer carries ``"api": {"ok", "steps"}`` instead, with ``imap`` and ``smtp`` null
(:mod:`mailport.check.api_check`).

A failing step carries the troubleshooting catalog's stable ``code``, its ``hint`` and the
server's own words (``server_said``), and ``suggestions`` (settings to try instead) when the
catalog can tell. A failed certificate verification also carries the ``certificate`` the server
presented (fingerprint, subject, issuer, validity, PEM), so a caller can decide to pin it.
Secrets live in :class:`~mailport.crypto.Secret` and never reach the answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from mailport.crypto import Secret
from mailport.net.trust import Certificate
from mailport.sasl import TokenSource
from mailport.servers import ServerSettings

# One server to check: the one server-settings type. ``username`` defaults to the credentials'
# user name; ``trusted_certificate`` pins the server's certificate (:mod:`mailport.net.trust`).
ServerTarget = ServerSettings


@dataclass(frozen=True)
class CheckCredentials:
    """A password, or an OAuth2 access token (or an async source of fresh ones).

    ``username`` is used where a target has none; ``provider`` ("gmail", "microsoft", …)
    makes the hints specific when the host alone does not tell.
    """

    username: str
    password: Secret | None = None
    access_token: Secret | TokenSource | None = None
    provider: str | None = None

    def __post_init__(self) -> None:
        if (self.password is None) == (self.access_token is None):
            raise ValueError("give exactly one of password and access_token")

    @property
    def kind(self) -> Literal["password", "oauth2"]:
        return "password" if self.password is not None else "oauth2"

    def __repr__(self) -> str:
        return f"CheckCredentials(username={self.username!r}, kind={self.kind!r})"


@dataclass
class StepResult:
    """One step of one protocol's check."""

    step: str
    ok: bool
    ms: float
    detail: str
    code: str | None = None
    hint: str | None = None
    server_said: str | None = None
    suggestions: list[dict[str, Any]] | None = None
    certificate: Certificate | None = None  # what the server presented, when verification failed

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"step": self.step, "ok": self.ok, "ms": self.ms, "detail": self.detail}
        if self.certificate is not None:
            body["certificate"] = self.certificate.to_dict()
        for key in ("code", "hint", "server_said", "suggestions"):
            value = getattr(self, key)
            if value:
                body[key] = value
        return body


@dataclass
class ProtocolResult:
    """The steps of the IMAP (or SMTP) check, in the order they ran; it stops at the first failure."""

    protocol: Literal["imap", "smtp", "pop3", "api"]
    steps: list[StepResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(step.ok for step in self.steps)

    @property
    def failure(self) -> StepResult | None:
        return next((step for step in self.steps if not step.ok), None)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "steps": [step.to_dict() for step in self.steps]}


@dataclass
class CheckResult:
    """IMAP and SMTP, each when checked (``mailport check --only smtp`` checks no IMAP), or the
    mail API of a mailbox read through one."""

    imap: ProtocolResult | None
    smtp: ProtocolResult | None = None
    api: ProtocolResult | None = None
    pop3: ProtocolResult | None = None

    @property
    def ok(self) -> bool:
        checked = [p for p in (self.imap, self.pop3, self.smtp, self.api) if p is not None]
        return bool(checked) and all(p.ok for p in checked)

    @property
    def failure(self) -> tuple[str, StepResult] | None:
        """The first failing step (protocol, step), IMAP (or POP3) first."""
        for result in (self.imap, self.pop3, self.smtp, self.api):
            if result is not None and (failed := result.failure) is not None:
                return result.protocol, failed
        return None

    def summary(self) -> str | None:
        """One line for ``last_error``: ``imap authentication [invalid_credentials]: …`` (None if ok)."""
        found = self.failure
        if found is None:
            return None
        protocol, step = found
        said = f" — server said: {step.server_said}" if step.server_said else ""
        return f"{protocol} {step.step} [{step.code}]: {step.detail}{said}"

    def to_dict(self) -> dict[str, Any]:
        body = {
            "ok": self.ok,
            "imap": self.imap.to_dict() if self.imap is not None else None,
            "smtp": self.smtp.to_dict() if self.smtp is not None else None,
        }
        if self.api is not None:  # the key appears only for API mailboxes: IMAP answers stay as they were
            body["api"] = self.api.to_dict()
        if self.pop3 is not None:  # likewise only for POP3 checks (then ``imap`` is null)
            body["pop3"] = self.pop3.to_dict()
        return body
