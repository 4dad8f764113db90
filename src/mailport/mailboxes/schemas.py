"""Request and response bodies of ``/v1/mailboxes`` (never ORM rows, never a secret out).

Requests are :class:`~mailport.validation.RequestModel`: unknown fields are refused
(``unknown_field``), and so is unstorable text anywhere. A password arrives as ``SecretStr``: no
``repr`` and no validation error shows it. Responses say ``has_password`` and give OAuth
metadata (provider, connected address, scopes, expiry) but no password or token.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field, SecretStr, StringConstraints, model_validator

from mailport.contacts.models import (
    DEFAULT_BACKFILL_DAYS,
    DEFAULT_RESYNC_HOURS,
    ContactSettings,
)
from mailport.contacts.rules import Policy
from mailport.crypto.secret_input import SecretText
from mailport.errors import InputError
from mailport.mailboxes.models import (
    AuthMethod,
    Mailbox,
    MailboxStatus,
    ProcessingSettings,
    Security,
    ServerSettings,
    WatchedFolder,
)
from mailport.mailboxes.validation import (
    AFTER_PROCESSING_HELP,
    MAX_WATCHED_FOLDERS,
    WATCHED_FOLDER_HELP,
    check_password,
    check_watched_folders,
    clean_folder,
    clean_watched_folder,
    normalize_host,
    validate_after_processing,
)
from mailport.net.trust import MAX_PEM_CHARS, Certificate
from mailport.sending.models import SendingSettings, SentCopyMode
from mailport.validation import Email, RequestModel, clean_line

MIN_CHECK_INTERVAL = 10
MAX_CHECK_INTERVAL = 86_400
MAX_ALIASES = 100

Host = Annotated[str, StringConstraints(min_length=1, max_length=260), AfterValidator(normalize_host)]
Port = Annotated[int, Field(ge=1, le=65535, strict=True)]
Username = Annotated[str, StringConstraints(min_length=1, max_length=320), AfterValidator(clean_line)]
Label = Annotated[str, StringConstraints(max_length=200), AfterValidator(clean_line)]
Purpose = Annotated[
    str,
    StringConstraints(min_length=1, max_length=100),
    AfterValidator(clean_line),
    Field(description="Free text, e.g. booking, stopsale, support"),
]
Password = Annotated[
    SecretStr,
    SecretText(min_length=1, max_length=1024, check=check_password),
    Field(description="Stored encrypted; never returned (see `has_password`)"),
]
ConnectorKey = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$"),
    Field(
        description="What reads the mailbox: `imap`, `pop3`, or a provider's mail API (`gmail_api`, `graph`)"
    ),
]
FromName = Annotated[str, StringConstraints(max_length=200), AfterValidator(clean_line)]
Folder = Annotated[str, StringConstraints(min_length=1, max_length=500), AfterValidator(clean_folder)]
WatchFolder = Annotated[
    str, StringConstraints(min_length=1, max_length=500), AfterValidator(clean_watched_folder)
]
WatchFolders = Annotated[
    list[WatchFolder],
    Field(max_length=100),  # a guard before each item is checked; the real limit is the next
    AfterValidator(check_watched_folders),  # its messages say why (a connection per folder)
    Field(
        json_schema_extra={"minItems": 1, "maxItems": MAX_WATCHED_FOLDERS},
        description=f"The folders whose new mail is delivered (message.received, with `folder`): "
        f"each {WATCHED_FOLDER_HELP}; 1 to {MAX_WATCHED_FOLDERS}, none twice. The first one is "
        "`folder`, the only one after-processing acts on. Default: [`folder`]",
    ),
]
CheckInterval = Annotated[
    int,
    Field(
        ge=MIN_CHECK_INTERVAL,
        le=MAX_CHECK_INTERVAL,
        strict=True,
        description="Seconds between checks when the server cannot push (IDLE)",
    ),
]
AfterProcessing = Annotated[
    str,
    StringConstraints(min_length=1, max_length=520),
    AfterValidator(validate_after_processing),
    Field(description=f"What to do with a message once delivered: {AFTER_PROCESSING_HELP}"),
]


def _one_certificate(text: str) -> str:
    try:
        return Certificate.from_pem(text).pem
    except InputError as exc:
        raise ValueError(exc.message) from None


TrustedCertificatePem = Annotated[
    str,
    StringConstraints(max_length=MAX_PEM_CHARS),
    AfterValidator(_one_certificate),
    Field(
        description="Trust exactly this certificate (PEM) for this server, like a mail client's security "
        "exception: the server must present it; CAs, host name and expiry are then not checked. "
        "A failed check reports the presented certificate's `pem`. null removes it.",
    ),
]


Aliases = Annotated[
    list[Email],
    Field(
        max_length=MAX_ALIASES,
        description="Other From addresses the SMTP server lets this account use (`from` of a send)",
    ),
]
RateLimit = Annotated[
    int,
    Field(
        ge=0,
        strict=True,
        description="Messages sent at most; null: the provider's default (docs/outbox.md); 0: no limit",
    ),
]
SentCopy = Annotated[
    SentCopyMode,
    Field(
        description="auto: store a copy in Sent unless the provider files one itself (Gmail over SMTP); "
        "always; never"
    ),
]


def _unique_aliases(values: list[str]) -> list[str]:
    seen: dict[str, str] = {}
    for value in values:
        seen.setdefault(value.lower(), value)
    return list(seen.values())


class SendingIn(RequestModel):
    """How a mailbox sends (``settings.sending``)."""

    sent_copy: SentCopy = SentCopyMode.AUTO
    aliases: Annotated[Aliases, AfterValidator(_unique_aliases)] = Field(default_factory=list)
    rate_per_minute: RateLimit | None = None
    rate_per_day: RateLimit | None = None

    def to_model(self) -> SendingSettings:
        return SendingSettings(
            sent_copy=self.sent_copy,
            aliases=tuple(self.aliases),
            rate_per_minute=self.rate_per_minute,
            rate_per_day=self.rate_per_day,
        )


class SendingPatch(RequestModel):
    """Only the fields sent are changed; a rate of null goes back to the provider's default."""

    sent_copy: SentCopy | None = None
    aliases: Annotated[Aliases, AfterValidator(_unique_aliases)] | None = None
    rate_per_minute: RateLimit | None = None
    rate_per_day: RateLimit | None = None

    def applied_to(self, current: SendingSettings) -> SendingSettings:
        changed = self.model_fields_set
        for name in ("sent_copy", "aliases"):
            if name in changed and getattr(self, name) is None:
                raise InputError(f"{name} cannot be null", field=f"settings.sending.{name}")
        return SendingSettings(
            sent_copy=self.sent_copy if self.sent_copy is not None else current.sent_copy,
            aliases=tuple(self.aliases) if self.aliases is not None else current.aliases,
            rate_per_minute=self.rate_per_minute if "rate_per_minute" in changed else current.rate_per_minute,
            rate_per_day=self.rate_per_day if "rate_per_day" in changed else current.rate_per_day,
        )


