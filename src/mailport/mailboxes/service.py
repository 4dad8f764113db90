"""Mailbox use cases shared by the API and the CLI: create, list, change, delete.

This service is the one writer of mailboxes: the API, the web wizard, the CLI, OAuth connect
(tokens, grants, refreshes), connection tests and the watchers' health all write through it, so
that every write passes the same checks and the orchestrator hears of every change that matters
to a watcher (:meth:`MailboxService.on_change`). Health and token refreshes are not such changes
(a watcher recording its own status must not restart itself), so they notify no one.

Rules that span fields live here (a password method needs a password; OAuth mailboxes take
none; changed credentials or servers put the mailbox back to ``pending``; a server host the
SSRF guard refuses is ``host_not_allowed``; an after-processing action the mailbox's connector
does not declare is ``unsupported_feature``), so that every entry point — the API, the web
wizard, the CLI — enforces them alike.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from mailport.clock import Clock, utc_now
from mailport.connectors import registry
from mailport.connectors.base import Feature, action_feature
from mailport.contacts.models import ContactSettings
from mailport.crypto import Secret
from mailport.errors import (
    ConnectError,
    HostNotAllowedError,
    InputError,
    MailportError,
    UnsupportedFeatureError,
)
from mailport.leases import Fence
from mailport.mailboxes.models import (
    PASSWORD_METHODS,
    AuthMethod,
    Mailbox,
    MailboxStatus,
    NewMailbox,
    OAuthGrant,
    ProcessingSettings,
    RefreshedTokens,
    ServerSettings,
    WatchedFolder,
)
from mailport.mailboxes.schemas import MailboxCreate, MailboxUpdate, SettingsPatch
from mailport.mailboxes.validation import check_watched_folders
from mailport.net.guard import HostGuard
from mailport.store.mailboxes import (
    UNSET,
    MailboxRepository,
    contacts_column,
    folders_column,
    sending_column,
    server_columns,
)
from mailport.store.pagination import decode_cursor, encode_cursor

HOST_CHECK_TIMEOUT = 5.0  # seconds a save waits for DNS before leaving the host to the watcher
CLEANUP_SECONDS = 10.0  # at most this long a deletion waits for the provider to drop push
TENANT_CLEANUP_CONCURRENCY = 8  # a tenant's mailboxes withdrawn at once when it is deleted

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MailboxList:
    items: list[Mailbox]
    next_cursor: str | None


def check_credentials(auth_method: AuthMethod, password: Secret | None) -> None:
    if auth_method in PASSWORD_METHODS and password is None:
        raise InputError(f"auth_method {auth_method.value} needs a password", field="password")
    if auth_method is AuthMethod.OAUTH2 and password is not None:
        raise InputError(
            "auth_method oauth2 takes no password",
            field="password",
            hint="Leave out `password`; connect the account through OAuth instead.",
        )


def check_connector_fields(body: MailboxCreate, providers: Mapping[str, str]) -> str | None:
    """The fields a mailbox's connector needs: ``imap`` settings for the IMAP connector; for an
    API connector (``providers``: connector → the provider offering it) ``auth_method: oauth2``
    and no servers. Returns the API connector's provider (None for IMAP)."""
    if body.connector == "imap":
        if body.imap is None:
            raise InputError("imap: the imap connector needs IMAP settings", field="imap")
        if body.pop3 is not None:
            raise InputError("pop3: only the pop3 connector takes POP3 settings", field="pop3")
        return None
    if body.connector == "pop3":
        if body.pop3 is None:
            raise InputError("pop3: the pop3 connector needs POP3 settings", field="pop3")
        if body.imap is not None:
            raise InputError(
                "imap: the pop3 connector takes no IMAP settings",
                field="imap",
                hint="Send the server as `pop3`; a mailbox read over IMAP uses connector `imap`.",
            )
        return None
    if body.connector not in providers:
        known = ", ".join(["imap", "pop3", *sorted(providers)])
        raise InputError(
            f"connector: unknown connector {body.connector!r}",
            field="connector",
            hint=f"Use one of {known}.",
        )
    for name in ("imap", "smtp"):
        if getattr(body, name) is not None:
            raise InputError(
                f"{name}: the {body.connector} connector takes no {name.upper()} settings",
                field=name,
                hint=f"Leave out `{name}`: the provider's mail API is the server.",
            )
    if body.auth_method is not AuthMethod.OAUTH2:
        raise InputError(
            f"auth_method: the {body.connector} connector signs in with oauth2",
            field="auth_method",
            hint="Send `auth_method: oauth2`, then connect the mailbox with "
            f"POST /v1/oauth/{providers[body.connector]}/authorize and its mailbox_id.",
        )
    return providers[body.connector]


