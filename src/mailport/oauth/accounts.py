"""Keeping a signed-in account: its tokens go on its mailbox, or back to the provider.

Both sign-ins (browser and device) end here. A new address creates an ``oauth2`` mailbox read
by the sign-in's connector: with the provider's IMAP/SMTP settings for ``imap``, without any
server for an API connector (``gmail_api``, ``graph``: the provider's API is the server); a
known one is reconnected (after ``reauth_required``),
unless the sign-in was as another account than the mailbox's (``oauth_account_mismatch``, the
mailbox left as it was). Tokens that are not kept, for this or any other reason, are revoked.
Every write goes through :class:`~mailport.mailboxes.service.MailboxService`.
"""

from __future__ import annotations

from mailport.errors import ConflictError, InputError, OAuthAccountMismatchError
from mailport.mailboxes.models import AuthMethod, Mailbox, NewMailbox, OAuthGrant, Security
from mailport.mailboxes.models import ServerSettings as MailboxServer
from mailport.mailboxes.service import MailboxService
from mailport.oauth.authcode import ConnectedAccount
from mailport.oauth.connectors import IMAP
from mailport.oauth.providers import MailServer
from mailport.oauth.repository import mailbox_id_for
from mailport.oauth.service import OAuthServices
from mailport.store.database import Database


def _server(server: MailServer, username: str | None) -> MailboxServer:
    return MailboxServer(server.host, server.port, Security(server.security), username)


class AccountKeeper:
    def __init__(self, oauth: OAuthServices, *, database: Database, mailboxes: MailboxService) -> None:
        self._oauth = oauth
        self._database = database
        self._mailboxes = mailboxes

    async def keep_or_revoke(
        self,
        tenant_id: str,
        account: ConnectedAccount,
        *,
        mailbox_id: str | None,
        purpose: str | None,
        owner: str | None = None,
    ) -> tuple[Mailbox, bool]:
        """Store the account's tokens on its mailbox (True: created, for ``owner``); tokens that
        cannot be stored are revoked."""
        try:
            return await self._store(tenant_id, account, mailbox_id=mailbox_id, purpose=purpose, owner=owner)
        except BaseException:
            provider = self._oauth.registry.get(account.provider)
            tokens = account.tokens
            await self._oauth.client.discard(
                provider, account.app, access_token=tokens.access_token, refresh_token=tokens.refresh_token
            )
            raise

    async def _store(
        self,
        tenant_id: str,
        account: ConnectedAccount,
        *,
        mailbox_id: str | None,
        purpose: str | None,
        owner: str | None,
    ) -> tuple[Mailbox, bool]:
        tokens = account.tokens
        target = mailbox_id or await mailbox_id_for(self._database, tenant_id, account.email)
        current = await self._mailboxes.get(tenant_id, target) if target is not None else None
        if current is not None and owner is not None and current.owner != owner:
            # a user's sign-in never reconnects another user's (or the tenant's) mailbox, nor says whose
            raise ConflictError(
                f"a mailbox for {account.email} exists already in this application",
                field="email",
                hint="Sign in with another account, or ask the application to move the mailbox to you.",
            )
        email, confirmed_email = account.email, account.email if account.email_confirmed else None
        if current is not None:
            expected = (current.oauth.connected_email if current.oauth else None) or current.email
            if account.email_confirmed and email.lower() != expected.lower():
                raise OAuthAccountMismatchError(
                    f"mailbox {current.id} belongs to {expected}, but the sign-in was as another "
                    f"account ({email}); the mailbox was not changed",
                    mailbox_id=current.id,
                )
            if not account.email_confirmed:  # the provider did not say: the mailbox's own account
                email, confirmed_email = expected, current.oauth.connected_email if current.oauth else None
        grant = OAuthGrant(
            provider=account.provider,
            access_token=tokens.access_token,
            refresh_token=tokens.refresh_token,
            expires_at=tokens.expires_at,
            scopes=tuple((tokens.scope or "").split()),
            # None: the provider did not name the account; the first IMAP/SMTP login confirms it.
            connected_email=confirmed_email,
            issued_at=tokens.issued_at,
        )
        over_imap = account.connector == IMAP
        if current is None:
            new = NewMailbox(
                email=account.email,
                auth_method=AuthMethod.OAUTH2,
                imap=_server(account.imap, None) if over_imap else None,
                smtp=_server(account.smtp, None) if account.smtp and over_imap else None,
                purpose=purpose,
                provider_id=account.provider,
                oauth=grant,
                connector=account.connector,
                owner=owner,
            )
            return await self._mailboxes.create(tenant_id, new), True
        # A POP3 mailbox signs in with XOAUTH2 too: a sign-in for IMAP connects it, and its own
        # servers stay (the provider's IMAP server is not what it reads).
        pop3 = current.connector == "pop3" and over_imap
        if account.connector != current.connector and not pop3:
            # an address that already has a mailbox, signed in for another connector: the
            # mailbox keeps its connector (its cursors are that connector's)
            raise InputError(
                f"connector: {current.email} already has mailbox {current.id}, read by the "
                f"{current.connector} connector, not {account.connector}",
                field="connector",
                hint="Reconnect it with its own connector, or delete it first to switch connectors.",
            )
        # XOAUTH2 logs in as the signed-in account (a Microsoft UPN may differ from the address).
        username = email if email != current.email else None
        smtp = _server(account.smtp, username) if account.smtp and over_imap else None
        updated = await self._mailboxes.store_grant(
            tenant_id,
            current.id,
            grant,
            imap=_server(account.imap, username) if over_imap and not pop3 else None,
            smtp=current.smtp if pop3 else smtp,
        )
        return updated, False