Owner = Annotated[
    str,
    StringConstraints(max_length=200),
    AfterValidator(clean_line),
    Field(
        description="The host application's user who owns the mailbox (its contacts go to that owner's "
        "book; mailboxes of one owner share it). Trimmed; empty or null: the tenant's"
    ),
]
MAX_CONTACT_FOLDERS = 100
ContactPolicy = Annotated[
    Policy,
    Field(
        description="sent_and_received: people the mailbox wrote to and who wrote to it; sent_only: only "
        "people it wrote to; off: harvest nothing (the settings are kept)"
    ),
]
BackfillDays = Annotated[
    int,
    Field(ge=1, le=3650, strict=True, description="The harvested period: mail of the last this many days"),
]
ResyncHours = Annotated[
    int, Field(ge=1, le=720, strict=True, description="Hours between scheduled re-syncs from the server")
]
ContactAliases = Annotated[
    list[Email],
    Field(
        max_length=MAX_ALIASES,
        description="More of the mailbox's own addresses, never harvested (besides its address and "
        "settings.sending.aliases)",
    ),
]
ContactFolders = Annotated[
    list[Folder],
    Field(
        max_length=MAX_CONTACT_FOLDERS,
        description="The folders harvested, as paths the server names them (GET …/folders); null: every "
        "folder but Junk, Trash and Drafts (All Mail and Sent where there is an All Mail)",
    ),
]