def check_server_patch(connector: str, patch: MailboxUpdate) -> None:
    """A change of servers that fits the mailbox's connector: ``pop3`` only for a pop3 mailbox,
    ``imap`` never for one (the connector is not changed by a PATCH)."""
    if patch.pop3 is not None and connector != "pop3":
        raise InputError(f"pop3: the {connector} connector takes no POP3 settings", field="pop3")
    if patch.imap is not None and connector == "pop3":
        raise InputError("imap: the pop3 connector takes no IMAP settings", field="imap")


def check_action(connector: str, after_processing: str) -> None:
    """Refuse an after-processing action the mailbox's connector cannot do (a POP3 mailbox has
    no folders to move to): the watcher would only fail it on every message."""
    needs = action_feature(after_processing)
    declared = registry.capabilities(connector)
    if needs is not None and needs not in declared:
        raise UnsupportedFeatureError(
            f"the {connector} connector cannot {needs.value}, so after_processing "
            f"{after_processing!r} is refused",
            field="settings.after_processing",
            hint=f"Choose an after_processing the {connector} connector supports "
            f"(it declares: {', '.join(sorted(declared)) or 'nothing'}), or none.",
        )


def check_folders(connector: str, folders: tuple[WatchedFolder, ...]) -> None:
    """Refuse watching anything but INBOX through a connector without folders: its watchers
    could only fail."""
    if Feature.FOLDERS in registry.capabilities(connector):
        return
    other = [f.spec for f in folders if f.spec not in ("INBOX", "role:inbox")]
    if other:
        raise UnsupportedFeatureError(
            f"the {connector} connector has no folders, so it cannot watch {', '.join(other)}",
            field="settings.folders",
            hint=f"A {connector} mailbox watches its INBOX only; leave settings.folders out.",
        )


def check_contacts(connector: str, contacts: ContactSettings | None) -> None:
    """Refuse contact harvesting through a connector without folders: a run could only fail."""
    if contacts is None or contacts.policy == "off" or Feature.FOLDERS in registry.capabilities(connector):
        return
    raise UnsupportedFeatureError(
        f"the {connector} connector has no folders, so it cannot harvest contacts",
        field="settings.contacts",
        hint="Harvesting reads each folder's header fields; leave settings.contacts out for this mailbox.",
    )


def watched_after(
    current: ProcessingSettings, patch: SettingsPatch, *, now: datetime
) -> tuple[WatchedFolder, ...] | None:
    """The watched folders after ``patch``; None when it leaves them alone (``folder`` alone on a
    mailbox that watches only ``folder`` changes that column, as it always did). A folder that
    joins the list of an existing mailbox is stamped ``now``: its first sync starts there."""
    changed = patch.model_fields_set
    if "folders" in changed:
        if patch.folders is None:
            raise InputError("folders cannot be null", field="settings.folders")
        specs = list(patch.folders)
    elif "folder" in changed and patch.folder is not None and current.folders:
        specs = [patch.folder, *(w.spec for w in current.folders[1:])]
        try:
            check_watched_folders(specs)
        except ValueError as exc:
            raise InputError(str(exc), field="settings.folder") from None
    else:
        return None
    before = {w.spec: w for w in current.watched}
    return tuple(before.get(spec) or WatchedFolder(spec, now) for spec in specs)


async def check_hosts(guard: HostGuard, **servers: ServerSettings | None) -> None:
    """Refuse a server whose host the SSRF guard refuses (``imap=…, smtp=…``), under the same
    rules as ``/v1/check``: the watcher would refuse it at every connect anyway, so saving it
    would only make a mailbox that can never work. A name that does not resolve *now* is
    accepted (DNS may be down or slow, or the record not published yet): the watcher vets it
    again at each connect."""
    for prefix, server in servers.items():
        if server is None:
            continue
        try:
            async with asyncio.timeout(HOST_CHECK_TIMEOUT):
                await guard.vet(server.host, server.port, field=f"{prefix}.host")
        except HostNotAllowedError:
            raise
        except (ConnectError, OSError):  # host_not_found, DNS failure or timeout: decided at connect
            continue


class HealthSink(Protocol):
    """Where a watcher records its health (:meth:`MailboxService.record_health`)."""

    async def record_health(
        self,
        tenant_id: str,
        mailbox_id: str,
        *,
        status: MailboxStatus,
        error: str | None,
        at: datetime,
        fence: Fence | None = None,
    ) -> Mailbox: ...


