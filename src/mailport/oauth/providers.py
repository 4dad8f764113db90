"""OAuth providers as data: endpoints, scopes and XOAUTH2 mail servers of Google, Microsoft and more.

The built-in definitions live in ``providers.json`` beside this module. An operator file
(``MAILPORT_OAUTH_PROVIDERS_FILE``) adds providers (any OAuth2/OIDC provider whose mail servers
take XOAUTH2: Yahoo, Fastmail, …) or overrides any field of a built-in one; this is also how
tests point ``google`` and ``microsoft`` at the local authorization server. The file is a JSON
object keyed by provider id::

    {"google": {"token_endpoint": "http://127.0.0.1:9000/google/token",
                "imap": {"host": "127.0.0.1", "port": 10993}},
     "yahoo":  {"name": "Yahoo", "authorization_endpoint": "…", "token_endpoint": "…",
                "scopes": ["mail-w", "openid", "email"], "client_id": "…", "client_secret": "…",
                "imap": {"host": "imap.mail.yahoo.com", "port": 993, "security": "ssl"},
                "smtp": {"host": "smtp.mail.yahoo.com", "port": 465, "security": "ssl"}}}

Nested objects (``imap``, ``smtp``, ``authorize_params``) are merged key by key (``null``
removes an ``authorize_params`` entry); every other field is replaced. Entries are validated
with pydantic; anything wrong is an :class:`OAuthProvidersFileError` naming provider and field.

Endpoints may contain ``{tenant}`` (Microsoft: ``common``, ``organizations``, ``consumers``,
a tenant id or a verified domain), filled in from the OAuth app's tenant.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from mailport.config import Settings
from mailport.crypto import Secret
from mailport.errors import (
    ConfigurationError,
    OAuthNotConfiguredError,
    OAuthProvidersFileError,
    OAuthProviderUnknownError,
)
from mailport.servers import Security

TokenAuthMethod = Literal["client_secret_post", "client_secret_basic", "none"]

_KEY_RE = re.compile(r"^[a-z][a-z0-9_-]{0,49}$")
# Microsoft accepts common | organizations | consumers | a GUID | a verified domain name.
_TENANT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,199}$")
_MERGED_FIELDS = ("imap", "smtp", "authorize_params", "apis")


class MailServer(BaseModel):
    """Where a provider's IMAP or SMTP server listens, for XOAUTH2."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(min_length=1, max_length=253)
    port: int = Field(ge=1, le=65535)
    security: Security = Security.SSL


class MailApi(BaseModel):
    """A provider's mail API (the Gmail API, Microsoft Graph): where it answers and the scopes
    its connector asks for instead of the provider's IMAP/SMTP ``scopes``. Tests point
    ``base_url`` (and Gmail's ``pubsub_url``) at the local fakes through the providers file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str
    scopes: list[str] = Field(min_length=1)
    pubsub_url: str | None = None  # Gmail: Cloud Pub/Sub, for pulling notifications

    @field_validator("base_url", "pubsub_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.netloc:
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value.rstrip("/")


class OAuthProvider(BaseModel):
    """One OAuth2/OIDC provider whose mail servers accept XOAUTH2."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str
    name: str
    default_tenant: str | None = None
    authorization_endpoint: str
    token_endpoint: str
    device_authorization_endpoint: str | None = None
    revocation_endpoint: str | None = None
    userinfo_endpoint: str | None = None
    # Accepted id_token issuers; "{tenantid}" matches the token's own `tid` claim (Microsoft).
    issuers: list[str] = Field(default_factory=list)
    scopes: list[str] = Field(min_length=1)
    authorize_params: dict[str, str] = Field(default_factory=dict)
    token_auth_method: TokenAuthMethod = "client_secret_post"
    refresh_token_rotates: bool = False
    # Send the connector's scopes with a refresh: Microsoft's one grant covers several resources
    # (outlook.office.com for IMAP/SMTP, graph.microsoft.com) and the scopes pick the token's
    refresh_with_scope: bool = False
    device_flow_allows_mail: bool = True
    device_flow_note: str | None = None
    # id_token claims that may carry the mailbox address, in order of preference.
    email_claims: list[str] = Field(default_factory=lambda: ["email"])
    imap: MailServer
    smtp: MailServer | None = None
    # Mail APIs by connector key (``gmail_api``, ``graph``): a mailbox connected through one
    # asks for its scopes and talks to its base URL instead of IMAP and SMTP.
    apis: dict[str, MailApi] = Field(default_factory=dict)
    # An instance-wide app for a provider added by the file (google/microsoft: MAILPORT_* env).
    client_id: str | None = None
    client_secret: SecretStr | None = None

    @field_validator("key")
    @classmethod
    def _key(cls, value: str) -> str:
        if not _KEY_RE.match(value):
            raise ValueError("provider ids are lower-case letters, digits, '-' and '_' (max 50)")
        return value

    @field_validator(
        "authorization_endpoint",
        "token_endpoint",
        "device_authorization_endpoint",
        "revocation_endpoint",
        "userinfo_endpoint",
    )
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value.replace("{tenant}", "common"))
        if parts.scheme not in ("https", "http") or not parts.netloc:
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value

    @field_validator("default_tenant")
    @classmethod
    def _tenant(cls, value: str | None) -> str | None:
        if value is not None and not _TENANT_RE.match(value):
            raise ValueError("not a tenant: use common, organizations, consumers, an id or a domain")
        return value

    @property
    def has_tenants(self) -> bool:
        return "{tenant}" in self.authorization_endpoint + self.token_endpoint

    @property
    def scope(self) -> str:
        """The scopes as OAuth sends them (space-separated)."""
        return " ".join(self.scopes)

    def scopes_for(self, connector: str) -> list[str]:
        """The scopes a mailbox read by ``connector`` needs (an API's own, else IMAP/SMTP's)."""
        api = self.apis.get(connector)
        return list(api.scopes) if api is not None else list(self.scopes)

    def url(self, endpoint: str, tenant: str | None = None) -> str:
        """The endpoint with ``{tenant}`` filled in (the app's tenant, else the default)."""
        tenant = tenant or self.default_tenant or "common"
        return endpoint.replace("{tenant}", check_tenant(tenant))


