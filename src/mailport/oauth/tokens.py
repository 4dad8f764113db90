"""The token manager: a valid access token for a mailbox, refreshed ahead of expiry, never lost.

Rules it keeps, because peers lose mailboxes on each of them:

* A rotated refresh token is stored in the same atomic write as its access token
  (:meth:`TokenStore.save_refreshed`), compare-and-swap on the mailbox's ``token_version``.
* Exactly one refresh at a time per mailbox: an in-process lock per mailbox, and across
  processes a short refresh lease taken by compare-and-swap on the same version
  (:meth:`TokenStore.claim_refresh`). Only the lease holder talks to the provider; the others
  wait for the new version (or use the current token while it is still valid). Without the
  lease, two processes would both spend the same rotating refresh token and the loser would
  see ``invalid_grant`` — or, at providers with reuse detection, lose the whole grant.
* ``invalid_grant`` on refresh — the token endpoint's definitive refusal, and nothing else (see
  :mod:`mailport.failures`) — marks that one mailbox ``reauth_required``, keeping the
  provider's words; every other mailbox goes on. A marked mailbox is not refused outright: the
  next token request tries one refresh, and success clears the mark.
* Network errors and 5xx (:class:`OAuthUnavailableError`) are never authentication failures:
  the current token is used while it is valid, else the error is raised to be retried.
* A token is refreshed ahead of its expiry by ``refresh_ahead``, but never more than half its
  lifetime ahead (:meth:`TokenManager.refresh_window`).

Storage is a port (:class:`TokenStore`); the database adapter lives with the mailbox store.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import KW_ONLY, dataclass, field, replace
from datetime import datetime, timedelta
from typing import Protocol

from mailport.clock import Clock, utc_now
from mailport.crypto import Secret
from mailport.errors import (
    OAuthInvalidGrantError,
    OAuthUnavailableError,
    ReauthRequiredError,
)
from mailport.failures import Verdict, classify
from mailport.metrics import TOKEN_REFRESHES
from mailport.oauth.apps import AppResolver
from mailport.oauth.client import OAuthClient, TokenResponse
from mailport.oauth.providers import ProviderRegistry

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
# Treat a token as unusable this long before its stated expiry (clock skew, request latency).
EXPIRY_SKEW = timedelta(seconds=30)


@dataclass(frozen=True, repr=False)
class TokenSet:
    """An access token with its refresh token and expiry; secrets never print."""

    access_token: Secret
    refresh_token: Secret | None
    expires_at: datetime | None
    scope: str | None = None
    token_type: str = "Bearer"
    issued_at: datetime | None = None  # None for tokens stored before it was recorded

    @classmethod
    def from_response(cls, response: TokenResponse, *, previous: TokenSet | None = None) -> TokenSet:
        """Tokens after a grant; a refresh that returns no refresh token keeps the old one (Google)."""
        return cls(
            access_token=response.access_token,
            refresh_token=response.refresh_token or (previous.refresh_token if previous else None),
            expires_at=response.expires_at,
            scope=response.scope or (previous.scope if previous else None),
            token_type=response.token_type,
            issued_at=response.issued_at,
        )

    def __repr__(self) -> str:
        return f"TokenSet(access_token=***, refresh_token=***, expires_at={self.expires_at!r})"


@dataclass(frozen=True)
class StoredTokens:
    """A mailbox's tokens as stored, with the version that guards every write."""

    mailbox_id: str
    provider: str
    tenant_id: str | None
    tokens: TokenSet
    version: int
    reauth_error: str | None = None  # set once the grant is dead
    refresh_lease_until: datetime | None = None
    connector: str = "imap"  # whose scopes a refresh asks for, where the provider wants them


