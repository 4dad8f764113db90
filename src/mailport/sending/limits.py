"""Per-mailbox sending rate limits: the mailbox's own (``settings.sending.rate_per_minute`` /
``rate_per_day``) or its provider's published limit, counted from the database so that every
process sending for the mailbox shares one count.

Providers suspend an account that sends over their limit (Gmail "for up to 24 hours"), so the
queue stays under it: a message over the limit waits (``next_attempt_at``) for the window to
free a place; it never fails for this. The figures, as the providers publish them:

* Gmail (consumer): 500 messages a day
  (https://support.google.com/mail/answer/22839, "Sending limits in Gmail").
* Google Workspace: 2,000 messages a day, over a rolling 24 hours
  (https://support.google.com/a/answer/166852, "Gmail sending limits in Google Workspace").
* Microsoft 365 / Exchange Online: 30 messages a minute and 10,000 recipients a day
  (https://learn.microsoft.com/office365/servicedescriptions/exchange-online-service-description/exchange-online-limits#sending-limits-1).
* Outlook.com: 300 messages a day for an established free account, fewer for a new one
  (https://support.microsoft.com/office/sending-limits-in-outlook-com-279ee200-594c-40f0-9ec8-bb6af7735c2e).
* Any other server: no limit unless the mailbox sets one.

Messages are counted, not recipients: where a provider counts recipients (Exchange's 10,000 a
day), the default stands for messages and a mailbox writing to many recipients per message
sets its own ``rate_per_day``. A window counts the messages sent in it plus those being sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from mailport.mailboxes.models import Mailbox
from mailport.sending import repository as repo

MINUTE = timedelta(minutes=1)
DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Rate:
    """Messages allowed per minute and per day; None: no limit in that window."""

    per_minute: int | None = None
    per_day: int | None = None


@dataclass(frozen=True, slots=True)
class ProviderRate:
    name: str
    rate: Rate
    provider_ids: frozenset[str]  # detection's ids (mailboxes.provider_id)
    smtp_hosts: frozenset[str]
    domains: frozenset[str]  # the address's domain, for consumer accounts

    def matches(self, mailbox: Mailbox) -> bool:
        if mailbox.provider_id is not None and mailbox.provider_id.lower() in self.provider_ids:
            return True
        if mailbox.email.rpartition("@")[2].lower() in self.domains:
            return True
        return mailbox.smtp is not None and mailbox.smtp.host.lower().rstrip(".") in self.smtp_hosts


# The first that matches wins: consumer accounts (by their address) before the business
# services that share their servers.
PROVIDERS: tuple[ProviderRate, ...] = (
    ProviderRate(
        "Gmail",
        Rate(per_day=500),
        frozenset({"gmail", "gmail.com", "googlemail.com"}),
        frozenset(),
        frozenset({"gmail.com", "googlemail.com"}),
    ),
    ProviderRate(
        "Google Workspace",
        Rate(per_day=2000),
        frozenset({"google-workspace"}),
        frozenset({"smtp.gmail.com", "smtp.googlemail.com"}),
        frozenset(),
    ),
    ProviderRate(
        "Outlook.com",
        Rate(per_day=300),
        frozenset({"outlook", "hotmail.com", "outlook.com"}),
        frozenset({"smtp-mail.outlook.com"}),
        frozenset({"outlook.com", "hotmail.com", "live.com", "msn.com"}),
    ),
    ProviderRate(
        "Microsoft 365",
        Rate(per_minute=30, per_day=10_000),
        frozenset({"microsoft365", "office365", "office365.com"}),
        frozenset({"smtp.office365.com"}),
        frozenset(),
    ),
)


def provider_rate(mailbox: Mailbox) -> Rate:
    for provider in PROVIDERS:
        if provider.matches(mailbox):
            return provider.rate
    return Rate()


def rate_for(mailbox: Mailbox) -> Rate:
    """The mailbox's setting where it has one (0: no limit), else its provider's default."""
    default = provider_rate(mailbox)
    settings = mailbox.settings.sending

    def pick(own: int | None, fallback: int | None) -> int | None:
        if own is None:
            return fallback
        return None if own == 0 else own

    return Rate(
        per_minute=pick(settings.rate_per_minute, default.per_minute),
        per_day=pick(settings.rate_per_day, default.per_day),
    )


@dataclass(frozen=True, slots=True)
class Allowance:
    """How many more messages may start now (None: any number); when none may, when the
    first place frees (``wait_until``)."""

    count: int | None
    wait_until: datetime | None = None


async def allowance(conn: AsyncConnection, mailbox: Mailbox, *, now: datetime) -> Allowance:
    """What the mailbox's rate leaves now, counted from the database."""
    rate = rate_for(mailbox)
    left: int | None = None
    wait: datetime | None = None
    for limit, window in ((rate.per_minute, MINUTE), (rate.per_day, DAY)):
        if limit is None:
            continue
        used, oldest = await repo.sends_since(conn, mailbox.id, now - window)
        room = max(0, limit - used)
        left = room if left is None else min(left, room)
        if room == 0 and oldest is not None:
            # a place frees when the oldest send leaves the window; while the sends filling it
            # are still in flight (no send time yet), nothing is deferred: the next pass, once
            # they are recorded, knows when
            frees = oldest + window
            wait = frees if wait is None else max(wait, frees)
    return Allowance(left, wait if left == 0 else None)
