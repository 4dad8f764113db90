"""The tables (SQLAlchemy Core), identical on SQLite and PostgreSQL.

Migrations in ``mailport/store/migrations`` create exactly these; a unit test compares the
two. Columns ending in ``_enc`` hold Fernet ciphertext (see :mod:`mailport.crypto`), never
plaintext. Later features add tables through new migrations and new ``Table`` objects here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
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
    # the address as compared (mailport.validation.email_key): one mailbox per address and
    # tenant, whatever the case; NULL only for duplicates migration 0009 disabled
    Column("email_key", String(320), nullable=True),
    Column("label", String(200), nullable=True),
    Column("purpose", String(100), nullable=True),
    Column("provider_id", String(100), nullable=True),
    # the connector that reads it: a key of mailport.connectors.registry (migration 0011)
    Column("connector", String(40), nullable=False, server_default="imap"),
    # IMAP and SMTP (SMTP optional: a read-only mailbox needs none)
    Column("imap_host", String(253), nullable=True),  # NULL: a connector without IMAP
    Column("imap_port", Integer, nullable=True),
    Column("imap_security", String(10), nullable=True),
    Column("imap_username", String(320), nullable=True),
    Column("smtp_host", String(253), nullable=True),
    Column("smtp_port", Integer, nullable=True),
    Column("smtp_security", String(10), nullable=True),
    Column("smtp_username", String(320), nullable=True),
    # a pinned certificate per server (PEM; mailport.net.trust), migration 0006
    Column("imap_trusted_cert", Text, nullable=True),
    Column("smtp_trusted_cert", Text, nullable=True),
    # POP3 (issue 19; the `pop3` connector reads these instead of imap_*), migration 0022
    Column("pop3_host", String(253), nullable=True),
    Column("pop3_port", Integer, nullable=True),
    Column("pop3_security", String(10), nullable=True),
    Column("pop3_username", String(320), nullable=True),
    Column("pop3_trusted_cert", Text, nullable=True),
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
    # unused since 0015: the token refresh lease is the ``leases`` row token_refresh:<mailbox id>
    # (dropping the column rebuilds this table on SQLite, whose DROP TABLE cascades to children)
    Column("oauth_refresh_lease_until", UTCDateTime(), nullable=True),
    # when the access token was issued: its lifetime bounds the refresh-ahead window
    Column("oauth_issued_at", UTCDateTime(), nullable=True),
    # processing
    Column("from_name", String(200), nullable=True),
    Column("check_interval", Integer, nullable=False),
    Column("folder", String(500), nullable=False),
    Column("after_processing", String(520), nullable=False),
    # every watched folder, JSON [{"folder": spec, "added_at": iso|null}]; NULL: only `folder`
    # (migration 0018)
    Column("folders", Text, nullable=True),
    # sending settings, JSON (mailport.sending.models.SendingSettings); NULL: the defaults (0019)
    Column("sending", Text, nullable=True),
    # contact harvesting, JSON (mailport.contacts.models.ContactSettings); NULL: never switched
    # on (0021)
    Column("contacts", Text, nullable=True),
    # the host application's user who owns the mailbox (issue 19's JWT `sub`); NULL: the tenant
    # (0021). Contacts of owned mailboxes belong to the owner.
    Column("owner", String(200), nullable=True),
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
    Index("uq_mailboxes_tenant_email_key", "tenant_id", "email_key", unique=True),
    Index("ix_mailboxes_tenant_purpose", "tenant_id", "purpose"),
    Index("ix_mailboxes_tenant_status", "tenant_id", "status"),
    Index("ix_mailboxes_tenant_owner", "tenant_id", "owner"),
)

# --- OAuth --------------------------------------------------------------------------------

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

# How a tenant verifies its host application's own user tokens (issue 19, migration 0022): one
# row per tenant. ``kind`` is ``hs256`` (``secret_enc``: the shared secret, encrypted) or ``jwks``
# (``jwks_url``: RS256/ES256 keys, fetched through the host guard). ``algorithms`` is a JSON list,
# the only ones accepted. ``owner_claim`` (default ``sub``) becomes the owner user id;
# ``tenant_claim``/``tenant_value``, when set, must be in the token with that value.
tenant_jwt = Table(
    "tenant_jwt",
    metadata,
    Column("id", String(40), primary_key=True),  # `mailport keys rotate` pages by id
    Column("tenant_id", String(40), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(10), nullable=False),
    Column("secret_enc", Text, nullable=True),
    Column("jwks_url", String(2000), nullable=True),
    Column("algorithms", Text, nullable=False),
    Column("issuer", String(500), nullable=True),
    Column("audience", String(500), nullable=True),
    Column("leeway_seconds", Integer, nullable=False, server_default="30"),
    Column("owner_claim", String(100), nullable=False, server_default="sub"),
    Column("tenant_claim", String(100), nullable=True),
    Column("tenant_value", String(200), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    UniqueConstraint("tenant_id", name="uq_tenant_jwt_tenant"),
    Index("ix_tenant_jwt_issuer", "issuer"),
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
    # imap | gmail_api | graph; NULL: started before 0020 (judged by the granted scopes)
    Column("connector", String(40), nullable=True),
    # the user the mailbox is for (a JWT caller's, or a connect link's); NULL: the tenant (0022)
    Column("owner", String(200), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Index("ix_oauth_device_flows_tenant_id", "tenant_id"),
)

# --- ingestion ----------------------------------------------------------------------------

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
SeqInteger = BigInteger().with_variant(Integer(), "sqlite")

# Where each watcher is in each scope (mailport.connectors.base.Cursor; opaque strings, 0011).
# IMAP: scope = folder, epoch = UIDVALIDITY, position = the last UID ingested.
mailbox_cursors = Table(
    "mailbox_cursors",
    metadata,
    Column("mailbox_id", String(40), ForeignKey("mailboxes.id", ondelete="CASCADE"), primary_key=True),
    Column("scope", String(500), primary_key=True),
    Column("epoch", String(200), nullable=False),
    Column("position", Text, nullable=False),  # a Graph delta link is a long URL
    Column("updated_at", UTCDateTime(), nullable=False),
)

# The durable, ordered event log (see mailport.events): `seq` is the pull cursor.
events = Table(
    "events",
    metadata,
    Column("seq", SeqInteger, primary_key=True, autoincrement=True),
    Column("id", String(40), nullable=False, unique=True),
    Column("tenant_id", String(40), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("mailbox_id", String(40), nullable=True),  # no FK: events outlive their mailbox
    Column("type", String(60), nullable=False),
    Column("idempotency_key", String(600), nullable=False, unique=True),
    Column("payload", Text, nullable=False),  # JSON
    Column("created_at", UTCDateTime(), nullable=False),
    Column("accepted_at", UTCDateTime(), nullable=True),
    Index("ix_events_tenant_seq", "tenant_id", "seq"),
    Index("ix_events_mailbox_seq", "mailbox_id", "seq"),
    Index("ix_events_accepted_at", "accepted_at"),  # retention (0005)
)

# Every ingested message: its location (scope, epoch, item: the connector's opaque strings;
# IMAP folder, UIDVALIDITY, UID), identity (resync after an epoch change) and raw source.
messages = Table(
    "messages",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(40), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("mailbox_id", String(40), ForeignKey("mailboxes.id", ondelete="CASCADE"), nullable=False),
    Column("scope", String(500), nullable=False),
    Column("epoch", String(200), nullable=False),
    Column("item", String(500), nullable=False),
    Column("message_id_header", String(998), nullable=True),
    Column("sha256", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("oversized", Boolean, nullable=False, server_default="0"),
    Column("raw", LargeBinary, nullable=True),  # None when oversized (headers only)
    Column("event_id", String(40), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("raw_purged_at", UTCDateTime(), nullable=True),  # retention (0005): the source expired
    UniqueConstraint("mailbox_id", "scope", "epoch", "item", name="uq_messages_location"),
    Index("ix_messages_mailbox_sha256", "mailbox_id", "sha256"),
    # retention (0005): only messages still holding a source, covering the janitor's search
    Index(
        "ix_messages_raw_created_at",
        "created_at",
        "id",
        "event_id",
        sqlite_where=text("raw IS NOT NULL"),
        postgresql_where=text("raw IS NOT NULL"),
    ),
)

# After-processing actions (mark_read / move / delete) waiting for their event's acceptance.
pending_actions = Table(
    "pending_actions",
    metadata,
    Column("id", SeqInteger, primary_key=True, autoincrement=True),
    Column("event_id", String(40), nullable=False),
    Column("mailbox_id", String(40), ForeignKey("mailboxes.id", ondelete="CASCADE"), nullable=False),
    Column("scope", String(500), nullable=False),
    Column("epoch", String(200), nullable=False),
    Column("item", String(500), nullable=False),
    # mark_read | move:<folder> | delete: what was asked when the message arrived, then what ran;
    # a pending row runs the mailbox's *current* after_processing setting.
    Column("action", String(520), nullable=False),
    Column("state", String(20), nullable=False),  # pending | done | failed | cancelled
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_error", Text, nullable=True),
    # A failed attempt is retried from then on (NULL: at once); see sync.watcher.apply_actions.
    Column("next_attempt_at", UTCDateTime(), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Index("ix_pending_actions_mailbox_state", "mailbox_id", "state"),
    Index("ix_pending_actions_event_id", "event_id"),
)

# Processed / failed messages and processing time, per mailbox per hour (GET /v1/stats, health).
mailbox_stats = Table(
    "mailbox_stats",
    metadata,
    Column("mailbox_id", String(40), ForeignKey("mailboxes.id", ondelete="CASCADE"), primary_key=True),
    Column("hour", UTCDateTime(), primary_key=True),
    Column("processed", Integer, nullable=False, server_default="0"),
    Column("failed", Integer, nullable=False, server_default="0"),
    Column("errors", Integer, nullable=False, server_default="0"),
    Column("processing_ms", BigInteger, nullable=False, server_default="0"),
)

# The live state of a mailbox's watcher, written by the process holding its lease (the lease
# itself is the ``leases`` row ``watcher:<mailbox id>``; the table keeps its older name).
watcher_leases = Table(
    "watcher_leases",
    metadata,
    Column("mailbox_id", String(40), ForeignKey("mailboxes.id", ondelete="CASCADE"), primary_key=True),
    Column("state", String(20), nullable=False),  # connecting | connected | disconnected | error …
    Column("last_connected_at", UTCDateTime(), nullable=True),
    Column("queue_size", Integer, nullable=False, server_default="0"),
    Column("updated_at", UTCDateTime(), nullable=False),
)

SECRET_COLUMNS: dict[str, tuple[str, ...]] = {
    "mailboxes": ("password_enc", "oauth_access_token_enc", "oauth_refresh_token_enc"),
    "key_check": ("token",),
    "oauth_apps": ("client_secret_enc",),
    "oauth_device_flows": ("device_code_enc",),
    "tenant_jwt": ("secret_enc",),
}
"""Every encrypted column, per table: what ``mailport keys rotate`` re-encrypts.

