"""Request and response bodies of ``POST /v1/check`` and ``POST /v1/mailboxes/{id}/test``.

The request carries settings and credentials; nothing is stored. Hosts are only lightly
checked here (one line of text): the SSRF guard normalises them and refuses private,
loopback, metadata and legacy-spelled addresses with ``host_not_allowed``. The password and
token are ``SecretStr`` so neither a ``repr`` nor a validation error can echo them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    SecretStr,
    StringConstraints,
    model_validator,
)

from mailport.check.model import CheckCredentials, CheckResult, ServerTarget
from mailport.crypto import Secret
from mailport.mailboxes.schemas import TrustedCertificatePem
from mailport.net.trust import Certificate
from mailport.servers import Security
from mailport.validation import Email, RequestModel, clean_line

CheckHost = Annotated[
    str,
    StringConstraints(min_length=1, max_length=260),
    AfterValidator(clean_line),
    Field(description="Host name or IP address (vetted by the SSRF guard)"),
]
Provider = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_.-]{1,50}$")]


class CheckServer(RequestModel):
    host: CheckHost
    port: int = Field(..., ge=1, le=65535, strict=True)
    security: Security
    username: (
        Annotated[str, StringConstraints(min_length=1, max_length=320), AfterValidator(clean_line)] | None
    ) = Field(None, description="Defaults to the request's `username`, else `email`")

    trusted_certificate: TrustedCertificatePem | None = None

    def target(self) -> ServerTarget:
        pinned = Certificate.from_pem(self.trusted_certificate) if self.trusted_certificate else None
        return ServerTarget(self.host, self.port, self.security, self.username, pinned)


class CheckRequest(RequestModel):
    """Settings and credentials to test (nothing is stored)."""

    email: Email | None = None
    username: (
        Annotated[str, StringConstraints(min_length=1, max_length=320), AfterValidator(clean_line)] | None
    ) = None
    imap: CheckServer | None = Field(None, description="The IMAP server (give `imap` or `pop3`)")
    pop3: CheckServer | None = Field(None, description="A POP3 server, checked instead of IMAP")
    smtp: CheckServer | None = None
    password: SecretStr | None = Field(None, max_length=1024, description="Password or app password")
    access_token: SecretStr | None = Field(None, max_length=16_384, description="OAuth2 access token")
    provider: Provider | None = Field(
        None,
        description="gmail, microsoft, yahoo, aol, icloud, yandex … (sharper hints; guessed from the host)",
    )
    ca_pem: str | None = Field(
        None,
        max_length=65_536,
        description="CA certificates (PEM) to trust in addition to the system's and the operator's "
        "(MAILPORT_MAIL_CA_FILE), for a server with a private CA",
    )

    @model_validator(mode="after")
    def _credentials(self) -> CheckRequest:
        if (self.imap is None) == (self.pop3 is None):
            raise ValueError("give exactly one of `imap` and `pop3` (the incoming server)")
        if (self.password is None) == (self.access_token is None):
            raise ValueError("give exactly one of `password` and `access_token`")
        if not (self.username or self.email):
            raise ValueError("give `username` or `email` (the user name to sign in with)")
        secret = (self.password or self.access_token).get_secret_value()  # type: ignore[union-attr]
        if not secret or any(c in secret for c in "\x00\r\n"):
            raise ValueError("the password or token cannot be empty or contain NUL or line breaks")
        return self

    def credentials(self) -> CheckCredentials:
        username = self.username or self.email
        assert username is not None
        return CheckCredentials(
            username,
            password=Secret(self.password.get_secret_value()) if self.password else None,
            access_token=Secret(self.access_token.get_secret_value()) if self.access_token else None,
            provider=self.provider,
        )


class CertificateOut(BaseModel):
    """A certificate the client refused: what to compare, and the PEM to pin it with."""

    sha256: str = Field(description="SHA-256 fingerprint of the DER certificate, AB:CD:…")
    subject: str
    issuer: str
    names: list[str] = Field(description="DNS names and addresses it is valid for")
    not_before: datetime
    not_after: datetime
    self_signed: bool
    pem: str = Field(description="Give it as the server's `trusted_certificate` to pin it")


class StepOut(BaseModel):
    step: str
    ok: bool
    ms: float = Field(description="Wall-clock milliseconds the step took")
    detail: str
    code: str | None = Field(None, description="Stable troubleshooting code (docs/troubleshooting.md)")
    hint: str | None = Field(None, description="What to do about it")
    server_said: str | None = Field(None, description="The server's own words")
    suggestions: list[dict[str, Any]] | None = Field(None, description="Settings to try instead")
    certificate: CertificateOut | None = Field(
        None, description="The certificate the server presented, when verification refused it"
    )


class ProtocolOut(BaseModel):
    ok: bool
    steps: list[StepOut]


class CheckResponse(BaseModel):
    ok: bool
    imap: ProtocolOut | None
    smtp: ProtocolOut | None
    pop3: ProtocolOut | None = Field(
        None, description="Present only when a POP3 server was checked (then `imap` is null)"
    )
    api: ProtocolOut | None = Field(
        None, description="A mailbox read through gmail_api or graph: its token and profile steps"
    )

    @classmethod
    def from_result(cls, result: CheckResult) -> CheckResponse:
        return cls.model_validate(result.to_dict())
