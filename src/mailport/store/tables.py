"""The tables (SQLAlchemy Core), identical on SQLite and PostgreSQL.

Migrations in ``mailport/store/migrations`` create exactly these; a unit test compares the
two. Columns ending in ``_enc`` hold Fernet ciphertext (see :mod:`mailport.crypto`), never
plaintext. Later features add tables through new migrations and new ``Table`` objects here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in and out (SQLite stores no zone; PostgreSQL uses timestamptz)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use timezone-aware UTC")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


tenants = Table(
    "tenants",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("created_at", UTCDateTime(), nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(40), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("prefix", String(32), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("revoked_at", UTCDateTime(), nullable=True),
    Index("ix_api_keys_tenant_id", "tenant_id"),
)

# One row: a canary encrypted with the key ring, so a wrong or missing key fails at startup.
key_check = Table(
    "key_check",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("token", Text, nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

mailboxes = Table(
    "mailboxes",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(40), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("email", String(320), nullable=False),
    Column("label", String(200), nullable=True),
    Column("purpose", String(100), nullable=True),
    Column("provider_id", String(100), nullable=True),
    # IMAP and SMTP (SMTP optional: a read-only mailbox needs none)
    Column("imap_host", String(253), nullable=False),
    Column("imap_port", Integer, nullable=False),
    Column("imap_security", String(10), nullable=False),
    Column("imap_username", String(320), nullable=True),
    Column("smtp_host", String(253), nullable=True),
    Column("smtp_port", Integer, nullable=True),
    Column("smtp_security", String(10), nullable=True),
    Column("smtp_username", String(320), nullable=True),
    # credentials
    Column("auth_method", String(20), nullable=False),
    Column("password_enc", Text, nullable=True),
    Column("oauth_provider", String(50), nullable=True),
    Column("oauth_access_token_enc", Text, nullable=True),
    Column("oauth_refresh_token_enc", Text, nullable=True),
    Column("oauth_expires_at", UTCDateTime(), nullable=True),
    Column("oauth_scopes", Text, nullable=True),  # space-separated, as OAuth sends them
    Column("oauth_connected_email", String(320), nullable=True),
    Column("token_version", Integer, nullable=False, server_default="0"),
    # OAuth (issue 7): the cross-process refresh lease (see mailport.oauth.tokens)
    Column("oauth_refresh_lease_until", UTCDateTime(), nullable=True),
    # processing
    Column("from_name", String(200), nullable=True),
    Column("check_interval", Integer, nullable=False),
    Column("folder", String(500), nullable=False),
    Column("after_processing", String(520), nullable=False),
    # health
    Column("status", String(20), nullable=False),
    Column("last_tested_at", UTCDateTime(), nullable=True),
    Column("last_success_at", UTCDateTime(), nullable=True),
    Column("last_error", Text, nullable=True),
    Column("error_count_24h", Integer, nullable=False, server_default="0"),
    Column("errors_since", UTCDateTime(), nullable=True),  # start of the error_count_24h window
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    UniqueConstraint("tenant_id", "email", name="uq_mailboxes_tenant_email"),
    Index("ix_mailboxes_tenant_purpose", "tenant_id", "purpose"),
    Index("ix_mailboxes_tenant_status", "tenant_id", "status"),
)

# --- OAuth (issue 7) ----------------------------------------------------------------------

# Consumed OAuth `state` nonces (single use); rows past expires_at may be purged.
oauth_states = Table(
    "oauth_states",
    metadata,
    Column("nonce", String(64), primary_key=True),
    Column("expires_at", UTCDateTime(), nullable=False),
    Index("ix_oauth_states_expires_at", "expires_at"),
)

# A tenant's own OAuth app per provider (/v1/oauth-apps); the secret is never returned.
oauth_apps = Table(
    "oauth_apps",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(40), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("provider", String(50), nullable=False),
    Column("client_id", String(500), nullable=False),
    Column("client_secret_enc", Text, nullable=True),
    Column("directory_tenant", String(200), nullable=True),  # Microsoft tenant of the app
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    UniqueConstraint("tenant_id", "provider", name="uq_oauth_apps_tenant_provider"),
)

# Device authorization grants in progress (RFC 8628), polled by the service.
oauth_device_flows = Table(
    "oauth_device_flows",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(40), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("provider", String(50), nullable=False),
    Column("email", String(320), nullable=True),
    Column("purpose", String(100), nullable=True),
    Column("device_code_enc", Text, nullable=True),  # erased when the flow ends
    Column("user_code", String(100), nullable=False),
    Column("verification_uri", String(2000), nullable=False),
    Column("verification_uri_complete", String(2000), nullable=True),
    Column("interval", Integer, nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("status", String(20), nullable=False),  # pending | complete | denied | expired | error
    Column("mailbox_id", String(40), nullable=True),
    Column("error", Text, nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Index("ix_oauth_device_flows_tenant_id", "tenant_id"),
)

SECRET_COLUMNS: dict[str, tuple[str, ...]] = {
    "mailboxes": ("password_enc", "oauth_access_token_enc", "oauth_refresh_token_enc"),
    "key_check": ("token",),
    "oauth_apps": ("client_secret_enc",),
    "oauth_device_flows": ("device_code_enc",),
}
"""Every encrypted column, per table: what ``mailport keys rotate`` re-encrypts.

Later features that store secrets add their table and columns here (and a primary key ``id``)."""