Later features that store secrets add their table and columns here (and a primary key ``id``)."""

# --- delivery -----------------------------------------------------------------------------

# A tenant's webhook endpoints; the signing secret is encrypted. Events with seq > start_seq
# are delivered (an endpoint never receives what happened before it existed).
webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(40), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("url", String(2000), nullable=False),
    Column("events", Text, nullable=True),  # space-separated event types; NULL = every type
    Column("description", String(200), nullable=True),
    Column("secret_enc", Text, nullable=False),
    Column("status", String(20), nullable=False),  # active | disabled
    Column("disabled_reason", Text, nullable=True),
    Column("start_seq", BigInteger, nullable=False),
    # up to this many consecutive events of one mailbox in one request (1: one event a request)
    Column("batch_size", Integer, nullable=False, server_default="1"),
    Column("failing_since", UTCDateTime(), nullable=True),
    Column("last_success_at", UTCDateTime(), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Index("ix_webhook_endpoints_tenant_id", "tenant_id"),
)

# The outbox: one row per (endpoint, event), in event order per endpoint.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("endpoint_id", String(40), ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), nullable=False),
    Column("tenant_id", String(40), nullable=False),
    Column("event_seq", BigInteger, nullable=False),
    Column("event_id", String(40), nullable=False),
    Column("event_type", String(60), nullable=False),
    Column("mailbox_id", String(40), nullable=True),
    Column("status", String(20), nullable=False),  # pending | delivered | dead
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("window_started_at", UTCDateTime(), nullable=False),  # retries give up 24 h after this
    Column("next_attempt_at", UTCDateTime(), nullable=True),
    Column("last_attempt_at", UTCDateTime(), nullable=True),
    Column("last_status_code", Integer, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("delivered_at", UTCDateTime(), nullable=True),
    UniqueConstraint("endpoint_id", "event_seq", name="uq_webhook_deliveries_endpoint_event"),
    Index("ix_webhook_deliveries_endpoint_status_seq", "endpoint_id", "status", "event_seq"),
    Index("ix_webhook_deliveries_event_seq", "event_seq"),
    Index("ix_webhook_deliveries_status_next", "status", "next_attempt_at"),
)

# Every HTTP attempt of every delivery.
webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("id", String(40), primary_key=True),
    Column(
        "delivery_id", String(40), ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), nullable=False
    ),
    Column("attempted_at", UTCDateTime(), nullable=False),
    Column("result", String(20), nullable=False),  # success | http_error | timeout | network_error | refused
    Column("status_code", Integer, nullable=True),
    Column("error", Text, nullable=True),
    Column("duration_ms", Integer, nullable=False),
    Index("ix_webhook_attempts_delivery_id", "delivery_id"),
)

# The dispatcher's fan-out cursor (last event seq turned into deliveries), in the row
# "dispatcher". Its lease (one dispatching process at a time) is the ``leases`` row "dispatcher".
delivery_state = Table(
    "delivery_state",
    metadata,
    Column("name", String(40), primary_key=True),
    Column("fanout_seq", BigInteger, nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

# Every lease (mailport.leases): who may do a job now, until when, and the fencing token that
# grows each time the lease changes hands. Rows stay after a release, so a token never repeats.
leases = Table(
    "leases",
    metadata,
    Column("name", String(200), primary_key=True),  # watcher:<mailbox id>, dispatcher, janitor …
    Column("holder", String(100), nullable=True),  # host:pid:nonce; NULL once released
    Column("token", BigInteger, nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("acquired_at", UTCDateTime(), nullable=False),  # when the holder took it
    Index("ix_leases_holder", "holder"),
)

# Pull consumers (``GET /v1/events`` readers and acknowledging ``mailport.watch`` loops), one row
# per name and scope: the events it owes are acknowledged through ``acked_seq`` (see
# mailport.events.acceptance). ``mailbox_id`` is "" for a consumer of every mailbox.
pull_consumers = Table(
    "pull_consumers",
    metadata,
    Column("tenant_id", String(40), ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True),
    Column("name", String(64), primary_key=True),
    Column("mailbox_id", String(40), primary_key=True),
    Column("acked_seq", BigInteger, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),  # last read or acknowledgement
)

SECRET_COLUMNS["webhook_endpoints"] = ("secret_enc",)

# --- push notifications -------------------------------------------------------------------

# Where a provider pushes notifications for a mailbox (mailport.push): the id is the last path
# segment of the URL the provider was given, the secret (encrypted) what it must present with
# each notification. A channel without mailbox_id is shared by its tenant's mailboxes: each
# notification names its account (Gmail: one Pub/Sub push subscription serves many mailboxes).
push_channels = Table(
    "push_channels",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(40), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("mailbox_id", String(40), ForeignKey("mailboxes.id", ondelete="CASCADE"), nullable=True),
    Column("connector", String(40), nullable=False),
    Column("secret_enc", Text, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("config", Text, nullable=True),  # JSON: the channel's own settings (Gmail: the topic)
    Index("ix_push_channels_tenant_id", "tenant_id"),
    Index("ix_push_channels_mailbox_id", "mailbox_id"),
)

# Wake-ups asked for a mailbox's watcher, whichever process holds it (mailport.push.wakeups):
# one row per mailbox, so any number of notifications coalesce into one wake; ``requests``
# grows with each, so the holder deletes only what it has seen.
mailbox_wakeups = Table(
    "mailbox_wakeups",
    metadata,
    Column("mailbox_id", String(40), ForeignKey("mailboxes.id", ondelete="CASCADE"), primary_key=True),
    Column("requests", BigInteger, nullable=False),
    Column("requested_at", UTCDateTime(), nullable=False),
)

SECRET_COLUMNS["push_channels"] = ("secret_enc",)

# What a mail API was asked to notify about (mailport.push.subscriptions): Gmail's users.watch
# (scope "", the whole mailbox), a Graph subscription per watched folder. Kept so that a restart
# renews the provider's subscription instead of creating another, and renews before expiry.
provider_subscriptions = Table(
    "provider_subscriptions",
    metadata,
    Column("mailbox_id", String(40), ForeignKey("mailboxes.id", ondelete="CASCADE"), primary_key=True),
    Column("scope", String(500), primary_key=True),
    Column("connector", String(40), nullable=False),
    Column("remote_id", String(500), nullable=True),  # Graph: the subscription id
    Column("channel_id", String(40), nullable=True),  # the push channel its notifications use
    Column("resource", Text, nullable=True),
    Column("expires_at", UTCDateTime(), nullable=True),
    Column("state", Text, nullable=True),  # JSON: the connector's own (Gmail: the watch's historyId)
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Index("ix_provider_subscriptions_expires_at", "expires_at"),
)

# --- changes made on the server -----------------------------------------------------------

# How far a watcher has reported changes made on the server (mailport.sync.changes), per stream:
# ``scope:<scope>`` for a scope's messages (the connector's opaque token, valid in ``epoch``;
# IMAP: HIGHESTMODSEQ, or a bounded snapshot of UID -> flags) and ``folders`` for the folder
# tree. Written in the transaction of the events it produced, so a restart neither loses nor
# repeats a change.
change_tokens = Table(
    "change_tokens",
    metadata,
    Column("mailbox_id", String(40), ForeignKey("mailboxes.id", ondelete="CASCADE"), primary_key=True),
    Column("stream", String(520), primary_key=True),
    Column("epoch", String(200), nullable=True),
    Column("token", Text, nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

# --- mailbox access -----------------------------------------------------------------------

# The root Message-ID of each conversation a mailbox's thread keys stand for (a key is a hash of
# its root: GET …/threads/{key} needs the root back). Filled by ingestion and by the listings,
# searches and threads served (mailport.store.threads).
thread_roots = Table(
    "thread_roots",
    metadata,
    Column("mailbox_id", String(40), ForeignKey("mailboxes.id", ondelete="CASCADE"), primary_key=True),
    Column("thread_key", String(32), primary_key=True),
    Column("root", String(998), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
)

# --- sending (mailport.sending) -----------------------------------------------------------

# The durable outbound queue: one row per send, its bytes, its state machine
# (mailport.sending.models.SendState) and what the server answered. Claimed by one worker at a
# time (claimed_by/claim_until); ``committing`` is committed before the end of DATA is sent.
outbound_messages = Table(
    "outbound_messages",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(40), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("mailbox_id", String(40), ForeignKey("mailboxes.id", ondelete="CASCADE"), nullable=False),
    Column("state", String(20), nullable=False),
    # the request's Idempotency-Key (per mailbox, 24 h) and a hash of the request it came with
    Column("idempotency_key", String(300), nullable=True),
    Column("request_hash", String(64), nullable=True),
    Column("message_id", String(998), nullable=False),  # without angle brackets
    # lowercased Message-ID: what a bounce's original Message-ID is looked up by
    Column("message_id_key", String(998), nullable=False),
    Column("in_reply_to", String(998), nullable=True),
    Column("sender", String(320), nullable=False),
    Column("recipients", Text, nullable=False),  # JSON list (envelope, Bcc included)
    Column("subject", Text, nullable=True),
    Column("raw", LargeBinary, nullable=True),  # NULL once sent and stored (retention)
    Column("size", BigInteger, nullable=False),
    Column("eight_bit", Boolean, nullable=False, server_default="0"),
    Column("smtputf8", Boolean, nullable=False, server_default="0"),
    Column("send_at", UTCDateTime(), nullable=True),
    Column("next_attempt_at", UTCDateTime(), nullable=True),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_error", Text, nullable=True),  # JSON (SendError)
    Column("smtp_reply", Text, nullable=True),
    Column("confirmed", Boolean, nullable=False, server_default="1"),
    Column("refused", Text, nullable=True),  # JSON {recipient: "550 5.1.1 …"}
    Column("claimed_by", String(80), nullable=True),
    Column("claim_until", UTCDateTime(), nullable=True),
    Column("sent_copy", String(20), nullable=False),  # SentCopyState
    Column("sent_copy_ref", String(1000), nullable=True),
    Column("sent_copy_attempts", Integer, nullable=False, server_default="0"),
    Column("draft_ref", String(1000), nullable=True),  # a draft to delete once sent
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("sent_at", UTCDateTime(), nullable=True),
    UniqueConstraint("mailbox_id", "idempotency_key", name="uq_outbound_idempotency"),
    Index("ix_outbound_due", "state", "next_attempt_at"),
    Index("ix_outbound_mailbox_created", "mailbox_id", "created_at"),
    Index("ix_outbound_tenant_message_id", "tenant_id", "message_id_key"),
)


# --- contacts (issue 18; mailport.contacts) -----------------------------------------------
# A contact book is (tenant_id, owner): owner '' for mailboxes without an owner. Every address
# key is canonical (mailport.contacts.addresses.canonical; folded when the mailbox folds).

contacts = Table(
    "contacts",
    metadata,
    Column("id", String(40), primary_key=True),  # ct_…
    Column("tenant_id", String(40), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("owner", String(200), nullable=False, server_default=""),
    Column("email", String(320), nullable=False),  # the primary address key
    Column("name", String(200), nullable=True),  # shown: the most frequent name, or the user's
    Column("name_source", String(10), nullable=False, server_default="harvest"),  # harvest | user
    Column("names", Text, nullable=False, server_default="{}"),  # JSON {display name: messages}
    Column("addresses", Text, nullable=False, server_default="[]"),  # JSON [raw addresses seen]
    Column("organisation", String(253), nullable=True),
    Column("organisation_source", String(10), nullable=False, server_default="harvest"),
    Column("notes", Text, nullable=True),
    Column("first_seen", UTCDateTime(), nullable=True),  # NULL: created by hand, never seen
    Column("last_seen", UTCDateTime(), nullable=True),
    Column("sent_to", Integer, nullable=False, server_default="0"),
    Column("received_from", Integer, nullable=False, server_default="0"),
    Column("copied", Integer, nullable=False, server_default="0"),
    Column("two_way", Boolean, nullable=False, server_default="0"),
    # a time-invariant sort key: ordering by it is ordering by score at any moment
    # (mailport.contacts.store.rank_key)
    Column("rank", Float, nullable=False, server_default="0"),
    Column("search", Text, nullable=False, server_default=""),  # lowercased names and addresses
    Column("version", Integer, nullable=False, server_default="1"),  # +1 per change (events)
    # the version the last contact.* event showed (0: none yet, the next one is contact.created);
    # a backfill records without events and announces each contact once (store.announce_book)
    Column("announced", Integer, nullable=False, server_default="0"),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Index("ix_contacts_book_rank", "tenant_id", "owner", "rank"),
    Index("ix_contacts_book_organisation", "tenant_id", "owner", "organisation"),
)

# Every address key of a contact (one contact per key per book; a merge moves keys).
contact_addresses = Table(
    "contact_addresses",
    metadata,
    Column("tenant_id", String(40), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("owner", String(200), nullable=False),
    Column("key", String(320), nullable=False),
    Column("contact_id", String(40), ForeignKey("contacts.id", ondelete="CASCADE"), nullable=False),
    PrimaryKeyConstraint("tenant_id", "owner", "key", name="pk_contact_addresses"),
    Index("ix_contact_addresses_contact_id", "contact_id"),
)

# What each mailbox's mail says about each address: a contact's figures are the sums over its keys.
contact_stats = Table(
    "contact_stats",
    metadata,
    Column("mailbox_id", String(40), ForeignKey("mailboxes.id", ondelete="CASCADE"), nullable=False),
    Column("key", String(320), nullable=False),
    Column("tenant_id", String(40), nullable=False),
    Column("owner", String(200), nullable=False),
    Column("sent_to", Integer, nullable=False, server_default="0"),
    Column("received_from", Integer, nullable=False, server_default="0"),
    Column("copied", Integer, nullable=False, server_default="0"),
    Column("first_seen", UTCDateTime(), nullable=False),
    Column("last_seen", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("mailbox_id", "key", name="pk_contact_stats"),
    Index("ix_contact_stats_book_key", "tenant_id", "owner", "key"),
)

# Why addresses were left out, per mailbox: the contact's history shows these.
contact_exclusions = Table(
    "contact_exclusions",
    metadata,
    Column("mailbox_id", String(40), ForeignKey("mailboxes.id", ondelete="CASCADE"), nullable=False),
    Column("key", String(320), nullable=False),
    Column("reason", String(40), nullable=False),  # mailport.contacts.rules.Reason, or 'deleted'
    Column("tenant_id", String(40), nullable=False),
    Column("owner", String(200), nullable=False),
    Column("messages", Integer, nullable=False, server_default="0"),
    Column("first_seen", UTCDateTime(), nullable=False),
    Column("last_seen", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("mailbox_id", "key", "reason", name="pk_contact_exclusions"),
    Index("ix_contact_exclusions_book_key", "tenant_id", "owner", "key"),
)

# Deleted contacts' keys: harvesting never brings them back (reason 'deleted' in the history).
contact_tombstones = Table(
    "contact_tombstones",
    metadata,
    Column("tenant_id", String(40), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("owner", String(200), nullable=False),
    Column("key", String(320), nullable=False),
    Column("contact_id", String(40), nullable=False),  # the deleted contact's id
    Column("deleted_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("tenant_id", "owner", "key", name="pk_contact_tombstones"),
)

# Messages already counted, per mailbox (a digest of the Message-ID, else of the header block):
# a re-sync, the event stream and a folder seen twice (Gmail's All Mail) count a message once.
contact_messages = Table(
    "contact_messages",
    metadata,
    Column("mailbox_id", String(40), ForeignKey("mailboxes.id", ondelete="CASCADE"), nullable=False),
    Column("digest", String(32), nullable=False),
    Column("seen_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("mailbox_id", "digest", name="pk_contact_messages"),
)

contact_groups = Table(
    "contact_groups",
    metadata,
    Column("id", String(40), primary_key=True),  # cg_…
    Column("tenant_id", String(40), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("owner", String(200), nullable=False, server_default=""),
    Column("name", String(200), nullable=False),
    Column("kind", String(20), nullable=False),  # custom | organisation
    Column("rule", Text, nullable=True),  # JSON (mailport.contacts.groups); NULL: by hand only
    Column("description", Text, nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    UniqueConstraint("tenant_id", "owner", "name", name="uq_contact_groups_book_name"),
    Index("ix_contact_groups_book_kind", "tenant_id", "owner", "kind"),
)

contact_group_members = Table(
    "contact_group_members",
    metadata,
    Column("group_id", String(40), ForeignKey("contact_groups.id", ondelete="CASCADE"), nullable=False),
    Column("contact_id", String(40), ForeignKey("contacts.id", ondelete="CASCADE"), nullable=False),
    Column("source", String(20), nullable=False),  # manual | rule | organisation | removed
    Column("added_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("group_id", "contact_id", name="pk_contact_group_members"),
    Index("ix_contact_group_members_contact_id", "contact_id"),
)

# The tenant's block list: addresses and domains never harvested (reason blocked_*).
contact_blocklist = Table(
    "contact_blocklist",
    metadata,
    Column("tenant_id", String(40), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(10), nullable=False),  # address | domain
    Column("value", String(320), nullable=False),  # canonical (folded) address, or A-label domain
    Column("created_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("tenant_id", "kind", "value", name="pk_contact_blocklist"),
)

# Per mailbox: the harvest's progress (backfill, scheduled re-sync) and its claim.
contact_sync = Table(
    "contact_sync",
    metadata,
    Column("mailbox_id", String(40), ForeignKey("mailboxes.id", ondelete="CASCADE"), primary_key=True),
    Column("state", String(20), nullable=False),  # pending | running | idle | failed
    Column("since", UTCDateTime(), nullable=False),  # the start of the harvested period
    Column("folders", Text, nullable=False, server_default="{}"),  # JSON {path: position}
    Column("next_at", UTCDateTime(), nullable=True),  # the next scheduled run
    Column("started_at", UTCDateTime(), nullable=True),
    Column("finished_at", UTCDateTime(), nullable=True),
    Column("messages", Integer, nullable=False, server_default="0"),  # harvested in the run
    Column("last_error", Text, nullable=True),  # JSON {code, message}
    Column("claimed_by", String(80), nullable=True),
    Column("claim_until", UTCDateTime(), nullable=True),
    Column("updated_at", UTCDateTime(), nullable=False),
    Index("ix_contact_sync_next_at", "next_at"),
)

# Where the contacts' reader of the event log is (one row per reader name).
contact_feed = Table(
    "contact_feed",
    metadata,
    Column("name", String(40), primary_key=True),
    Column("seq", SeqInteger, nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

# --- the fleet (0023) ------------------------------------------------------------------------

# Every process running background work (mailport.fleet.registry): registered at start,
# heartbeating, deleted at a clean stop; a row past ``expires_at`` is a dead worker.
workers = Table(
    "workers",
    metadata,
    Column("id", String(100), primary_key=True),  # the process's lease holder id, host:pid:nonce
    Column("host", String(253), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("roles", Text, nullable=False),  # JSON list: "watchers", "api"
    Column("weight", Float, nullable=False, server_default="1"),
    Column("state", String(16), nullable=False),  # active | draining
    Column("version", String(40), nullable=False),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("heartbeat_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("stats", Text, nullable=False, server_default="{}"),  # JSON (mailport.fleet.registry.WorkerStats)
    Index("ix_workers_expires_at", "expires_at"),
)

# One row per mailbox created, deleted or changed in what its watchers depend on, written by
# triggers (0023_fleet); PostgreSQL also NOTIFYs ``mailport_mailbox_changes`` with the seq.
mailbox_changes = Table(
    "mailbox_changes",
    metadata,
    Column("seq", SeqInteger, primary_key=True, autoincrement=True),
    Column("mailbox_id", String(40), nullable=False),
    Column("at", UTCDateTime(), nullable=False),
)

# A connection check the wizard or the dashboard runs, readable by any API instance.
check_runs = Table(
    "check_runs",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(40), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(20), nullable=False),  # imap | pop3 | api
    Column("state", String(16), nullable=False),  # running | done | failed
    Column("data", Text, nullable=False),  # JSON: the steps so far and the result
    Column("runner", String(100), nullable=True),  # the process running it
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Index("ix_check_runs_expires_at", "expires_at"),
)