class TokenStore(Protocol):
    """Where tokens live (encrypted). Every write is conditional on ``token_version``."""

    async def load(self, mailbox_id: str) -> StoredTokens:
        """The stored tokens; NotFoundError when there is no such mailbox, ReauthRequiredError
        when it has no tokens (disconnected: only a new sign-in helps)."""
        ...

    async def claim_refresh(
        self, mailbox_id: str, *, expected_version: int, until: datetime, now: datetime
    ) -> bool:
        """Take the refresh lease: set ``refresh_lease_until = until`` only where the version is
        ``expected_version`` and no unexpired lease (``> now``) is held. True when taken."""
        ...

    async def release_refresh(self, mailbox_id: str, *, expected_version: int) -> None:
        """Drop the lease after a failed refresh (where the version is still ``expected_version``)."""
        ...

    async def save_refreshed(self, mailbox_id: str, *, expected_version: int, tokens: TokenSet) -> bool:
        """Atomically store access + refresh token + expiry, set version = expected + 1, clear the
        lease and any reauth mark (the grant is alive), only where the version is ``expected_version``."""
        ...

    async def mark_reauth_required(self, mailbox_id: str, *, error: str) -> None:
        """Set the mailbox to ``reauth_required`` keeping the provider's error; clear the lease."""
        ...


