"""The mailbox as the rest of mailport sees it: plain dataclasses, secrets as ``Secret``.

No I/O and no ORM here; the store maps rows to these (decrypting secrets into ``Secret``) and
the API maps these to response schemas (which carry no secret at all).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from mailport.contacts.models import ContactSettings
from mailport.crypto import Secret
from mailport.errors import ImapSettingsMissingError, Pop3SettingsMissingError
from mailport.sending.models import SendingSettings
from mailport.servers import Security as Security  # re-exported: mailboxes name it too
from mailport.servers import ServerSettings as ServerSettings


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
class OAuthGrant:
    provider: str
    access_token: Secret | None = None
    refresh_token: Secret | None = None
    expires_at: datetime | None = None
    scopes: tuple[str, ...] = ()
    connected_email: str | None = None
    issued_at: datetime | None = None  # when the access token was issued


@dataclass(frozen=True)
class RefreshedTokens:
    """What a token refresh stores on the mailbox (its grant's provider and account stay)."""

    access_token: Secret
    refresh_token: Secret | None
    expires_at: datetime | None
    scope: str | None = None
    issued_at: datetime | None = None


ROLE_PREFIX = "role:"
"""A watched folder named by what it is for (``role:sent``) rather than by its path: the path is
looked up on the server at every connect (IMAP: SPECIAL-USE, else the well-known names)."""


@dataclass(frozen=True)
class WatchedFolder:
    """One folder a mailbox's watchers ingest: ``spec`` is a path (``INBOX``, ``Sent``,
    ``INBOX.Sent``) or a role (``role:sent``). ``added_at``: when it joined the list of a mailbox
    that existed before (its first sync starts there, not at the mailbox's creation, so adding
    Sent to an old mailbox does not deliver years of sent mail); None: since the mailbox exists."""

    spec: str
    added_at: datetime | None = None

    @property
    def role(self) -> str | None:
        """The role a ``role:<name>`` spec asks for; None for a path."""
        return self.spec.removeprefix(ROLE_PREFIX) if self.spec.startswith(ROLE_PREFIX) else None


@dataclass(frozen=True)
class ProcessingSettings:
    from_name: str | None = None
    check_interval: int = 60
    folder: str = "INBOX"  # the first watched folder (the only one when ``folders`` is empty)
    after_processing: str = "none"  # none | mark_read | move:<folder> | delete
    folders: tuple[WatchedFolder, ...] = ()  # empty: only ``folder`` (every mailbox made before)
    sending: SendingSettings = SendingSettings()  # Sent copy, aliases, rate limits
    contacts: ContactSettings | None = None  # contact harvesting; None: never switched on

    @property
    def watched(self) -> tuple[WatchedFolder, ...]:
        """The folders watched, the first one (which after-processing acts on) first."""
        return self.folders or (WatchedFolder(self.folder),)


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
    imap: ServerSettings | None  # None: a connector that needs no IMAP server
    smtp: ServerSettings | None = None
    label: str | None = None
    purpose: str | None = None
    provider_id: str | None = None
    password: Secret | None = None
    oauth: OAuthGrant | None = None
    settings: ProcessingSettings = field(default_factory=ProcessingSettings)
    connector: str = "imap"  # a key of mailport.connectors.registry
    owner: str | None = None  # the host application's user who owns it; None: the tenant
    pop3: ServerSettings | None = None  # the pop3 connector's server (then ``imap`` is None)


@dataclass(frozen=True)
class Mailbox:
    id: str
    tenant_id: str
    email: str
    auth_method: AuthMethod
    imap: ServerSettings | None  # None: a connector that needs no IMAP server
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
    owner: str | None = None  # the host application's user who owns it; None: the tenant
    pop3: ServerSettings | None = None  # the pop3 connector's server (then ``imap`` is None)

    @property
    def has_password(self) -> bool:
        return self.password is not None

    @property
    def imap_username(self) -> str:
        return (self.imap.username if self.imap else None) or self.email

    def require_imap(self) -> ServerSettings:
        """The IMAP settings, for an operation that needs them; refused when the mailbox has none."""
        if self.imap is None:
            raise ImapSettingsMissingError(f"mailbox {self.id} has no IMAP settings")
        return self.imap

    @property
    def pop3_username(self) -> str:
        return (self.pop3.username if self.pop3 else None) or self.email

    def require_pop3(self) -> ServerSettings:
        """The POP3 settings, for the pop3 connector; refused when the mailbox has none."""
        if self.pop3 is None:
            raise Pop3SettingsMissingError(f"mailbox {self.id} has no POP3 settings")
        return self.pop3

    @property
    def smtp_username(self) -> str | None:
        return None if self.smtp is None else (self.smtp.username or self.email)
