"""The folders of one mailbox that its watchers ingest: which server folder a watched folder is,
and the one health row they share.

Why one watcher per folder (each with its own connection and IDLE) rather than one IDLE on the
first folder and the others polled on the same connection (STATUS UIDNEXT) or announced by
NOTIFY (RFC 5465): a folder's new mail arrives with IDLE's latency in every folder, the watcher
(catch-up, epochs, fencing, reconnect backoff, change events) stays the same code for one
folder or ten, and one folder failing (a role the server does not have) leaves the others
running. The cost is a connection per folder, hence the cap of ten (Gmail allows 15 per
account, the command pool's included). NOTIFY would save the connections where a server offers
it, behind the same settings, once the IMAP client speaks it.

What the folder watchers of one mailbox share (:class:`MailboxFolders`, one per mailbox in the
orchestrator that holds its lease — the lease stays per mailbox, so all its folders are watched
by one process and fenced by one token):

* **Health**: the mailbox keeps one status and ``last_error``. The worst folder wins
  (``reauth_required`` over ``error`` over ``connected``), and ``last_error`` names the folders
  that fail (``folder role:sent: [folder_not_found] …``), so INBOX working does not hide a
  missing Sent folder, and a failing Sent folder does not stop INBOX. A mailbox that watches one
  folder records its health exactly as before (no folder named).
* **Each server folder once**: two entries that turn out to be one folder on this server
  (``Sent`` and ``role:sent``) would ingest it twice over; the second to connect fails with a
  clear error instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from mailport.connectors.base import Connector, Feature
from mailport.connectors.folders import Role
from mailport.errors import FolderNotFoundError, InputError
from mailport.leases import Fence
from mailport.mailboxes.models import Mailbox, MailboxStatus, WatchedFolder
from mailport.mailboxes.service import HealthSink

_RANK = {
    MailboxStatus.REAUTH_REQUIRED: 3,
    MailboxStatus.ERROR: 2,
    MailboxStatus.DISABLED: 1,
    MailboxStatus.PENDING: 0,
    MailboxStatus.CONNECTED: 0,
}


async def resolve_watched(connector: Connector, spec: str) -> str:
    """The server's path of the watched folder ``spec``: a path as it is; ``role:<role>`` the
    first selectable folder the connector lists with that role (``role:inbox`` is INBOX for a
    connector without folders). :class:`~mailport.errors.FolderNotFoundError` when none has it."""
    role = WatchedFolder(spec).role
    if role is None:
        return spec
    if role == Role.INBOX.value and not connector.supports(Feature.FOLDERS):
        return "INBOX"
    folders = await connector.list_folders()
    for folder in folders:
        if folder.role is not None and folder.role.value == role and folder.selectable:
            return folder.path
    raise FolderNotFoundError(
        f"no folder has the role {role} on this server ({spec}); the other folders are watched",
        field="settings.folders",
        hint=f"Give the {role} folder its role on the server (SPECIAL-USE), or watch it by its "
        "path as GET /v1/mailboxes/{id}/folders lists it, or remove "
        f"{spec} from the mailbox's settings.folders.",
    )


@dataclass
class _FolderHealth:
    status: MailboxStatus
    error: str | None


class MailboxFolders:
    """What the watchers of one mailbox's folders share: its health row, and which server
    folder each of them watches."""

    def __init__(self, sink: HealthSink, folders: Sequence[WatchedFolder]) -> None:
        self._sink = sink
        self.specs = [f.spec for f in folders]
        self._health: dict[str, _FolderHealth] = {}
        self._paths: dict[str, str] = {}  # server path -> the spec watching it
        self._lock = asyncio.Lock()
        self._recorded: tuple[MailboxStatus, str | None] | None = None
        self._mailbox: Mailbox | None = None

    # ------------------------------------------------------------------ folders

    async def resolve(self, connector: Connector, spec: str) -> str:
        """:func:`resolve_watched`, refusing a server folder another entry watches already."""
        path = await resolve_watched(connector, spec)
        holder = self._paths.setdefault(path, spec)
        if holder != spec:
            raise InputError(
                f"{spec} is the folder {path}, which {holder} watches already; it is watched once",
                field="settings.folders",
                hint=f"Remove {spec} or {holder} from the mailbox's settings.folders.",
            )
        return path

    # ------------------------------------------------------------------ health

    def sink(self, spec: str) -> HealthSink:
        """Where the watcher of ``spec`` records its health."""
        return _FolderSink(self, spec)

    def combined(self) -> tuple[MailboxStatus, str | None]:
        """The worst folder's status, and what every failing folder said."""
        if not self._health:
            return MailboxStatus.PENDING, None
        worst = max(self._health.values(), key=lambda h: _RANK[h.status]).status
        if len(self.specs) == 1:
            return worst, next(iter(self._health.values())).error
        errors = [
            f"folder {spec}: {h.error}"
            for spec in self.specs
            if (h := self._health.get(spec)) is not None and h.error is not None
        ]
        return worst, "; ".join(errors) or None

    async def record(
        self,
        spec: str,
        tenant_id: str,
        mailbox_id: str,
        *,
        status: MailboxStatus,
        error: str | None,
        at: datetime,
        fence: Fence | None = None,
    ) -> Mailbox:
        async with self._lock:
            self._health[spec] = _FolderHealth(status, error)
            combined = self.combined()
            # A folder connecting while another still fails changes nothing: writing the
            # unchanged error again would count it once more in error_count_24h.
            if error is None and combined[1] is not None and combined == self._recorded and self._mailbox:
                return self._mailbox
            self._mailbox = await self._sink.record_health(
                tenant_id, mailbox_id, status=combined[0], error=combined[1], at=at, fence=fence
            )
            self._recorded = combined
            return self._mailbox


class _FolderSink:
    def __init__(self, folders: MailboxFolders, spec: str) -> None:
        self._folders = folders
        self._spec = spec

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
        return await self._folders.record(
            self._spec, tenant_id, mailbox_id, status=status, error=error, at=at, fence=fence
        )
