"""The accounts file (``mailport apply FILE``): what it may say, as pydantic models.

The file's mailbox, server and settings blocks are the API's own request models
(:class:`~mailport.mailboxes.schemas.ServerIn`, :class:`~mailport.mailboxes.schemas.SettingsIn`),
so a value the API refuses the file refuses too, with the same words. Unknown fields are refused
everywhere (``extra="forbid"``, from :class:`~mailport.validation.RequestModel`), and so is any
secret given inline: a secret field holds a reference only (:mod:`mailport.declare.secrets`).
``docs/accounts.schema.json`` is generated from :class:`AccountsFile`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StringConstraints, field_validator, model_validator

from mailport.declare.secrets import SecretRefField
from mailport.delivery.schemas import BatchSize, Description, EventType
from mailport.delivery.urls import parse_webhook_url
from mailport.errors import InputError
from mailport.mailboxes.models import AuthMethod
from mailport.mailboxes.schemas import Label, Owner, Purpose, ServerIn, SettingsIn
from mailport.oauth.schemas import ClientId
from mailport.validation import Email, RequestModel, clean_line, email_key

TenantName = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(clean_line)]
ProviderKey = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,49}$")]
ConnectorName = Literal["imap", "gmail_api", "graph", "pop3"]


class OAuthAppSpec(RequestModel):
    """A tenant's own OAuth app for one provider (``PUT /v1/oauth-apps/{provider}``)."""

    provider: ProviderKey = Field(description="google, microsoft, or a provider of the providers file")
    client_id: ClientId
    client_secret: SecretRefField | None = Field(
        None, description="env:NAME, file:PATH or stored; left out: a public client without a secret"
    )
    tenant: str | None = Field(
        None,
        max_length=200,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9.-]*$",
        description="Microsoft: common | organizations | consumers | a tenant id or domain",
    )


def _webhook_url(value: str) -> str:
    try:
        return str(parse_webhook_url(value))
    except InputError as exc:
        raise ValueError(exc.message) from None


class WebhookSpec(RequestModel):
    """A webhook endpoint (``/v1/webhooks``), known by its URL within the tenant."""

    url: Annotated[str, StringConstraints(max_length=2000), AfterValidator(_webhook_url)]
    events: list[EventType] | None = Field(
        None, min_length=1, description="Event types to receive; left out: every type but the opt-in ones"
    )
    secret: SecretRefField = Field(
        description="The signing secret (`whsec_…`): env:NAME, file:PATH or stored"
    )
    description: Description | None = None
    batch_size: BatchSize | None = Field(
        None, description="Events of one mailbox per request, 1-100 (docs/webhooks.md); left out: 1"
    )
    enabled: bool | None = Field(None, description="false: disabled; left out: left as it is")

    @field_validator("events")
    @classmethod
    def _unique(cls, value: list[EventType] | None) -> list[EventType] | None:
        return None if value is None else list(dict.fromkeys(value))