def check_tenant(tenant: str) -> str:
    if not _TENANT_RE.match(tenant):
        raise ConfigurationError(
            f"{tenant!r} is not a Microsoft tenant: use common, organizations, consumers, "
            "a tenant id or a verified domain name"
        )
    return tenant


@dataclass(frozen=True)
class OAuthApp:
    """An operator's registered app (client) at one provider."""

    provider: str
    client_id: str
    client_secret: Secret | None = None
    tenant: str | None = None  # Microsoft-style tenant; None = the provider's default
    source: str = "instance"  # "instance" (environment/file) or "tenant" (/v1/oauth-apps)


def _builtin() -> dict[str, dict[str, Any]]:
    text = resources.files("mailport.oauth").joinpath("providers.json").read_text("utf-8")
    data: dict[str, dict[str, Any]] = json.loads(text)
    return data


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for field, value in override.items():
        if field in _MERGED_FIELDS and isinstance(value, Mapping) and isinstance(base.get(field), Mapping):
            nested = dict(base[field])
            for sub, sub_value in value.items():
                if sub_value is None:
                    nested.pop(sub, None)
                elif (
                    field == "apis"
                    and isinstance(sub_value, Mapping)
                    and isinstance(nested.get(sub), Mapping)
                ):
                    nested[sub] = {**nested[sub], **sub_value}  # an API's fields one by one
                else:
                    nested[sub] = sub_value
            merged[field] = nested
        else:
            merged[field] = value
    return merged


def _describe(exc: ValidationError) -> str:
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "entry"
    return f"{field}: {first['msg']}"


def _read_file(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text("utf-8"))
    except FileNotFoundError as exc:
        raise OAuthProvidersFileError(f"OAuth providers file {path} does not exist") from exc
    except (OSError, UnicodeError) as exc:
        raise OAuthProvidersFileError(f"OAuth providers file {path} cannot be read: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise OAuthProvidersFileError(
            f"OAuth providers file {path} is not valid JSON (line {exc.lineno}: {exc.msg})"
        ) from exc
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise OAuthProvidersFileError(
            f"OAuth providers file {path} must be a JSON object mapping provider ids to objects"
        )
    return data


class ProviderRegistry:
    """The providers this instance knows, built-in and from the operator file."""

    def __init__(self, providers: Mapping[str, OAuthProvider]) -> None:
        self._providers = dict(providers)

    @classmethod
    def load(cls, providers_file: Path | None = None) -> ProviderRegistry:
        raw = _builtin()
        source = {key: "built-in" for key in raw}
        if providers_file is not None:
            for key, override in _read_file(providers_file).items():
                raw[key] = _merge(raw.get(key, {}), override)
                source[key] = str(providers_file)
        providers: dict[str, OAuthProvider] = {}
        for key, entry in raw.items():
            try:
                providers[key] = OAuthProvider.model_validate({**entry, "key": key})
            except ValidationError as exc:
                raise OAuthProvidersFileError(
                    f"OAuth provider {key!r} ({source[key]}): {_describe(exc)}"
                ) from exc
        return cls(providers)

    @classmethod
    def from_settings(cls, settings: Settings) -> ProviderRegistry:
        return cls.load(settings.oauth_providers_file)

    def get(self, key: str) -> OAuthProvider:
        try:
            return self._providers[key]
        except KeyError:
            known = ", ".join(sorted(self._providers))
            raise OAuthProviderUnknownError(
                f"unknown OAuth provider {key!r} (known: {known})", provider=key
            ) from None

    def __iter__(self) -> Iterator[OAuthProvider]:
        return iter(self._providers.values())

    def __contains__(self, key: object) -> bool:
        return key in self._providers

    def keys(self) -> list[str]:
        return sorted(self._providers)

    def instance_app(self, key: str, settings: Settings) -> OAuthApp | None:
        """The instance-wide app for ``key`` (environment first, then the providers file)."""
        provider = self.get(key)
        client_id: str | None = None
        secret: Secret | None = None
        tenant: str | None = None
        if key == "google" and settings.google_client_id:
            client_id = settings.google_client_id
            secret = _secret(settings.google_client_secret)
        elif key == "microsoft" and settings.microsoft_client_id:
            client_id = settings.microsoft_client_id
            secret = _secret(settings.microsoft_client_secret)
            tenant = check_tenant(settings.microsoft_tenant)
        elif provider.client_id:
            client_id = provider.client_id
            secret = _secret(provider.client_secret)
        if not client_id:
            return None
        return OAuthApp(key, client_id, secret, tenant or provider.default_tenant, source="instance")

    def require_instance_app(self, key: str, settings: Settings) -> OAuthApp:
        app = self.instance_app(key, settings)
        if app is None:
            raise OAuthNotConfiguredError(f"no OAuth app is configured for {key!r}", provider=key)
        return app


def _secret(value: SecretStr | None) -> Secret | None:
    return Secret(value.get_secret_value()) if value is not None and value.get_secret_value() else None


def configured_providers(settings: Settings, registry: ProviderRegistry | None = None) -> set[str]:
    """Provider ids with an instance-wide app (detection's ``oauth.usable`` uses this)."""
    registry = registry or ProviderRegistry.from_settings(settings)
    return {p.key for p in registry if registry.instance_app(p.key, settings) is not None}
