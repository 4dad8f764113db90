"""OAuth2 for mail: providers as data, authorization code + PKCE, device code, token manager.

The core (providers, client, identity, state, authcode, device, tokens) touches no database:
storage comes in through small ports (:class:`~mailport.oauth.state.StateStore`,
:class:`~mailport.oauth.tokens.TokenStore`, :class:`~mailport.oauth.apps.AppResolver`).
``repository`` implements them on the database. The use cases behind the HTTP routes and the
CLI are ``signin`` (browser), ``device_poller`` (device), ``accounts`` (keeping a signed-in
account on its mailbox, through the mailbox service) and ``tenant_apps``; ``connect`` puts
them together into the one service the routes call.
"""

from mailport.oauth.apps import AppResolver, InstanceApps
from mailport.oauth.authcode import AuthorizationCodeFlow, AuthorizationRequest, ConnectedAccount
from mailport.oauth.client import OAuthClient, TokenResponse
from mailport.oauth.device import DeviceAuthorization, DeviceFlow, DevicePoll
from mailport.oauth.providers import (
    MailServer,
    OAuthApp,
    OAuthProvider,
    ProviderRegistry,
    configured_providers,
)
from mailport.oauth.service import OAuthServices, build_oauth
from mailport.oauth.state import OAuthState, StateCodec, StateStore
from mailport.oauth.tokens import StoredTokens, TokenManager, TokenSet, TokenStore

__all__ = [
    "AppResolver",
    "AuthorizationCodeFlow",
    "AuthorizationRequest",
    "ConnectedAccount",
    "DeviceAuthorization",
    "DeviceFlow",
    "DevicePoll",
    "InstanceApps",
    "MailServer",
    "OAuthApp",
    "OAuthClient",
    "OAuthProvider",
    "OAuthServices",
    "OAuthState",
    "ProviderRegistry",
    "StateCodec",
    "StateStore",
    "StoredTokens",
    "TokenManager",
    "TokenResponse",
    "TokenSet",
    "TokenStore",
    "build_oauth",
    "configured_providers",
]
