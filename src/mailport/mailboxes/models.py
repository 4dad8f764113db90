"""The mailbox as the rest of mailport sees it: plain dataclasses, secrets as ``Secret``.

No I/O and no ORM here; the store maps rows to these (decrypting secrets into ``Secret``) and
the API maps these to response schemas (which carry no secret at all).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from mailport.crypto import Secret
from mailport.net.trust import Certificate


class Security(StrEnum):
    SSL = "ssl"  # implicit TLS (993, 465)
    STARTTLS = "starttls"  # plain connection upgraded with STARTTLS (143, 587)
    NONE = "none"  # no TLS at all (tests and local relays only)


class AuthMethod(StrEnum):
    PASSWORD = "password"
    APP_PASSWORD = "app_password"
    OAUTH2 = "oauth2"


class MailboxStatus(StrEnum):
    PENDING = "pending"
    CONNECTED = "connected"
    ERROR = "error"
    REAUTH_REQUIRED = "reauth_required"
    DISABLED = "disabled"


PASSWORD_METHODS = frozenset({AuthMethod.PASSWORD, AuthMethod.APP_PASSWORD})


@dataclass(frozen=True)
class ServerSettings:
    host: str
    port: int
    security: Security
    username: str | None = None  # None: log in with the mailbox's email address
    # The one certificate this server must present (a pin; see mailport.net.trust); None: CAs.
    trusted_certificate: Certificate | None = None


@dataclass(frozen=True)
class OAuthGrant:
    provider: str
    access_token: Secret | None = None
    refresh_token: Secret | None = None
    expires_at: datetime | None = None
    scopes: tuple[str, ...] = ()
    connected_email: str | None = None
    issued_at: datetime | None = None  # when the access token was issued


@dataclass(frozen=True)
class ProcessingSettings:
    from_name: str | None = None
    check_interval: int = 60
    folder: str = "INBOX"
    after_processing: str = "none"  # none | mark_read | move:<folder> | delete


@dataclass(frozen=True)
class Health:
    status: MailboxStatus = MailboxStatus.PENDING
    last_tested_at: datetime | None = None
    last_success_at: datetime | None = None
    last_error: str | None = None
    error_count_24h: int = 0


@dataclass(frozen=True)
class NewMailbox:
    """What creating a mailbox needs (the store adds id and timestamps)."""

    email: str
    auth_method: AuthMethod
    imap: ServerSettings
    smtp: ServerSettings | None = None
    label: str | None = None
    purpose: str | None = None
    provider_id: str | None = None
    password: Secret | None = None
    oauth: OAuthGrant | None = None
    settings: ProcessingSettings = field(default_factory=ProcessingSettings)
    connector: str = "imap"  # a key of mailport.connectors.registry


@dataclass(frozen=True)
class Mailbox:
    id: str
    tenant_id: str
    email: str
    auth_method: AuthMethod
    imap: ServerSettings
    smtp: ServerSettings | None
    label: str | None
    purpose: str | None
    provider_id: str | None
    password: Secret | None
    oauth: OAuthGrant | None
    token_version: int
    settings: ProcessingSettings
    health: Health
    created_at: datetime
    updated_at: datetime
    connector: str = "imap"  # a key of mailport.connectors.registry: what reads this mailbox

    @property
    def has_password(self) -> bool:
        return self.password is not None

    @property
    def imap_username(self) -> str:
        return self.imap.username or self.email

    @property
    def smtp_username(self) -> str | None:
        return None if self.smtp is None else (self.smtp.username or self.email)
