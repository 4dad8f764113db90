"""Composition root: the one place that picks concrete adapters (database, key ring, providers).

Everything else receives what it needs as parameters, so tests build the same graph against
the real test bed with different settings instead of patching.

:func:`build` opens the database, applies migrations where that is the deployment's policy
(the embedded SQLite default), refuses a database whose schema is behind, and checks that the
key ring decrypts the stored secrets — so every configuration mistake surfaces at startup as
one clear error.
"""

from __future__ import annotations

from mailport.auth.jwks import JwksCache
from mailport.auth.repository import JwtRepository
from mailport.auth.service import JwtService
from mailport.check.runner import ConnectionChecker
from mailport.check.service import CheckService
from mailport.clock import Clock, utc_now
from mailport.config import Settings
from mailport.crypto import KeyRing, Secret, load_key_ring
from mailport.delivery.repository import WebhookRepository
from mailport.delivery.service import DeliveryService
from mailport.errors import DatabaseNotMigratedError
from mailport.events import EventLog
from mailport.mailboxes.service import MailboxService
from mailport.net.guard import HostGuard
from mailport.net.ratelimit import TokenBucketLimiter
from mailport.net.trust import MailTrust
from mailport.oauth.connect import build_connect
from mailport.oauth.connectors import api_connectors
from mailport.push import ChannelRepository, PushService
from mailport.services import Services
from mailport.store import Database, current_revision, head_revision, open_database, upgrade, verify_key_ring
from mailport.store.mailboxes import MailboxRepository
from mailport.store.tenants import TenantRepository
from mailport.tenants.service import TenantService

__all__ = ["Services", "build", "load_keys", "prepare_database"]


def load_keys(settings: Settings) -> KeyRing:
    configured = settings.secret_keys.get_secret_value() if settings.secret_keys else None
    return load_key_ring(configured, settings.data_dir, create=settings.uses_embedded_database)


async def prepare_database(database: Database, key_ring: KeyRing, *, migrate: bool) -> None:
    """Migrate (or check the schema is current) and check the key ring against the stored secrets."""
    if migrate:
        await upgrade(database)
    else:
        current, head = await current_revision(database), head_revision()
        if current != head:
            raise DatabaseNotMigratedError(
                f"the database {database.url} is at schema revision {current or 'none'}; "
                f"this version needs {head}"
            )
    await verify_key_ring(database, key_ring)


async def build(settings: Settings, *, migrate: bool | None = None, clock: Clock = utc_now) -> Services:
    """Wire the service graph for ``settings``; raises a clear error for a bad configuration.

    ``migrate`` defaults to True on the embedded SQLite default and False elsewhere
    (PostgreSQL in production is migrated explicitly with ``mailport db upgrade``).
    """
    key_ring = load_keys(settings)
    # a paused process's row locks (its fenced lease rows) go with its session, a little after its
    # leases would have expired
    database = open_database(
        settings.effective_database_url, idle_transaction_seconds=max(settings.lease_seconds, 10.0) * 1.5
    )
    try:
        await prepare_database(
            database, key_ring, migrate=settings.uses_embedded_database if migrate is None else migrate
        )
    except BaseException:
        await database.aclose()
        raise
    admin_key = Secret(settings.admin_key.get_secret_value()) if settings.admin_key else None
    guard = HostGuard.from_settings(settings)
    mailbox_service = MailboxService(MailboxRepository(database, key_ring), guard=guard, clock=clock)
    try:
        oauth = build_connect(
            settings, key_ring, database=database, mailboxes=mailbox_service, guard=guard, clock=clock
        )
    except BaseException:
        await database.aclose()
        raise
    # which provider an API connector (gmail_api, graph) belongs to: the OAuth providers say
    mailbox_service.api_providers = api_connectors(oauth.oauth.registry)
    try:
        trust = MailTrust.from_settings(settings)
    except BaseException:
        await database.aclose()
        raise
    check_limiter = TokenBucketLimiter(
        rate_per_minute=settings.check_rate_per_minute, burst=settings.check_burst
    )
    checks = CheckService(
        ConnectionChecker(guard, trust=trust, timeout=settings.check_timeout),
        limiter=check_limiter,
        mailboxes=mailbox_service,
        tokens=oauth.oauth.tokens,
        clock=clock,
    )
    event_log = EventLog(database)
    services = Services(
        settings=settings,
        key_ring=key_ring,
        database=database,
        tenants=TenantService(
            TenantRepository(database),
            admin_key=admin_key,
            clock=clock,
            jwt=JwtService(JwtRepository(database, key_ring), JwksCache(guard), guard=guard),
        ),
        mailboxes=mailbox_service,
        oauth=oauth,
        events=event_log,
        webhooks=DeliveryService(
            WebhookRepository(database, key_ring),
            event_log,
            guard=guard,
            clock=clock,
        ),
        guard=guard,
        check_limiter=check_limiter,
        checks=checks,
        trust=trust,
        push=PushService(ChannelRepository(database, key_ring), clock=clock),
    )
    mailbox_service.before_delete(services.withdraw_push)  # a deleted mailbox's push withdrawn
    services.tenants.before_delete(mailbox_service.clean_up_tenant)  # and a deleted tenant's
    checks.connectors = services.connector  # API mailboxes are checked through their connector
    return services
