"""The service graph's type: what the API, the CLI, the web pages and the workers share.

It lives apart from :mod:`mailport.bootstrap` (the composition root that *builds* it) so that
features can name the type without importing the root that picks the adapters.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from mailport.check.service import CheckService
from mailport.clock import utc_now
from mailport.config import Settings
from mailport.connectors import registry
from mailport.connectors.base import Connector
from mailport.contacts.groups import GroupService
from mailport.contacts.service import ContactService
from mailport.crypto import KeyRing, Secret
from mailport.delivery.service import DeliveryService
from mailport.errors import SmtpNotConfiguredError
from mailport.events import EventLog
from mailport.fleet.budgets import FleetBudgets
from mailport.mailboxes.access import MailAccess
from mailport.mailboxes.models import Mailbox
from mailport.mailboxes.pool import CommandPool
from mailport.mailboxes.service import MailboxService
from mailport.net.guard import HostGuard
from mailport.net.ratelimit import TokenBucketLimiter
from mailport.net.trust import MailTrust
from mailport.oauth.connect import OAuthConnectService
from mailport.oauth.providers import MailApi
from mailport.push import PushService
from mailport.push.subscriptions import SubscriptionStore
from mailport.sending.drafts import DraftService
from mailport.sending.service import SendService
from mailport.sending.smtp_transport import SmtpTransport
from mailport.sending.transport import Transport, transport_for
from mailport.store import Database
from mailport.store.threads import ThreadRoots
from mailport.tenants.service import TenantService

if TYPE_CHECKING:
    from mailport.contacts.sync import ContactSync


@dataclass
class Services:
    """What the API, the CLI and the workers share."""

    settings: Settings
    key_ring: KeyRing
    database: Database
    tenants: TenantService
    mailboxes: MailboxService
    oauth: OAuthConnectService
    events: EventLog  # the durable event log (ingestion writes, delivery reads)
    webhooks: DeliveryService  # webhook endpoints, deliveries, pull
    guard: HostGuard  # the SSRF guard: every outbound connection of the service (mailport.net.connect)
    check_limiter: TokenBucketLimiter  # POST /v1/check per tenant
    checks: CheckService  # connection checks
    trust: MailTrust  # the certificates every mail connection trusts (MAILPORT_MAIL_CA_FILE, pins)
    push: PushService  # push notifications in (/v1/push): authenticate, record wake-ups

    def _tokens(self, mailbox: Mailbox) -> tuple[registry.TokenSource, registry.ForceRefresh]:
        """The mailbox's OAuth access token, and the refresh after the server refused one."""
        tokens = self.oauth.oauth.tokens

        async def token_source() -> Secret:
            return await tokens.get_access_token(mailbox.id)

        async def force_refresh(rejected: Secret | None) -> Secret:
            return await tokens.force_refresh(mailbox.id, rejected=rejected)

        return token_source, force_refresh

    def connector(self, mailbox: Mailbox) -> Connector:
        """The connector the registry holds under ``mailbox.connector``, given this service's
        tokens, trust, guard and limits (the watchers' and the API's, built one way)."""
        return registry.create(mailbox, self.connector_context(mailbox))

    def connector_context(self, mailbox: Mailbox) -> registry.ConnectorContext:
        """What ``mailbox``'s connector and its transport are built with."""
        token_source, force_refresh = self._tokens(mailbox)
        return registry.ConnectorContext(
            token_source=token_source,
            force_refresh=force_refresh,
            ssl_context=self.trust.context,
            guard=self.guard,
            max_message_bytes=self.settings.max_message_bytes,
            push_renew_seconds=float(self.settings.idle_renew_seconds),
            api=self._mail_api(mailbox),
            push=self.push_context,
            api_concurrency=self.settings.api_concurrency,
            poll_seconds=self.settings.api_poll_seconds,
        )

    async def withdraw_push(self, mailbox: Mailbox) -> None:
        """Ask the provider to stop what it was asked to do for ``mailbox`` (Gmail's watch,
        Graph's subscriptions): registered by :func:`mailport.bootstrap.build` as the mailbox
        service's ``before_delete`` hook. The mailbox is marked first, so that a watcher ticking
        until the row is deleted records no new subscription but withdraws it itself
        (:mod:`mailport.push.subscriptions`)."""
        if not await self.subscriptions.withdraw(mailbox.id, now=utc_now()):
            return  # already gone
        connector = self.connector(mailbox)
        try:
            await connector.unsubscribe()
        finally:
            await connector.disconnect()

    def _mail_api(self, mailbox: Mailbox) -> MailApi | None:
        """The provider's mail API a mailbox's connector talks to (None: not an API connector)."""
        if mailbox.provider_id is None or mailbox.provider_id not in self.oauth.oauth.registry:
            return None
        return self.oauth.oauth.registry.get(mailbox.provider_id).apis.get(mailbox.connector)

    @cached_property
    def subscriptions(self) -> SubscriptionStore:
        """What Gmail and Graph were asked to notify about (renewed, never duplicated)."""
        return SubscriptionStore(self.database)

    @cached_property
    def push_context(self) -> registry.PushContext:
        """What an API connector needs to subscribe to its provider's notifications."""
        return registry.PushContext(
            public_url=self.settings.public_url.rstrip("/"),
            channels=self.push.channels,
            subscriptions=self.subscriptions,
            gmail_topic=self.settings.gmail_pubsub_topic,
            subscription_minutes=self.settings.graph_subscription_minutes,
        )

    def transport(self, mailbox: Mailbox) -> Transport:
        """How ``mailbox`` sends: the transport its connector registered
        (:func:`mailport.sending.transport.register_transport`; the Gmail API, Graph), built with
        its connector's context, else SMTP submission with the same tokens, trust and guard; a
        mailbox with neither is refused (``smtp_not_configured``)."""
        own = transport_for(mailbox, self.connector_context(mailbox))
        if own is not None:
            return own
        if mailbox.smtp is None:
            own_way = (
                "" if mailbox.connector == "imap" else f" and the {mailbox.connector} connector no transport"
            )
            raise SmtpNotConfiguredError(f"mailbox {mailbox.id} has no SMTP server{own_way}")
        token_source, force_refresh = self._tokens(mailbox)
        return SmtpTransport(
            mailbox,
            token_source=token_source,
            force_refresh=force_refresh,
            guard=self.guard,
            ssl_context=self.trust.context(mailbox.smtp.trusted_certificate),
            connections=self.settings.send_connections,  # as many sessions as messages in flight
        )

    @cached_property
    def mail(self) -> MailAccess:
        """Folders and messages live from the mailboxes' servers, over per-mailbox command pools."""
        pool = CommandPool(
            self.connector,
            size=self.settings.command_connections,
            wait=self.settings.command_wait_seconds,
            idle_timeout=self.settings.command_idle_seconds,
            api_processes=self.fleet.api_processes,  # each account's connections, shared
        )
        return MailAccess(self.mailboxes, pool, roots=ThreadRoots(self.database))

    @cached_property
    def fleet(self) -> FleetBudgets:
        """What the live workers' rows say this process may use (:mod:`mailport.fleet.budgets`):
        here, among how many API processes the command pools share each account's connections."""
        return FleetBudgets.from_settings(self.database, "command-pools", self.settings, show_metrics=False)

    @cached_property
    def sending(self) -> SendService:
        """Queueing sends and reading the outbound queue (the send worker does the sending)."""
        return SendService(self.database, self.mailboxes, self.mail, wake=self.send_wakeup.set)

    @cached_property
    def drafts(self) -> DraftService:
        """Drafts kept in the mailboxes' drafts folders: create, read, replace, delete, send."""
        return DraftService(self.mail, self.sending, self.database)

    @cached_property
    def contacts(self) -> ContactService:
        """The harvested contacts: list, search, change, merge, delete, export; the block list."""
        return ContactService(self.events)

    @cached_property
    def contact_groups(self) -> GroupService:
        """Contact groups: the tenant's, by hand or by rule, and one per organisation."""
        return GroupService(self.database)

    @cached_property
    def send_wakeup(self) -> asyncio.Event:
        """Set when this process queued a send: its send worker looks at once instead of at
        its next poll (:mod:`mailport.sending.worker`)."""
        return asyncio.Event()

    @cached_property
    def contact_sync(self) -> ContactSync:
        """Contact harvesting from the mailboxes' servers: requests, state, runs (the contacts
        worker of :mod:`mailport.contacts.worker` runs what is due)."""
        from mailport.contacts.sync import ContactSync

        return ContactSync(self.events, self.mailboxes, self.connector, wake=self.contacts_wakeup.set)

    @cached_property
    def contacts_wakeup(self) -> asyncio.Event:
        """Set when this process asked for a contact sync or changed a mailbox: its contacts
        worker looks at once instead of at its next poll."""
        return asyncio.Event()

    async def aclose(self) -> None:
        """Release connections and background tasks."""
        if "mail" in self.__dict__:
            await self.mail.pool.aclose()
        await self.oauth.aclose()
        await self.database.aclose()
