"""Authorization code grant with PKCE (S256): the "Connect with Google / Microsoft" buttons.

``start`` issues a sealed, single-use ``state`` and answers with the URL of mailport's own
start page (``/v1/oauth/{provider}/start``), not the provider's; ``begin`` (that page) binds
the sign-in to the browser that opens it — a cookie holding the state's sealed ``binding`` —
and sends it on to the provider; ``complete`` (the callback) accepts the state only from that
browser, shows a provider error (``access_denied`` …) plainly, exchanges the code with the
PKCE verifier, checks that the mail permission was granted and learns the connected address.
Tokens obtained but not kept (any failure after the exchange) are revoked, never just dropped.
Storing the tokens and creating the mailbox is the caller's job.

Why the start page: the API and the CLI hand out the URL, so the browser that opens it is
known only when it arrives. A start link is single-use: the first browser to open it is bound,
another browser is refused (``oauth_browser_mismatch``), so a provider URL or a start link
forwarded to someone else cannot attach their mailbox to the sender's tenant. See docs/oauth.md.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from mailport.clock import Clock, utc_now
from mailport.crypto import Secret
from mailport.errors import OAuthBrowserMismatchError, OAuthDeniedError, OAuthStateInvalidError
from mailport.oauth.apps import AppResolver
from mailport.oauth.client import OAuthClient, TokenResponse
from mailport.oauth.connectors import IMAP, check_connector, missing_mail_scopes
from mailport.oauth.identity import Identity, connected_address
from mailport.oauth.providers import MailServer, OAuthApp, OAuthProvider, ProviderRegistry
from mailport.oauth.state import OAuthState, StateCodec, StateStore, s256_challenge
from mailport.oauth.tokens import TokenSet

BINDING_COOKIE_PREFIX = "mailport_oauth_"


@dataclass(frozen=True)
class AuthorizationRequest:
    authorization_url: str
    state: str
    expires_in: int


@dataclass(frozen=True, repr=False)
class BrowserStart:
    """What the start page answers: set this cookie, then go to the provider."""

    provider_url: str
    cookie_name: str
    cookie_value: Secret
    cookie_path: str
    max_age: int
    secure: bool

    def __repr__(self) -> str:
        return f"BrowserStart(cookie_name={self.cookie_name!r}, max_age={self.max_age})"


@dataclass(frozen=True)
class ConnectedAccount:
    """What a finished sign-in gives the caller, to store and to create/update the mailbox."""

    provider: str
    email: str
    tokens: TokenSet
    imap: MailServer
    smtp: MailServer | None
    app: OAuthApp
    state: OAuthState | None = None  # None for the device flow
    email_confirmed: bool = True  # False: not named by the provider; the first login confirms it
    connector: str = IMAP  # what will read the mailbox: imap, or the provider's API (gmail_api, graph)


async def account_of(
    client: OAuthClient,
    key: str,
    provider: OAuthProvider,
    app: OAuthApp,
    response: TokenResponse,
    identify: Awaitable[Identity],
    *,
    state: OAuthState | None = None,
    connector: str = IMAP,
) -> ConnectedAccount:
    """The account that the tokens in ``response`` connect, as ``identify`` learns it (both
    grants end here); tokens whose account is not learned are revoked, never just dropped."""
    try:
        identity = await identify
    except BaseException:
        await client.discard(
            provider, app, access_token=response.access_token, refresh_token=response.refresh_token
        )
        raise
    return ConnectedAccount(
        provider=key,
        email=identity.email,
        tokens=TokenSet.from_response(response),
        state=state,
        imap=provider.imap,
        smtp=provider.smtp,
        app=app,
        email_confirmed=identity.confirmed,
        connector=connector,
    )


@dataclass(kw_only=True, eq=False, repr=False)
class AuthorizationCodeFlow:
    registry: ProviderRegistry
    client: OAuthClient
    apps: AppResolver
    states: StateCodec
    state_store: StateStore
    public_url: str
    clock: Clock = utc_now

    def __post_init__(self) -> None:
        self.public_url = self.public_url.rstrip("/")

    def redirect_uri(self, provider: str) -> str:
        return f"{self.public_url}/v1/oauth/{provider}/callback"

    def start_url(self, provider: str, state: str) -> str:
        return f"{self.public_url}/v1/oauth/{provider}/start?{urlencode({'state': state})}"

    async def start(
        self,
        provider_key: str,
        *,
        tenant_id: str | None,
        email: str | None = None,
        mailbox_id: str | None = None,
        purpose: str | None = None,
        return_url: str | None = None,
        connector: str = IMAP,
        owner: str | None = None,
    ) -> AuthorizationRequest:
        """Issue the state; the URL is mailport's start page, which binds the browser. The state
        carries ``connector``, which decides the scopes asked for and checked."""
        self.registry.get(provider_key)
        check_connector(self.registry, provider_key, connector)
        await self.apps.resolve(provider_key, tenant_id)  # no app configured: fail now, not later
        token, state = self.states.issue(
            provider_key,
            tenant_id=tenant_id,
            mailbox_id=mailbox_id,
            purpose=purpose,
            return_url=return_url,
            login_hint=email,
            connector=connector,
            owner=owner,
        )
        expires_in = int((state.expires_at - self.clock()).total_seconds())
        return AuthorizationRequest(self.start_url(provider_key, token), token, expires_in)

    async def begin(
        self, provider_key: str, *, state: str | None, cookies: Mapping[str, str]
    ) -> BrowserStart:
        """The start page: bind the sign-in to this browser, then on to the provider.

        The first browser to open a start link is bound (the link is single-use); the same
        browser may open it again (a reload), any other browser is refused."""
        opened = self.states.open(state or "", provider=provider_key)
        if not self._bound(opened, cookies) and not await self.state_store.consume(
            f"start:{opened.nonce}", expires_at=opened.expires_at
        ):
            raise OAuthBrowserMismatchError(
                "this sign-in link was already opened in another browser; it is single-use"
            )
        assert state is not None
        return BrowserStart(
            provider_url=await self._provider_url(provider_key, state, opened),
            cookie_name=self.cookie_name(opened),
            cookie_value=opened.binding,
            # as the browser sees it: behind a proxy, the public URL may carry a path prefix
            cookie_path=f"{urlsplit(self.public_url).path}/v1/oauth/{provider_key}/",
            max_age=max(1, int((opened.expires_at - self.clock()).total_seconds())),
            secure=urlsplit(self.public_url).scheme == "https",
        )

    @staticmethod
    def cookie_name(state: OAuthState) -> str:
        """One cookie per sign-in, so two sign-ins in two tabs do not overwrite each other."""
        return BINDING_COOKIE_PREFIX + state.nonce

    def _bound(self, state: OAuthState, cookies: Mapping[str, str]) -> bool:
        presented = cookies.get(self.cookie_name(state), "")
        return hmac.compare_digest(presented.encode(), state.binding.reveal().encode())

    async def _provider_url(self, provider_key: str, token: str, state: OAuthState) -> str:
        provider = self.registry.get(provider_key)
        app = await self.apps.resolve(provider_key, state.tenant_id)
        params = {
            "response_type": "code",
            "client_id": app.client_id,
            "redirect_uri": self.redirect_uri(provider_key),
            "scope": " ".join(provider.scopes_for(state.connector)),
            "state": token,
            "code_challenge": s256_challenge(state.verifier),
            "code_challenge_method": "S256",
            **provider.authorize_params,
        }
        if state.login_hint:
            params["login_hint"] = state.login_hint
        url = provider.url(provider.authorization_endpoint, app.tenant)
        separator = "&" if "?" in url else "?"
        return f"{url}{separator}{urlencode(params)}"

    def peek(self, state: str, provider_key: str) -> OAuthState:
        """Open ``state`` without using it up (raises when invalid or expired)."""
        return self.states.open(state, provider=provider_key)

    async def complete(
        self,
        provider_key: str,
        *,
        state: str | None,
        code: str | None = None,
        error: str | None = None,
        error_description: str | None = None,
        cookies: Mapping[str, str],
    ) -> ConnectedAccount:
        """Handle the provider's redirect to ``/v1/oauth/{provider}/callback``."""
        provider = self.registry.get(provider_key)
        peeked = self.states.open(state or "", provider=provider_key)
        if not self._bound(peeked, cookies):
            raise OAuthBrowserMismatchError(
                f"this {provider.name} sign-in was started in another browser; it was not completed"
            )
        opened = await self.states.consume(state or "", self.state_store, provider=provider_key)
        if error:
            said = f"{error}: {error_description}" if error_description else error
            message = (
                f"{provider.name} sign-in was cancelled or refused ({said})"
                if error == "access_denied"
                else f"{provider.name} sign-in failed ({said})"
            )
            raise OAuthDeniedError(message, server_said=said[:500], provider=provider_key)
        if not code:
            raise OAuthStateInvalidError(f"{provider.name} redirected back without a code or an error")
        app = await self.apps.resolve(provider_key, opened.tenant_id)
        response = await self.client.exchange_code(
            provider,
            app,
            code=Secret(code),
            redirect_uri=self.redirect_uri(provider_key),
            verifier=opened.verifier,
        )
        identify = self._identity(
            provider, app, response, given=opened.login_hint, connector=opened.connector
        )
        return await account_of(
            self.client,
            provider_key,
            provider,
            app,
            response,
            identify,
            state=opened,
            connector=opened.connector,
        )

    async def _identity(
        self,
        provider: OAuthProvider,
        app: OAuthApp,
        response: TokenResponse,
        *,
        given: str | None,
        connector: str,
    ) -> Identity:
        missing = missing_mail_scopes(provider, response.scope, connector)
        if missing:
            raise OAuthDeniedError(
                f"{provider.name} did not grant the mail permission ({', '.join(missing)})",
                hint="Sign in again and leave the mail access box ticked on the consent screen.",
                provider=provider.key,
            )
        return await connected_address(self.client, provider, app, response, now=self.clock(), given=given)