@dataclass(eq=False, repr=False)
class TokenManager:
    """Hands out access tokens for mailboxes connected with OAuth."""

    store: TokenStore
    _: KW_ONLY
    client: OAuthClient
    registry: ProviderRegistry
    apps: AppResolver
    refresh_ahead: timedelta = timedelta(seconds=300)
    lease: timedelta = timedelta(seconds=60)
    clock: Clock = utc_now
    sleep: Sleep = asyncio.sleep
    lease_poll_seconds: float = 0.05
    _locks: weakref.WeakValueDictionary[str, asyncio.Lock] = field(
        default_factory=weakref.WeakValueDictionary, init=False
    )

    async def get_access_token(self, mailbox_id: str) -> Secret:
        """A valid access token, refreshed first when it is within the refresh window.

        A mailbox marked ``reauth_required`` is not refused outright: one refresh is tried, and
        when the provider accepts the refresh token the mark is cleared (the mark may come from a
        failure that was only temporary); ``invalid_grant`` marks it again."""
        stored = await self.store.load(mailbox_id)
        if stored.reauth_error is None and self._fresh(stored.tokens):
            return stored.tokens.access_token
        return await self._refresh(mailbox_id, rejected=None)

    async def force_refresh(self, mailbox_id: str, *, rejected: Secret | None = None) -> Secret:
        """A server rejected ``rejected``: refresh now, unless someone already replaced it."""
        return await self._refresh(mailbox_id, rejected=rejected, forced=True)

    async def revoke(self, mailbox_id: str) -> bool:
        """Disconnect, provider side: revoke the grant where the provider supports revocation
        (RFC 7009; revoking the refresh token ends the grant). False when it cannot (Microsoft);
        erasing the stored tokens is the caller's next step either way."""
        stored = await self.store.load(mailbox_id)
        provider = self.registry.get(stored.provider)
        app = await self.apps.resolve(stored.provider, stored.tenant_id)
        token, hint = stored.tokens.refresh_token, "refresh_token"
        if token is None:
            token, hint = stored.tokens.access_token, "access_token"
        return await self.client.revoke(provider, app, token, hint=hint)

    def _lock(self, mailbox_id: str) -> asyncio.Lock:
        lock = self._locks.get(mailbox_id)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[mailbox_id] = lock
        return lock

    def refresh_window(self, tokens: TokenSet) -> timedelta:
        """How long before expiry a token is refreshed: ``refresh_ahead``, but never more than half
        the token's lifetime — else a short-lived token (300 s) would be refreshed on every use,
        each refresh spending a rotating refresh token."""
        if tokens.expires_at is None or tokens.issued_at is None:
            return self.refresh_ahead
        half = (tokens.expires_at - tokens.issued_at) / 2
        return max(timedelta(0), min(self.refresh_ahead, half))

    def _fresh(self, tokens: TokenSet) -> bool:
        return tokens.expires_at is None or tokens.expires_at - self.clock() > self.refresh_window(tokens)

    def _usable(self, tokens: TokenSet, rejected: Secret | None) -> bool:
        if rejected is not None and tokens.access_token == rejected:
            return False
        return tokens.expires_at is None or tokens.expires_at - self.clock() > EXPIRY_SKEW

    async def _refresh(self, mailbox_id: str, *, rejected: Secret | None, forced: bool = False) -> Secret:
        async with self._lock(mailbox_id):
            waited_since: datetime | None = None
            while True:
                stored = await self.store.load(mailbox_id)
                tokens = stored.tokens
                marked = stored.reauth_error is not None  # only a refresh can clear the mark
                if forced and not marked:
                    # Refreshed by someone else since the rejection: that token is the answer.
                    if rejected is not None and self._usable(tokens, rejected):
                        return tokens.access_token
                elif not forced and not marked and self._fresh(tokens):
                    return tokens.access_token
                now = self.clock()
                claimed = await self.store.claim_refresh(
                    mailbox_id, expected_version=stored.version, until=now + self.lease, now=now
                )
                if claimed:
                    return await self._refresh_claimed(stored)
                # Another process holds the lease (or the version just moved): use the current
                # token while it is valid, else wait for the holder to finish.
                if not forced and not marked and self._usable(tokens, rejected):
                    return tokens.access_token
                waited_since = waited_since or now
                if now - waited_since > self.lease + timedelta(seconds=5):
                    raise OAuthUnavailableError(
                        f"mailbox {mailbox_id}: another process holds the token refresh lease; retry later"
                    )
                await self.sleep(self.lease_poll_seconds)

    async def _refresh_claimed(self, stored: StoredTokens) -> Secret:
        """One refresh at the provider, counted in ``mailport_token_refreshes`` by result."""
        try:
            token = await self._refresh_at_provider(stored)
        except ReauthRequiredError:
            TOKEN_REFRESHES.labels(result="invalid_grant").inc()
            raise
        except Exception:
            TOKEN_REFRESHES.labels(result="error").inc()
            raise
        TOKEN_REFRESHES.labels(result="ok").inc()
        return token

    async def _refresh_at_provider(self, stored: StoredTokens) -> Secret:
        mailbox_id, old = stored.mailbox_id, stored.tokens
        provider = self.registry.get(stored.provider)
        try:
            if old.refresh_token is None:
                raise OAuthInvalidGrantError(f"{provider.name} gave no refresh token for this mailbox")
            app = await self.apps.resolve(stored.provider, stored.tenant_id)
            scope = " ".join(provider.scopes_for(stored.connector)) if provider.refresh_with_scope else None
            response = await self.client.refresh(provider, app, old.refresh_token, scope=scope)
        except Exception as exc:
            verdict = classify(exc)  # the one rule: only the token endpoint's invalid_grant is REAUTH
            if verdict is Verdict.REAUTH:
                said = getattr(exc, "server_said", None) or str(exc)
                await self.store.mark_reauth_required(mailbox_id, error=said)
                log.warning("mailbox %s: %s refused the refresh token: reauth", mailbox_id, provider.name)
                raise ReauthRequiredError(
                    f"mailbox {mailbox_id} must be connected again "
                    f"({provider.name} refused its refresh token)",
                    server_said=said,
                    mailbox_id=mailbox_id,
                ) from exc
            await self.store.release_refresh(mailbox_id, expected_version=stored.version)
            if verdict is Verdict.RETRY and stored.reauth_error is None and self._usable(old, None):
                log.warning(
                    "mailbox %s: %s unreachable for a refresh; using the current token until it expires",
                    mailbox_id,
                    provider.name,
                )
                return old.access_token
            raise  # ERROR (the app refused, none configured …) or no usable token: not the grant's fault
        new = TokenSet.from_response(response, previous=old)
        if new.refresh_token is None:
            new = replace(new, refresh_token=old.refresh_token)
        if not await self.store.save_refreshed(mailbox_id, expected_version=stored.version, tokens=new):
            # Cannot happen while we hold the lease unless it expired mid-request; the other
            # writer's tokens win and ours are dropped (they stay valid until they expire).
            log.warning("mailbox %s: token version moved during a refresh; keeping stored", mailbox_id)
            current = await self.store.load(mailbox_id)
            return current.tokens.access_token
        log.info("mailbox %s: access token refreshed (version %d)", mailbox_id, stored.version + 1)
        return new.access_token
