"""The browser sign-in: the use cases behind ``/v1/oauth/{provider}/authorize``, the start page
and the callback.

``authorize`` makes the provider's URL (a reconnect signs in as the account the mailbox was
connected with), ``begin`` binds the sign-in to the browser (see :mod:`mailport.oauth.authcode`),
and ``callback`` completes it and keeps the account (:mod:`mailport.oauth.accounts`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass

from mailport.clock import Clock, utc_now
from mailport.errors import InputError, MailportError
from mailport.mailboxes.models import Mailbox
from mailport.mailboxes.service import MailboxService
from mailport.oauth.accounts import AccountKeeper
from mailport.oauth.authcode import AuthorizationRequest, BrowserStart
from mailport.oauth.connectors import IMAP
from mailport.oauth.repository import DatabaseStateStore
from mailport.oauth.service import OAuthServices
from mailport.validation import check_http_url


@dataclass(frozen=True)
class Connected:
    mailbox: Mailbox
    return_url: str | None
    created: bool


def reconnect_connector(mailbox: Mailbox, connector: str | None) -> str:
    """A reconnect signs in for the connector the mailbox already uses (its cursors are that
    connector's); asking for another one is refused rather than silently ignored. A POP3 mailbox
    signs in as for IMAP (the same XOAUTH2 scope; its own POP3 server stays)."""
    if mailbox.connector == "pop3" and connector in (None, IMAP, "pop3"):
        return IMAP
    if connector is not None and connector != mailbox.connector:
        raise InputError(
            f"connector: mailbox {mailbox.id} uses the {mailbox.connector} connector; a reconnect keeps it",
            field="connector",
            hint="Leave out `connector` to reconnect, or add the account again as a new mailbox.",
        )
    return mailbox.connector


def check_return_url(url: str | None) -> str | None:
    """Where a browser is sent back (a ``Location`` header): :func:`mailport.validation.check_http_url`."""
    if url is None:
        return None
    try:
        return check_http_url(url)
    except ValueError as exc:
        raise InputError(f"return_url: {exc}", field="return_url") from None


@dataclass(eq=False, repr=False)
class BrowserSignIn:
    oauth: OAuthServices
    _: KW_ONLY
    mailboxes: MailboxService
    accounts: AccountKeeper
    states: DatabaseStateStore
    clock: Clock = utc_now

    def return_url_of(self, state: str | None, provider: str) -> str | None:
        """The return URL of a (valid, unexpired) state, to send the browser back on failure."""
        if not state:
            return None
        try:
            return self.oauth.code_flow.peek(state, provider).return_url
        except MailportError:
            return None

    async def authorize(
        self,
        tenant_id: str,
        provider: str,
        *,
        email: str | None = None,
        mailbox_id: str | None = None,
        purpose: str | None = None,
        return_url: str | None = None,
        connector: str | None = None,
        owner: str | None = None,
    ) -> AuthorizationRequest:
        """The sign-in for a new mailbox read by ``connector`` (default ``imap``), or to reconnect
        ``mailbox_id``, which keeps its own connector. ``owner``: the user the sign-in is for (a
        JWT caller's): only its own mailbox can be reconnected, and a new one is created for it."""
        self.oauth.registry.get(provider)
        if mailbox_id is not None:
            mailbox = await self.mailboxes.get(tenant_id, mailbox_id, owner=owner)
            # the account it was connected with (a Microsoft UPN may differ from the address)
            email = email or (mailbox.oauth.connected_email if mailbox.oauth else None) or mailbox.email
            connector = reconnect_connector(mailbox, connector)
        return await self.oauth.code_flow.start(
            provider,
            tenant_id=tenant_id,
            email=email,
            mailbox_id=mailbox_id,
            purpose=purpose,
            return_url=check_return_url(return_url),
            connector=connector or IMAP,
            owner=owner,
        )

    async def begin(self, provider: str, *, state: str | None, cookies: Mapping[str, str]) -> BrowserStart:
        """The start page: bind the sign-in to this browser (see :mod:`mailport.oauth.authcode`)."""
        return await self.oauth.code_flow.begin(provider, state=state, cookies=cookies)

    async def callback(
        self,
        provider: str,
        *,
        state: str | None,
        code: str | None,
        error: str | None = None,
        error_description: str | None = None,
        cookies: Mapping[str, str],
    ) -> Connected:
        account = await self.oauth.code_flow.complete(
            provider,
            state=state,
            code=code,
            error=error,
            error_description=error_description,
            cookies=cookies,
        )
        assert account.state is not None and account.state.tenant_id is not None
        mailbox, created = await self.accounts.keep_or_revoke(
            account.state.tenant_id,
            account,
            mailbox_id=account.state.mailbox_id,
            purpose=account.state.purpose,
            owner=account.state.owner,
        )
        await self.states.purge(now=self.clock())  # consumed nonces past their expiry
        return Connected(mailbox, account.state.return_url, created)
