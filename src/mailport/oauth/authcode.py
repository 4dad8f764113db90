"""Authorization code grant with PKCE (S256): the "Connect with Google / Microsoft" buttons.

``start`` builds the provider's authorization URL with a sealed, single-use ``state``;
``complete`` checks that state, shows a provider error (``access_denied`` …) plainly, exchanges
the code with the PKCE verifier, checks that the mail permission was granted and learns the
connected address. Storing the tokens and creating the mailbox is the caller's job.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from mailport.crypto import Secret
from mailport.errors import OAuthDeniedError, OAuthStateInvalidError
from mailport.oauth.apps import AppResolver
from mailport.oauth.client import Clock, OAuthClient, utcnow
from mailport.oauth.identity import connected_address
from mailport.oauth.providers import MailServer, OAuthApp, OAuthProvider, ProviderRegistry
from mailport.oauth.state import OAuthState, StateCodec, StateStore, s256_challenge
from mailport.oauth.tokens import TokenSet

# Scopes that identify the user or ask for a refresh token rather than mail access.
IDENTITY_SCOPES = frozenset({"openid", "email", "profile", "offline_access"})


@dataclass(frozen=True)
class AuthorizationRequest:
    authorization_url: str
    state: str
    expires_in: int


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


def missing_mail_scopes(provider: OAuthProvider, granted: str | None) -> list[str]:
    """Requested mail scopes absent from the granted ones (users can untick them at Google)."""
    if granted is None:
        return []  # RFC 6749 5.1: scope omitted = as requested
    have = {s.lower() for s in granted.split()}

    def present(scope: str) -> bool:
        lowered = scope.lower()
        return lowered in have or any(lowered.endswith("/" + g) for g in have if g)

    return [s for s in provider.scopes if s.lower() not in IDENTITY_SCOPES and not present(s)]


class AuthorizationCodeFlow:
    def __init__(
        self,
        *,
        registry: ProviderRegistry,
        client: OAuthClient,
        apps: AppResolver,
        states: StateCodec,
        state_store: StateStore,
        public_url: str,
        clock: Clock = utcnow,
    ) -> None:
        self._registry = registry
        self._client = client
        self._apps = apps
        self._states = states
        self._state_store = state_store
        self._public_url = public_url.rstrip("/")
        self._clock = clock

    def redirect_uri(self, provider: str) -> str:
        return f"{self._public_url}/v1/oauth/{provider}/callback"

    async def start(
        self,
        provider_key: str,
        *,
        tenant_id: str | None,
        email: str | None = None,
        mailbox_id: str | None = None,
        purpose: str | None = None,
        return_url: str | None = None,
    ) -> AuthorizationRequest:
        provider = self._registry.get(provider_key)
        app = await self._apps.resolve(provider_key, tenant_id)
        token, state = self._states.issue(
            provider_key,
            tenant_id=tenant_id,
            mailbox_id=mailbox_id,
            purpose=purpose,
            return_url=return_url,
            login_hint=email,
        )
        params = {
            "response_type": "code",
            "client_id": app.client_id,
            "redirect_uri": self.redirect_uri(provider_key),
            "scope": provider.scope,
            "state": token,
            "code_challenge": s256_challenge(state.verifier),
            "code_challenge_method": "S256",
            **provider.authorize_params,
        }
        if email:
            params["login_hint"] = email
        url = provider.url(provider.authorization_endpoint, app.tenant)
        separator = "&" if "?" in url else "?"
        expires_in = int((state.expires_at - self._clock()).total_seconds())
        return AuthorizationRequest(f"{url}{separator}{urlencode(params)}", token, expires_in)

    def peek(self, state: str, provider_key: str) -> OAuthState:
        """Open ``state`` without using it up (raises when invalid or expired)."""
        return self._states.open(state, provider=provider_key)

    async def complete(
        self,
        provider_key: str,
        *,
        state: str | None,
        code: str | None = None,
        error: str | None = None,
        error_description: str | None = None,
    ) -> ConnectedAccount:
        """Handle the provider's redirect to ``/v1/oauth/{provider}/callback``."""
        provider = self._registry.get(provider_key)
        opened = await self._states.consume(state or "", self._state_store, provider=provider_key)
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
        app = await self._apps.resolve(provider_key, opened.tenant_id)
        response = await self._client.exchange_code(
            provider,
            app,
            code=Secret(code),
            redirect_uri=self.redirect_uri(provider_key),
            verifier=opened.verifier,
        )
        missing = missing_mail_scopes(provider, response.scope)
        if missing:
            raise OAuthDeniedError(
                f"{provider.name} did not grant the mail permission ({', '.join(missing)})",
                hint="Sign in again and leave the mail access box ticked on the consent screen.",
                provider=provider_key,
            )
        email = await connected_address(self._client, provider, app, response, now=self._clock())
        return ConnectedAccount(
            provider=provider_key,
            email=email,
            tokens=TokenSet.from_response(response),
            state=opened,
            imap=provider.imap,
            smtp=provider.smtp,
            app=app,
        )