BeforeDelete = Callable[[Mailbox], Awaitable[None]]


class MailboxService:
    def __init__(
        self,
        repository: MailboxRepository,
        *,
        guard: HostGuard,
        clock: Clock = utc_now,
        cleanup_seconds: float = CLEANUP_SECONDS,
        api_providers: Mapping[str, str] | None = None,
    ) -> None:
        self.repository = repository
        self.guard = guard
        self._clock = clock
        # API connectors to the provider offering them (gmail_api → google): from the OAuth
        # providers (mailport.oauth.connectors.api_connectors), given by the composition root
        self.api_providers = dict(api_providers or {})
        self._listeners: list[Callable[[], None]] = []
        self._before_delete: list[BeforeDelete] = []
        self._cleanup_seconds = cleanup_seconds

    def before_delete(self, hook: BeforeDelete) -> Callable[[], None]:
        """Run ``hook(mailbox)`` before a mailbox is deleted (the composition root registers
        the withdrawal of its provider push subscriptions, which this feature cannot build);
        best effort: a hook that fails or outlasts ``cleanup_seconds`` is logged and the
        deletion goes on. Returns a function that removes it."""
        self._before_delete.append(hook)
        return lambda: self._before_delete.remove(hook) if hook in self._before_delete else None

    async def _clean_up(self, mailbox: Mailbox) -> None:
        for hook in list(self._before_delete):
            try:
                await asyncio.wait_for(hook(mailbox), self._cleanup_seconds)
            except TimeoutError:
                log.warning(
                    "mailbox %s: cleaning up before deletion took over %.0f s; deleting anyway "
                    "(what the provider was asked to do runs out by itself)",
                    mailbox.id,
                    self._cleanup_seconds,
                )
            except MailportError as exc:
                log.warning(
                    "mailbox %s: cleaning up before deletion failed: [%s] %s; deleting anyway "
                    "(what the provider was asked to do runs out by itself)",
                    mailbox.id,
                    exc.code,
                    exc.message[:300],
                )
            except Exception as exc:  # never blocks a deletion; the type only (no secret in logs)
                log.warning(
                    "mailbox %s: cleaning up before deletion failed (%s); deleting anyway",
                    mailbox.id,
                    type(exc).__name__,
                )

    async def clean_up_tenant(self, tenant_id: str) -> None:
        """The ``before_delete`` hooks of each of a tenant's API mailboxes, for a tenant being
        deleted (its mailboxes go with it by cascade, past :meth:`delete`): several at a time,
        within ``cleanup_seconds`` overall; never raises — what is left undone when time is up
        runs out by itself at the provider. IMAP mailboxes asked nothing of a provider."""
        if not self._before_delete:
            return
        found: list[Mailbox] = []
        after: str | None = None
        while True:
            page = await self.repository.page(tenant_id, after=after, limit=200)
            found += [m for m in page if m.connector in self.api_providers]
            if len(page) < 200:
                break
            after = page[-1].id
        if not found:
            return
        gate = asyncio.Semaphore(TENANT_CLEANUP_CONCURRENCY)

        async def clean(mailbox: Mailbox) -> None:
            async with gate:
                await self._clean_up(mailbox)

        tasks = [asyncio.create_task(clean(m)) for m in found]
        done, pending = await asyncio.wait(tasks, timeout=self._cleanup_seconds)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if pending:
            log.warning(
                "tenant %s: cleaning up %d of %d mailboxes before deletion took over %.0f s; "
                "deleting anyway (what the provider was asked to do runs out by itself)",
                tenant_id,
                len(pending),
                len(found),
                self._cleanup_seconds,
            )

    def on_change(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener`` after every create, change or delete made through this service (the
        orchestrator of this process follows at once instead of at its next poll); returns a
        function that removes it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def _changed(self) -> None:
        for listener in list(self._listeners):
            listener()

    async def create(self, tenant_id: str, new: NewMailbox) -> Mailbox:
        check_credentials(new.auth_method, new.password)
        check_action(new.connector, new.settings.after_processing)
        check_folders(new.connector, new.settings.watched)
        check_contacts(new.connector, new.settings.contacts)
        await check_hosts(self.guard, imap=new.imap, pop3=new.pop3, smtp=new.smtp)
        mailbox = await self.repository.create(tenant_id, new, now=self._clock())
        self._changed()
        return mailbox

    async def create_from(self, tenant_id: str, body: MailboxCreate) -> Mailbox:
        provider_id = check_connector_fields(body, self.api_providers)
        new = NewMailbox(
            email=body.email,
            auth_method=body.auth_method,
            connector=body.connector,
            provider_id=provider_id,
            imap=body.imap.to_model() if body.imap else None,
            pop3=body.pop3.to_model() if body.pop3 else None,
            smtp=body.smtp.to_model() if body.smtp else None,
            label=body.label or None,
            purpose=body.purpose,
            password=Secret(body.password.get_secret_value()) if body.password is not None else None,
            settings=body.settings.to_model() if body.settings else ProcessingSettings(),
            owner=body.owner or None,
        )
        return await self.create(tenant_id, new)

    async def get(self, tenant_id: str, mailbox_id: str, *, owner: str | None = None) -> Mailbox:
        """``owner``: the user of a JWT caller, who reaches only its own mailboxes (None: all)."""
        return await self.repository.get(tenant_id, mailbox_id, owner=owner)

    async def list(
        self,
        tenant_id: str,
        *,
        purpose: str | None = None,
        status: MailboxStatus | None = None,
        owner: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> MailboxList:
        found = await self.repository.page(
            tenant_id,
            purpose=purpose,
            status=status,
            owner=owner,
            after=decode_cursor(cursor),
            limit=limit + 1,
        )
        page = found[:limit]
        return MailboxList(page, encode_cursor(page[-1].id) if len(found) > limit else None)

    async def owned_ids(self, tenant_id: str, owner: str) -> set[str]:
        """The ids of ``owner``'s mailboxes: what a JWT caller's lists are narrowed to."""
        return await self.repository.owned_ids(tenant_id, owner)

    async def update(self, tenant_id: str, mailbox_id: str, patch: MailboxUpdate) -> Mailbox:
        current = await self.repository.get(tenant_id, mailbox_id)
        sent = patch.model_fields_set
        for name in ("password", "imap", "pop3", "settings"):
            if name in sent and getattr(patch, name) is None:
                raise InputError(f"{name} cannot be null", field=name)
        check_server_patch(current.connector, patch)
        columns: dict[str, Any] = {}
        if "label" in sent:
            columns["label"] = patch.label or None
        if "purpose" in sent:
            columns["purpose"] = patch.purpose
        if "owner" in sent:
            columns["owner"] = patch.owner or None
        reconnect = False
        if patch.imap is not None:
            columns.update(server_columns("imap", patch.imap.to_model(current.imap)))
            reconnect = True
        if patch.pop3 is not None:
            columns.update(server_columns("pop3", patch.pop3.to_model(current.pop3)))
            reconnect = True
        if "smtp" in sent:
            columns.update(server_columns("smtp", patch.smtp.to_model(current.smtp) if patch.smtp else None))
            reconnect = True
        if patch.settings is not None:
            changed = patch.settings.model_fields_set
            for name in ("check_interval", "folder", "after_processing"):
                if name in changed and getattr(patch.settings, name) is None:
                    raise InputError(f"{name} cannot be null", field=f"settings.{name}")
                if name in changed:
                    columns[name] = getattr(patch.settings, name)
            watched = watched_after(current.settings, patch.settings, now=self._clock())
            if watched is None and "folder" in changed and patch.settings.folder is not None:
                check_folders(current.connector, (WatchedFolder(patch.settings.folder),))
            if watched is not None:
                check_folders(current.connector, watched)
                columns.update(folder=watched[0].spec, folders=folders_column(watched))
            if "after_processing" in changed:
                check_action(current.connector, columns["after_processing"])
            if "from_name" in changed:
                columns["from_name"] = patch.settings.from_name or None
            if "sending" in changed:
                if patch.settings.sending is None:
                    raise InputError("sending cannot be null", field="settings.sending")
                columns["sending"] = sending_column(
                    patch.settings.sending.applied_to(current.settings.sending)
                )
            if "contacts" in changed:  # null: off; the contact_sync schedule follows in the store
                contacts = patch.settings.contacts
                harvest = None if contacts is None else contacts.applied_to(current.settings.contacts)
                check_contacts(current.connector, harvest)
                columns["contacts"] = contacts_column(harvest)
        await check_hosts(
            self.guard,
            imap=patch.imap.to_model() if patch.imap is not None else None,
            pop3=patch.pop3.to_model() if patch.pop3 is not None else None,
            smtp=patch.smtp.to_model() if patch.smtp is not None else None,
        )
        password: Secret | None | Any = UNSET
        if patch.password is not None:
            password = Secret(patch.password.get_secret_value())
            check_credentials(current.auth_method, password)
            reconnect = True
        disabled = current.health.status is MailboxStatus.DISABLED
        if "enabled" in sent:
            if patch.enabled is None:
                raise InputError("enabled cannot be null", field="enabled")
            if not patch.enabled:
                columns["status"] = MailboxStatus.DISABLED.value
            elif disabled:
                columns.update(status=MailboxStatus.PENDING.value, last_error=None)
            disabled = not patch.enabled
        if reconnect and not disabled:
            columns.update(status=MailboxStatus.PENDING.value, last_error=None)
        mailbox = await self.repository.update(
            tenant_id, mailbox_id, now=self._clock(), columns=columns, password=password
        )
        self._changed()
        return mailbox

    async def set_enabled(self, tenant_id: str, mailbox_id: str, enabled: bool) -> Mailbox:
        """Disable (the watcher stops) or enable again (``pending`` until it connects)."""
        return await self.update(tenant_id, mailbox_id, MailboxUpdate(enabled=enabled))

    async def delete(self, tenant_id: str, mailbox_id: str) -> None:
        """Delete the mailbox (its rows go with it), after the ``before_delete`` hooks."""
        if self._before_delete:
            await self._clean_up(await self.repository.get(tenant_id, mailbox_id))  # 404 first
        await self.repository.delete(tenant_id, mailbox_id)
        self._changed()

    # --- health --------------------------------------------------------------------------

    async def record_health(
        self,
        tenant_id: str,
        mailbox_id: str,
        *,
        status: MailboxStatus,
        error: str | None,
        at: datetime,
        fence: Fence | None = None,
    ) -> Mailbox:
        """A connection test's or a watcher's outcome (see
        :meth:`~mailport.store.mailboxes.MailboxRepository.record_health`); no notification:
        health is not part of what a watcher watches. ``fence``: a watcher's lease (a stale
        watcher's status never overwrites the new owner's)."""
        return await self.repository.record_health(
            mailbox_id, status=status, error=error, at=at, tenant_id=tenant_id, fence=fence
        )

    # --- OAuth grants --------------------------------------------------------------------

    async def store_grant(
        self,
        tenant_id: str,
        mailbox_id: str,
        grant: OAuthGrant,
        *,
        imap: ServerSettings | None,
        smtp: ServerSettings | None,
    ) -> Mailbox:
        """Connect an existing mailbox with OAuth (a reconnect after ``reauth_required``): the
        grant, the provider's servers (none for an API connector), ``auth_method: oauth2``, and
        ``pending`` until the watcher logs in again."""
        await check_hosts(self.guard, imap=imap, smtp=smtp)
        columns = {
            "auth_method": AuthMethod.OAUTH2.value,
            "provider_id": grant.provider,
            **server_columns("imap", imap),
            **server_columns("smtp", smtp),
            "status": MailboxStatus.PENDING.value,
            "last_error": None,
        }
        mailbox = await self.repository.update(
            tenant_id, mailbox_id, now=self._clock(), columns=columns, password=None, oauth=grant
        )
        self._changed()
        return mailbox

    async def drop_grant(self, tenant_id: str, mailbox_id: str, *, reason: str) -> Mailbox:
        """Erase the mailbox's tokens (after a disconnect): ``reauth_required`` with ``reason``."""
        mailbox = await self.repository.update(
            tenant_id,
            mailbox_id,
            now=self._clock(),
            columns={"status": MailboxStatus.REAUTH_REQUIRED.value, "last_error": reason},
            oauth=None,
        )
        self._changed()
        return mailbox

    # --- OAuth token refresh: every write a compare-and-swap on ``token_version`` ----------
    # (by id: the token manager works for every tenant; no notification: tokens are not watched)

    async def claim_token_refresh(
        self, mailbox_id: str, *, expected_version: int, until: datetime, now: datetime
    ) -> bool:
        return await self.repository.claim_token_refresh(
            mailbox_id, expected_version=expected_version, until=until, now=now
        )

    async def release_token_refresh(self, mailbox_id: str, *, expected_version: int) -> None:
        await self.repository.release_token_refresh(mailbox_id, expected_version=expected_version)

    async def record_refresh(
        self, mailbox_id: str, *, expected_version: int, tokens: RefreshedTokens
    ) -> bool:
        """Store a refresh's tokens; False when another writer moved the version first."""
        return await self.repository.save_refreshed_tokens(
            mailbox_id, expected_version=expected_version, tokens=tokens
        )

    async def mark_reauth_required(self, mailbox_id: str, *, error: str) -> None:
        await self.repository.mark_reauth_required(mailbox_id, error=error)
