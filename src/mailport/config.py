"""Settings from ``MAILPORT_*`` environment variables (and an optional ``.env`` file).

One typed object, read once by the composition root and passed down; nothing else reads
the environment. Every variable is documented in ``.env.example``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from mailport.event_loop import EventLoopChoice

WorkerPart = Literal["watchers", "delivery", "janitor", "sending", "contacts"]
WORKER_PARTS: tuple[WorkerPart, ...] = ("watchers", "delivery", "janitor", "sending", "contacts")


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """Everything an operator can configure."""

    model_config = SettingsConfigDict(
        env_prefix="MAILPORT_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    # --- service -----------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = Field(8025, ge=1, le=65535)
    public_url: str = ""  # e.g. https://mail.example.com; defaults to http://host:port
    data_dir: Path = Path("var")
    database_url: str = ""  # default: sqlite+aiosqlite:///<data_dir>/mailport.db
    log_level: str = "INFO"

    # --- HTTP server limits (`mailport serve`; docs/api.md, Limits) ------------------------
    max_request_bytes: int = Field(1024 * 1024, ge=1024)  # request bodies above this: 413
    header_timeout: float = Field(10.0, gt=0, le=300)  # request line + headers must arrive within
    body_timeout: float = Field(60.0, gt=0, le=3600)  # … and the body within this after them
    keep_alive_timeout: int = Field(5, ge=1, le=300)  # an idle keep-alive connection is closed
    max_connections: int = Field(1000, ge=8, le=1_000_000)  # open HTTP connections at once

    # --- secrets -------------------------------------------------------------------------
    # Comma-separated Fernet keys: the first encrypts, all decrypt (rotation).
    secret_keys: SecretStr | None = None
    admin_key: SecretStr | None = None

    # --- detection -----------------------------------------------------------------------
    detect_timeout: float = Field(8.0, gt=0, le=120)
    detect_probe: bool = True
    detect_online_ispdb: bool = False
    detect_cache_ttl: float = Field(3600.0, ge=0)
    dns_nameservers: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # --- connection checks ---------------------------------------------------------------
    check_timeout: float = Field(20.0, gt=0, le=300)
    allow_private_hosts: bool = False
    allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    check_rate_per_minute: float = Field(10.0, gt=0)  # POST /v1/check per tenant, sustained
    check_burst: int = Field(5, ge=1)  # … and in a burst

    # --- OAuth ---------------------------------------------------------------------------
    oauth_providers_file: Path | None = None
    google_client_id: str | None = None
    google_client_secret: SecretStr | None = None
    microsoft_client_id: str | None = None
    microsoft_client_secret: SecretStr | None = None
    microsoft_tenant: str = "common"
    oauth_refresh_ahead_seconds: int = Field(300, ge=0)

    # --- ingestion -----------------------------------------------------------------------
    idle_renew_seconds: int = Field(25 * 60, ge=10, le=29 * 60)
    max_message_bytes: int = Field(25 * 1024 * 1024, ge=1024)
    watchers: bool | None = None  # None: `mailport serve` runs them, an embedded app does not
    max_concurrent_connects: int = Field(20, ge=1, le=1000)
    # the fleet (mailport.fleet): this worker's share, leases, and budgets across all workers
    worker_weight: float = Field(1.0, gt=0, le=100)  # relative capacity: share of mailboxes and budgets
    lease_seconds: float = Field(30.0, ge=3, le=600)  # a dead worker's mailboxes resume after this
    host_logins: int = Field(20, ge=1, le=10_000)  # concurrent logins per mail host, whole fleet
    connect_rate: float = Field(200.0, gt=0, le=100_000)  # new mail connections per second, whole fleet
    worker_port: int | None = Field(None, ge=1, le=65535)  # `mailport worker`: /healthz /readyz /metrics
    # `mailport serve`: webhook delivery in a child process of its own (a second core), which
    # serve starts, wakes at each commit, restarts and stops (mailport.delivery.process)
    delivery_process: bool = False
    # what `mailport worker` runs (docs/fleet.md "Splitting the parts"): e.g. "delivery" in one
    # process and "watchers,janitor,sending,contacts" in another, on PostgreSQL
    worker_parts: Annotated[list[WorkerPart], NoDecode] = Field(
        default_factory=lambda: list(WORKER_PARTS), min_length=1
    )
    # `mailport worker`'s event loop: auto = uvloop for a delivery-only worker (mailport.event_loop)
    event_loop: EventLoopChoice = "auto"
    mail_ca_file: Path | None = None  # extra CA for mail servers with a private certificate

    # --- live mailbox access: command connections per mailbox, beside the watcher ------------
    command_connections: int = Field(2, ge=1, le=50)  # per mailbox (fewer where a provider limits)
    command_wait_seconds: float = Field(10.0, gt=0, le=300)  # queued this long, then 503 mailbox_busy
    command_idle_seconds: float = Field(60.0, gt=0, le=3600)  # an unused connection is closed after

    # --- retention (the janitor, mailport.janitor) -------------------------------------------
    retention_days: int = Field(30, ge=0, le=36500)  # accepted events, delivery history; 0 = forever
    raw_retention_days: int | None = Field(None, ge=0, le=36500)  # raw sources; unset = retention_days

    # --- sending (the outbound queue's worker, mailport.sending.worker; docs/outbox.md) -------
    send_poll_seconds: float = Field(1.0, gt=0, le=60)  # looks for other processes' sends this often
    send_connections: int = Field(2, ge=1, le=20)  # messages of one mailbox in flight at once
    send_claim_seconds: float = Field(120.0, ge=2, le=3600)  # a send's claim (renewed while it runs)
    send_retry_seconds: float = Field(60.0, gt=0, le=3600)  # first retry delay; doubled, at most 1 h
    send_max_attempts: int = Field(10, ge=1, le=100)  # then failed
    send_give_up_hours: float = Field(24.0, gt=0, le=720)  # a send this old is not retried again

    # --- contacts (harvesting, mailport.contacts.worker; docs/contacts.md) ----------------------
    contacts_concurrency: int = Field(2, ge=1, le=50)  # harvest runs at once per process (own connections)

    # --- mail API connectors (Gmail API, Microsoft Graph; docs/api-connectors.md) -------------
    gmail_pubsub_topic: str | None = None  # projects/<p>/topics/<t>: users.watch publishes here
    gmail_pubsub_subscription: str | None = None  # projects/<p>/subscriptions/<s>: pulled if set
    gmail_pubsub_credentials_file: Path | None = None  # service-account key that may pull it
    graph_subscription_minutes: int = Field(4230, ge=5, le=4230)  # Graph's cap for mail
    api_concurrency: int = Field(4, ge=1, le=16)  # requests in flight per mailbox (Graph allows 4)
    api_poll_seconds: float = Field(300.0, ge=1, le=3600)  # fallback when no notification came

    # --- brokers (the event log to NATS JetStream, RabbitMQ, Redis Streams; docs/brokers.md) --
    # comma-separated URLs; secret as a whole (they may carry credentials)
    brokers: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)

    @field_validator("dns_nameservers", "allowed_hosts", "brokers", "worker_parts", mode="before")
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("raw_retention_days", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir.resolve() / 'mailport.db'}"

    @property
    def effective_public_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def uses_embedded_database(self) -> bool:
        return self.effective_database_url.startswith("sqlite")


def load_settings() -> Settings:
    """Read the settings; a bad ``MAILPORT_*`` value is a :class:`ConfigurationError` naming the
    variable (one line in the CLI, never a traceback). The value itself is not repeated: it may
    be a secret."""
    from pydantic import ValidationError

    from mailport.errors import ConfigurationError

    try:
        return Settings()
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = ".".join(str(part) for part in error["loc"])
            problems.append(f"MAILPORT_{name.upper()}: {error['msg']}")
        raise ConfigurationError(
            "invalid setting " + "; ".join(problems),
            hint="Fix the variable in the environment or in .env (every one is described in .env.example).",
        ) from None
