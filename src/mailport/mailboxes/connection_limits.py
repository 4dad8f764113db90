"""How many command connections a provider lets one account have beside the watcher.

Providers count every IMAP connection of an account together, wherever it comes from: the
watcher's IDLE, the command pool, the user's phone and desktop client. A pool that took all of
them would lock the user's own mail programs out (and the next login would be refused with
"too many connections"), so the pool stays well below the documented limit, whatever
``MAILPORT_COMMAND_CONNECTIONS`` says.

Only published limits are listed: Gmail allows 15 simultaneous IMAP connections per account
(its refusal reads "Too many simultaneous connections"), Exchange Online 20 concurrent IMAP
connections per mailbox (its throttling policy). Any other server is bounded by the setting alone,
and by the pool shrinking when the server says "too many connections".
"""

from __future__ import annotations

from dataclasses import dataclass

from mailport.mailboxes.models import Mailbox

# Connections left to the account's other users: the watcher's IDLE (one per watched folder)
# and the person's own mail programs.
RESERVED = 5


@dataclass(frozen=True, slots=True)
class ProviderLimit:
    name: str
    connections: int  # the provider's documented limit per account
    provider_ids: frozenset[str]  # detection's provider ids (mailboxes.provider_id)
    oauth_providers: frozenset[str]  # OAuth grants' provider keys
    imap_hosts: frozenset[str]

    def matches(self, mailbox: Mailbox) -> bool:
        if mailbox.provider_id is not None and mailbox.provider_id.lower() in self.provider_ids:
            return True
        if mailbox.oauth is not None and mailbox.oauth.provider.lower() in self.oauth_providers:
            return True
        return mailbox.imap is not None and mailbox.imap.host.lower().rstrip(".") in self.imap_hosts

    @property
    def pool_cap(self) -> int:
        return max(1, self.connections - RESERVED)


LIMITS: tuple[ProviderLimit, ...] = (
    ProviderLimit(
        "Gmail",
        15,
        frozenset({"gmail", "google-workspace", "googlemail.com", "gmail.com"}),
        frozenset({"google"}),
        frozenset({"imap.gmail.com", "imap.googlemail.com"}),
    ),
    ProviderLimit(
        "Microsoft",
        20,
        frozenset({"outlook", "microsoft365", "office365", "hotmail.com", "outlook.com"}),
        frozenset({"microsoft"}),
        frozenset({"outlook.office365.com", "imap-mail.outlook.com"}),
    ),
)


def pool_cap(mailbox: Mailbox) -> int | None:
    """The most command connections ``mailbox``'s provider allows the pool; None: no known limit."""
    for limit in LIMITS:
        if limit.matches(mailbox):
            return limit.pool_cap
    return None
