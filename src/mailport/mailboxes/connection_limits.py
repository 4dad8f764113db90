"""How many IMAP connections a provider lets one account have, and who gets which of them.

Providers count every IMAP connection of an account together, wherever it comes from: the
watchers' IDLE (one per watched folder, :mod:`mailport.sync.folders`), the command pools of the
API processes (:mod:`mailport.mailboxes.pool`), the person's own phone and desktop programs.
Past the limit the next login is refused ("Too many simultaneous connections"), and a client
that keeps trying can get the account's IMAP access suspended for a while. So mailport divides a
known limit instead of finding it by refusals:

* ``reserved`` connections stay free for the person's own mail programs;
* each watched folder takes one; a mailbox watching more folders than
  ``connections - reserved`` gets :class:`~mailport.errors.TooManyWatchedFoldersError` as the
  health of the folders past the limit (:func:`check_watched`; the connect gate of
  :mod:`mailport.fleet.budgets` raises it before any connection is opened);
* what is left is shared by the command pools of the processes with role ``api``
  (:mod:`mailport.fleet.registry`): each gets ``(connections - reserved - watched) // api
  processes``, at least 1, and never more than ``MAILPORT_COMMAND_CONNECTIONS``
  (:func:`command_cap`). With the floor of 1 the pools can only overrun the account's limit when
  there are more API processes than connections left; the pool then shrinks on the server's
  refusal as before.

The limits, and where they come from (the Gmail API and Graph connectors open no IMAP connections
and are limited by request quotas instead, :mod:`mailport.connectors.api_http`):

* **Gmail, Google Workspace: 15** simultaneous IMAP connections per account. Google's help
  article "Too many simultaneous connections" (support.google.com, answer 97150) named the limit
  (10 in 2008); 15 is the figure quoted since by mail clients that meet it (Mailbird support,
  "Too many simultaneous connections": "Gmail allows up to 15 connections on its IMAP servers";
  Canary Mail help: "Gmail supports up to 15 simultaneous connections by IMAP"). Its refusal
  reads ``[ALERT] Too many simultaneous connections. (Failure)``.
* **Microsoft (Exchange Online, Outlook.com): 20** concurrent IMAP4 connections per mailbox
  (Exchange Online throttling and limits FAQ, Microsoft Exchange dev blog, 2011-06-23: "Maximum
  concurrent POP connections 20, Maximum concurrent IMAP connections 20"). An on-premises
  Exchange Server defaults to 16 per user (``MaxConnectionsPerUser``, learn.microsoft.com
  "Set connection limits for IMAP4"); a server not listed here is bounded by the setting and by
  the pool shrinking on refusal.
* **Yahoo (and AOL, same servers): 5** — not published (Yahoo's help, SLN3433, says "we do not
  publish specific guidelines for the numbers of connections"); mail clients report "as few as 5
  simultaneous connections" (Mailbird support) to "around 10" (Mailbox Taxi, "Fix too many IMAP
  connections"). The lower figure is taken.
* **iCloud: 5** — not published by Apple (support.apple.com 102525 lists only the servers);
  "iCloud is the strictest at about 5" (Mailbox Taxi, same article). Taken as 5.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailport.errors import TooManyWatchedFoldersError
from mailport.mailboxes.models import Mailbox, MailboxStatus

# Connectors that reach the provider by its HTTP API, limited by request quotas instead.
API_CONNECTORS = frozenset({"gmail_api", "graph"})


@dataclass(frozen=True, slots=True)
class ProviderLimit:
    name: str
    connections: int  # the provider's limit per account (documented, or observed where marked)
    reserved: int  # left free for the person's own mail programs
    provider_ids: frozenset[str]  # detection's provider ids (mailboxes.provider_id)
    oauth_providers: frozenset[str]  # OAuth grants' provider keys
    imap_hosts: frozenset[str]

    def matches(self, mailbox: Mailbox) -> bool:
        if mailbox.connector in API_CONNECTORS:  # they open no IMAP connections
            return False
        if mailbox.provider_id is not None and mailbox.provider_id.lower() in self.provider_ids:
            return True
        if mailbox.oauth is not None and mailbox.oauth.provider.lower() in self.oauth_providers:
            return True
        return mailbox.imap is not None and mailbox.imap.host.lower().rstrip(".") in self.imap_hosts

    @property
    def watchable(self) -> int:
        """The most folders one mailbox of this provider may watch (a connection each)."""
        return max(1, self.connections - self.reserved)


LIMITS: tuple[ProviderLimit, ...] = (
    ProviderLimit(
        "Gmail",
        15,
        4,
        frozenset({"gmail", "google-workspace", "googlemail.com", "gmail.com"}),
        frozenset({"google"}),
        frozenset({"imap.gmail.com", "imap.googlemail.com"}),
    ),
    ProviderLimit(
        "Microsoft",
        20,
        4,
        frozenset({"outlook", "microsoft365", "office365", "hotmail.com", "outlook.com"}),
        frozenset({"microsoft"}),
        frozenset({"outlook.office365.com", "imap-mail.outlook.com"}),
    ),
    ProviderLimit(
        "Yahoo",
        5,
        2,
        frozenset({"yahoo", "yahoo.com", "aol", "aol.com"}),
        frozenset({"yahoo"}),
        frozenset({"imap.mail.yahoo.com", "imap.aol.com"}),
    ),
    ProviderLimit(
        "iCloud",
        5,
        2,
        frozenset({"icloud", "icloud.com", "me.com", "mac.com"}),
        frozenset(),
        frozenset({"imap.mail.me.com"}),
    ),
)


def account_limit(mailbox: Mailbox) -> ProviderLimit | None:
    """The known connection limit of ``mailbox``'s account; None: no known limit."""
    for limit in LIMITS:
        if limit.matches(mailbox):
            return limit
    return None


def watched_connections(mailbox: Mailbox) -> int:
    """The connections the mailbox's watchers hold: one per watched folder, none when disabled."""
    if mailbox.health.status is MailboxStatus.DISABLED:
        return 0
    return len(mailbox.settings.watched)


def command_cap(mailbox: Mailbox, *, size: int, api_processes: int = 1) -> int:
    """The command connections one API process's pool may open for ``mailbox``: its share of
    what the account's limit leaves beside the watchers and the person's own programs, at
    least 1, at most ``size`` (``MAILPORT_COMMAND_CONNECTIONS``)."""
    size = max(1, size)
    limit = account_limit(mailbox)
    if limit is None:
        return size
    left = limit.connections - limit.reserved - watched_connections(mailbox)
    return max(1, min(size, left // max(1, api_processes)))


def pool_cap(mailbox: Mailbox) -> int | None:
    """The most command connections ``mailbox``'s provider allows one pool (one API process);
    None: no known limit."""
    if account_limit(mailbox) is None:
        return None
    return command_cap(mailbox, size=10**6)


def check_watched(mailbox: Mailbox, folder_index: int) -> None:
    """Refuse to connect the watcher of the ``folder_index``-th watched folder (0: the first)
    when the account's limit leaves no connection for it."""
    limit = account_limit(mailbox)
    if limit is None or folder_index < limit.watchable:
        return
    watched = len(mailbox.settings.watched)
    raise TooManyWatchedFoldersError(
        f"mailbox {mailbox.id} watches {watched} folders; {limit.name} allows {limit.connections} "
        f"simultaneous IMAP connections per account, of which mailport keeps {limit.reserved} free "
        f"for the person's own mail programs, so at most {limit.watchable} folders are watched",
        hint=f"Watch at most {limit.watchable} folders of this account (settings.folders).",
        field="settings.folders",
    )