class MailboxSpec(RequestModel):
    """A mailbox, known by its address within the tenant (the API's mailbox fields)."""

    email: Email
    connector: ConnectorName = Field(
        "imap",
        description="imap (needs `imap`), gmail_api / graph (auth oauth2, no servers), pop3 (needs `pop3`)",
    )
    auth: AuthMethod = Field(description="password, app_password, or oauth2 (created waiting for sign-in)")
    provider: ProviderKey | None = Field(
        None,
        description="oauth2: the OAuth provider (google, microsoft, …); gives an imap connector its "
        "IMAP/SMTP servers when they are left out",
    )
    password: SecretRefField | None = Field(
        None, description="password / app_password: env:NAME, file:PATH or stored"
    )
    label: Label | None = None
    purpose: Purpose | None = None
    owner: Owner | None = None
    imap: ServerIn | None = None
    smtp: ServerIn | None = None
    pop3: ServerIn | None = Field(None, description="The pop3 connector's server (like imap; then no imap)")
    settings: SettingsIn = Field(default_factory=SettingsIn)
    enabled: bool | None = Field(None, description="false: disabled; left out: left as it is")

    @model_validator(mode="after")
    def _consistent(self) -> MailboxSpec:
        oauth = self.auth is AuthMethod.OAUTH2
        if oauth and self.password is not None:
            raise ValueError("auth oauth2 takes no password: the mailbox is connected by signing in")
        if not oauth and self.password is None:
            raise ValueError(f"auth {self.auth.value} needs a password (env:NAME, file:PATH or stored)")
        if not oauth and self.provider is not None:
            raise ValueError("provider is for auth oauth2")
        if self.connector in ("gmail_api", "graph") and (not oauth or self.imap or self.smtp or self.pop3):
            raise ValueError(f"the {self.connector} connector signs in with auth oauth2 and takes no servers")
        if self.connector == "imap" and self.pop3 is not None:
            raise ValueError("pop3 settings are for connector pop3")
        if self.connector == "imap" and self.imap is None and not (oauth and self.provider):
            raise ValueError("the imap connector needs `imap` settings (or auth oauth2 with a provider)")
        if self.connector == "pop3" and (self.pop3 is None or self.imap is not None):
            raise ValueError("the pop3 connector needs `pop3` settings and no `imap`")
        return self

    @property
    def key(self) -> str:
        return email_key(self.email)


class JwtSpec(RequestModel):
    """The tenant's verifier of its host application's JWTs (``PUT /v1/tenants/{id}/jwt``,
    docs/host-apps.md); its fields are :class:`~mailport.auth.schemas.JwtSettings`'s."""

    kind: Literal["hs256", "jwks"] = Field(description="hs256: a shared secret; jwks: keys from a URL")
    secret: SecretRefField | None = Field(
        None, description="kind hs256: the shared secret (env:NAME, file:PATH or stored)"
    )
    jwks_url: str | None = Field(None, description="kind jwks: the JSON Web Key Set's URL")
    algorithms: list[str] | None = Field(None, description="Accepted `alg` values (default by kind)")
    issuer: str | None = Field(None, description="The `iss` the tokens carry")
    audience: str | None = Field(None, description="When set, tokens must list it in `aud`")
    leeway_seconds: int = Field(30, description="Clock skew allowed on exp, nbf, iat")
    owner_claim: str = Field("sub", description="The claim naming the owner (the host app's user id)")
    tenant_claim: str | None = Field(None, description="A claim naming the tenant")
    tenant_value: str | None = Field(None, description="What the tenant claim holds (default: the tenant id)")

    @model_validator(mode="after")
    def _secret_for_hs256(self) -> JwtSpec:
        if self.kind == "hs256" and self.secret is None:
            raise ValueError("an hs256 verifier needs secret (env:NAME, file:PATH or stored)")
        return self


class TenantSpec(RequestModel):
    """A tenant, known by its name, with what it owns."""

    name: TenantName
    jwt: JwtSpec | None = Field(
        None, description="Its host application's JWT verifier; left out: kept (removed by --prune)"
    )
    oauth_apps: list[OAuthAppSpec] = Field(default_factory=list)
    webhooks: list[WebhookSpec] = Field(default_factory=list)
    mailboxes: list[MailboxSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> TenantSpec:
        _no_twice("oauth_apps", [a.provider for a in self.oauth_apps], "provider")
        _no_twice("webhooks", [w.url for w in self.webhooks], "url")
        _no_twice("mailboxes", [m.key for m in self.mailboxes], "email")
        return self


class AccountsFile(RequestModel):
    """Tenants, their mailboxes, webhooks and OAuth apps, as ``mailport apply`` makes them be."""

    version: Literal[1] = Field(description="The file format's version: 1")
    tenants: list[TenantSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> AccountsFile:
        _no_twice("tenants", [t.name for t in self.tenants], "name")
        return self


def _no_twice(what: str, keys: list[str], field: str) -> None:
    seen: set[str] = set()
    for key in keys:
        if key in seen:
            raise ValueError(f"{what}: {field} {key!r} is listed twice")
        seen.add(key)
