"""Request and response bodies of ``/v1/oauth/…`` and ``/v1/oauth-apps`` (no token, no secret out)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, SecretStr, StringConstraints

from mailport.crypto.secret_input import SecretText
from mailport.mailboxes.schemas import ConnectorKey, MailboxRead, Purpose
from mailport.oauth.repository import DeviceFlowRecord, StoredApp
from mailport.validation import Email, HttpUrl, RequestModel, clean_required_line


class AuthorizeIn(RequestModel):
    email: Email | None = Field(None, description="Passed to the provider as `login_hint`")
    mailbox_id: str | None = Field(None, max_length=40, description="Reconnect this mailbox")
    purpose: Purpose | None = None
    return_url: HttpUrl | None = Field(
        None, description="Where the browser goes after the callback (else JSON)"
    )
    connector: ConnectorKey | None = Field(
        None,
        description="What will read the mailbox, which decides the scopes asked for: `imap` (default), "
        "`gmail_api` (google) or `graph` (microsoft). A reconnect keeps the mailbox's own",
    )


class AuthorizeOut(BaseModel):
    authorization_url: str
    state: str
    expires_in: int = Field(description="Seconds until the state expires")


class CallbackOut(BaseModel):
    status: Literal["connected"] = "connected"
    created: bool
    mailbox: MailboxRead


class DeviceIn(RequestModel):
    email: Email | None = None
    purpose: Purpose | None = None
    connector: ConnectorKey = Field("imap", description="`imap` (default) or `graph` (microsoft)")


class DeviceOut(BaseModel):
    flow_id: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    expires_in: int
    interval: int


class DeviceStatusOut(BaseModel):
    flow_id: str
    provider: str
    status: Literal["pending", "complete", "denied", "expired", "error"]
    mailbox_id: str | None
    error: str | None
    expires_at: datetime

    @classmethod
    def from_record(cls, record: DeviceFlowRecord) -> DeviceStatusOut:
        return cls(
            flow_id=record.id,
            provider=record.provider,
            status=record.status,
            mailbox_id=record.mailbox_id,
            error=record.error,
            expires_at=record.expires_at,
        )


ClientId = Annotated[
    str, StringConstraints(min_length=1, max_length=500), AfterValidator(clean_required_line)
]
ClientSecret = Annotated[SecretStr, SecretText(min_length=1, max_length=2000)]


class OAuthAppIn(RequestModel):
    client_id: ClientId
    client_secret: ClientSecret | None = Field(None, description="Stored encrypted; never returned")
    tenant: str | None = Field(
        None,
        max_length=200,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9.-]*$",
        description="Microsoft: common | organizations | consumers | a tenant id or domain",
    )


class OAuthAppOut(BaseModel):
    provider: str
    client_id: str
    has_secret: bool
    tenant: str | None
    redirect_uri: str = Field(description="Register exactly this redirect URI with the provider")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_stored(cls, app: StoredApp, redirect_uri: str) -> OAuthAppOut:
        return cls(
            provider=app.provider,
            client_id=app.client_id,
            has_secret=app.has_secret,
            tenant=app.directory_tenant,
            redirect_uri=redirect_uri,
            created_at=app.created_at,
            updated_at=app.updated_at,
        )


class DisconnectOut(BaseModel):
    revoked: bool = Field(description="False when the provider offers no revocation (Microsoft)")
    mailbox: MailboxRead