def _unique_folders(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


class ContactsIn(RequestModel):
    """Contact harvesting of a mailbox (``settings.contacts``); docs/contacts.md, Harvesting."""

    policy: ContactPolicy = "sent_and_received"
    backfill_days: BackfillDays = DEFAULT_BACKFILL_DAYS
    resync_hours: ResyncHours = DEFAULT_RESYNC_HOURS
    exclude_own_domain: Annotated[bool, Field(strict=True)] = Field(
        False, description="Leave out everyone at the mailbox's own domains (colleagues)"
    )
    fold: Annotated[bool, Field(strict=True)] = Field(
        True, description="Gmail dots and +tags (and +tags at a few other providers) are one address"
    )
    aliases: Annotated[ContactAliases, AfterValidator(_unique_aliases)] = Field(default_factory=list)
    folders: Annotated[ContactFolders, AfterValidator(_unique_folders)] | None = None

    def to_model(self) -> ContactSettings:
        return ContactSettings(
            policy=self.policy,
            backfill_days=self.backfill_days,
            resync_hours=self.resync_hours,
            exclude_own_domain=self.exclude_own_domain,
            fold=self.fold,
            aliases=tuple(self.aliases),
            folders=None if self.folders is None else tuple(self.folders),
        )


class ContactsPatch(RequestModel):
    """Only the fields sent are changed (on a mailbox that never harvested: on the defaults);
    ``folders: null`` goes back to the folders chosen by role."""

    policy: ContactPolicy | None = None
    backfill_days: BackfillDays | None = None
    resync_hours: ResyncHours | None = None
    exclude_own_domain: Annotated[bool, Field(strict=True)] | None = None
    fold: Annotated[bool, Field(strict=True)] | None = None
    aliases: Annotated[ContactAliases, AfterValidator(_unique_aliases)] | None = None
    folders: Annotated[ContactFolders, AfterValidator(_unique_folders)] | None = None

    def applied_to(self, current: ContactSettings | None) -> ContactSettings:
        base = current or ContactSettings()
        changed = self.model_fields_set
        values: dict[str, Any] = {}
        for name in ("policy", "backfill_days", "resync_hours", "exclude_own_domain", "fold", "aliases"):
            if name not in changed:
                continue
            value = getattr(self, name)
            if value is None:
                raise InputError(f"{name} cannot be null", field=f"settings.contacts.{name}")
            values[name] = tuple(value) if name == "aliases" else value
        if "folders" in changed:
            values["folders"] = None if self.folders is None else tuple(self.folders)
        return dataclasses.replace(base, **values)


class ServerIn(RequestModel):
    host: Host
    port: Port
    security: Security
    username: Username | None = Field(None, description="Defaults to the mailbox's email address")
    trusted_certificate: TrustedCertificatePem | None = None

    def to_model(self, current: ServerSettings | None = None) -> ServerSettings:
        """The settings; a pinned certificate not sent is kept from ``current`` while the host
        stays the same (a pin belongs to a server, so a new host drops it)."""
        pinned = Certificate.from_pem(self.trusted_certificate) if self.trusted_certificate else None
        if "trusted_certificate" not in self.model_fields_set and current is not None:
            pinned = current.trusted_certificate if current.host == self.host else None
        return ServerSettings(self.host, self.port, self.security, self.username, pinned)

    @classmethod
    def from_model(cls, server: ServerSettings) -> ServerIn:
        """The settings as a request would send them (the pin set explicitly, kept or cleared)."""
        pem = server.trusted_certificate.pem if server.trusted_certificate else None
        return cls(
            host=server.host,
            port=server.port,
            security=server.security,
            username=server.username or None,
            trusted_certificate=pem,
        )


def _first_is_folder(folder: str | None, folders: list[str] | None) -> None:
    if folder is not None and folders and folders[0] != clean_watched_folder(folder):
        raise ValueError(
            f"folder is the first watched folder: send folder {folders[0]!r} with these folders, "
            "or leave folder out"
        )


class SettingsIn(RequestModel):
    from_name: FromName | None = None
    check_interval: CheckInterval = 60
    folder: WatchFolder = Field("INBOX", description="The first watched folder (see `folders`)")
    after_processing: AfterProcessing = "none"
    folders: WatchFolders | None = None
    sending: SendingIn | None = None
    contacts: ContactsIn | None = Field(None, description="Contact harvesting; null: off (docs/contacts.md)")

    @model_validator(mode="after")
    def _folder_leads(self) -> SettingsIn:
        _first_is_folder(self.folder if "folder" in self.model_fields_set else None, self.folders)
        return self

    def to_model(self) -> ProcessingSettings:
        first = self.folders[0] if self.folders else self.folder
        return ProcessingSettings(
            from_name=self.from_name or None,
            check_interval=self.check_interval,
            folder=first,
            after_processing=self.after_processing,
            folders=tuple(WatchedFolder(spec) for spec in self.folders) if self.folders else (),
            sending=self.sending.to_model() if self.sending else SendingSettings(),
            contacts=self.contacts.to_model() if self.contacts else None,
        )


class SettingsPatch(RequestModel):
    """Only the fields sent are changed; ``from_name: null`` clears the from-name. ``folder``
    alone replaces the first watched folder and keeps the others."""

    from_name: FromName | None = None
    check_interval: CheckInterval | None = None
    folder: WatchFolder | None = Field(None, description="The first watched folder (see `folders`)")
    after_processing: AfterProcessing | None = None
    folders: WatchFolders | None = None
    sending: SendingPatch | None = Field(None, description="Only the fields sent are changed")
    contacts: ContactsPatch | None = Field(
        None,
        description="Contact harvesting: only the fields sent are changed (switched on with the "
        "defaults for the rest); null switches it off and forgets the settings",
    )

    @model_validator(mode="after")
    def _folder_leads(self) -> SettingsPatch:
        _first_is_folder(self.folder, self.folders)
        return self


class MailboxCreate(RequestModel):
    email: Email
    label: Label | None = None
    purpose: Purpose | None = None
    connector: ConnectorKey = Field(
        "imap",
        description="`imap` (default; needs `imap`), or `gmail_api` / `graph`: read through Google's or "
        "Microsoft's mail API, with `auth_method: oauth2` and no servers; connect it then with "
        "`POST /v1/oauth/{provider}/authorize` and its `mailbox_id`; or `pop3` (needs `pop3`, "
        "no `imap`: new mail of the INBOX only, see docs/pop3.md)",
    )
    auth_method: AuthMethod
    password: Password | None = None
    imap: ServerIn | None = Field(None, description="Required for the imap connector")
    pop3: ServerIn | None = Field(None, description="Required for the pop3 connector (and only for it)")
    smtp: ServerIn | None = None
    settings: SettingsIn | None = None
    owner: Owner | None = None


class MailboxUpdate(RequestModel):
    """Only the fields sent are changed. ``smtp: null`` removes SMTP; ``label: null`` clears it;
    ``owner: null`` gives the mailbox back to the tenant (contacts harvested later go to the
    tenant's book; those harvested before stay in the owner's)."""

    label: Label | None = None
    purpose: Purpose | None = None
    password: Password | None = None
    imap: ServerIn | None = None
    pop3: ServerIn | None = Field(None, description="Only for a mailbox of the pop3 connector")
    smtp: ServerIn | None = None
    settings: SettingsPatch | None = None
    owner: Owner | None = None
    enabled: Annotated[bool, Field(strict=True)] | None = Field(
        None,
        description="false disables the mailbox (its watcher stops within 2 s); true enables it "
        "again (status `pending` until the watcher connects)",
    )


# --------------------------------------------------------------------------- responses


class TrustedCertificateOut(BaseModel):
    """A pinned certificate, by its fingerprint and facts (the PEM is not repeated)."""

    sha256: str = Field(description="SHA-256 fingerprint of the DER certificate, AB:CD:…")
    subject: str
    issuer: str
    names: list[str]
    not_before: datetime
    not_after: datetime
    self_signed: bool


class ServerOut(BaseModel):
    host: str
    port: int
    security: Security
    username: str | None
    trusted_certificate: TrustedCertificateOut | None = None


class SendingOut(BaseModel):
    sent_copy: SentCopyMode
    aliases: list[str]
    rate_per_minute: int | None = Field(description="null: the provider's default; 0: no limit")
    rate_per_day: int | None = Field(description="null: the provider's default; 0: no limit")

    @classmethod
    def from_model(cls, sending: SendingSettings) -> SendingOut:
        return cls.model_validate(sending.to_json())


class ContactsOut(BaseModel):
    policy: Policy
    backfill_days: int
    resync_hours: int
    exclude_own_domain: bool
    fold: bool
    aliases: list[str]
    folders: list[str] | None = Field(
        description="null: chosen by role (every folder but Junk, Trash, Drafts)"
    )

    @classmethod
    def from_model(cls, contacts: ContactSettings) -> ContactsOut:
        return cls.model_validate(contacts.to_json())


class SettingsOut(BaseModel):
    from_name: str | None
    check_interval: int
    folder: str = Field(description="The first watched folder")
    after_processing: str
    folders: list[str] = Field(description="Every watched folder (paths, or roles as `role:sent`)")
    sending: SendingOut
    contacts: ContactsOut | None = Field(description="Contact harvesting; null: never switched on")


class OAuthOut(BaseModel):
    provider: str
    connected_email: str | None
    scopes: list[str]
    expires_at: datetime | None


class MailboxRead(BaseModel):
    id: str
    email: str
    label: str | None
    purpose: str | None
    provider_id: str | None
    connector: str = Field(
        description="What reads the mailbox (read-only): a connector key such as `imap`; "
        "it decides which after-processing actions the mailbox accepts"
    )
    auth_method: AuthMethod
    has_password: bool
    oauth: OAuthOut | None
    imap: ServerOut | None = Field(description="null: the mailbox's connector needs no IMAP server")
    pop3: ServerOut | None = Field(None, description="The pop3 connector's server; null for the others")
    smtp: ServerOut | None
    settings: SettingsOut
    owner: str | None = Field(description="The user who owns the mailbox; null: the tenant")
    status: MailboxStatus
    last_tested_at: datetime | None
    last_success_at: datetime | None
    last_error: str | None
    error_count_24h: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_model(cls, mailbox: Mailbox) -> MailboxRead:
        def server(s: ServerSettings | None) -> ServerOut | None:
            return (
                None
                if s is None
                else ServerOut(
                    host=s.host,
                    port=s.port,
                    security=s.security,
                    username=s.username,
                    trusted_certificate=TrustedCertificateOut.model_validate(s.trusted_certificate.summary())
                    if s.trusted_certificate
                    else None,
                )
            )

        imap = server(mailbox.imap)
        oauth = mailbox.oauth
        return cls(
            id=mailbox.id,
            email=mailbox.email,
            label=mailbox.label,
            purpose=mailbox.purpose,
            provider_id=mailbox.provider_id,
            connector=mailbox.connector,
            auth_method=mailbox.auth_method,
            has_password=mailbox.has_password,
            oauth=None
            if oauth is None
            else OAuthOut(
                provider=oauth.provider,
                connected_email=oauth.connected_email,
                scopes=list(oauth.scopes),
                expires_at=oauth.expires_at,
            ),
            imap=imap,
            pop3=server(mailbox.pop3),
            smtp=server(mailbox.smtp),
            settings=SettingsOut(
                from_name=mailbox.settings.from_name,
                check_interval=mailbox.settings.check_interval,
                folder=mailbox.settings.folder,
                after_processing=mailbox.settings.after_processing,
                folders=[w.spec for w in mailbox.settings.watched],
                sending=SendingOut.from_model(mailbox.settings.sending),
                contacts=ContactsOut.from_model(mailbox.settings.contacts)
                if mailbox.settings.contacts
                else None,
            ),
            owner=mailbox.owner,
            status=mailbox.health.status,
            last_tested_at=mailbox.health.last_tested_at,
            last_success_at=mailbox.health.last_success_at,
            last_error=mailbox.health.last_error,
            error_count_24h=mailbox.health.error_count_24h,
            created_at=mailbox.created_at,
            updated_at=mailbox.updated_at,
        )


class MailboxPage(BaseModel):
    items: list[MailboxRead]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null at the end")
