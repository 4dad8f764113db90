"""Which connector a sign-in is for, and so which scopes it asks for and checks.

A mailbox at Google or Microsoft is read either over IMAP/SMTP with XOAUTH2 (``imap``) or
through the provider's mail API (``gmail_api``, ``graph``; :attr:`OAuthProvider.apis`). The
two need different grants — Gmail's IMAP scope is ``https://mail.google.com/``, its API scope
``gmail.modify``; Outlook's IMAP/SMTP scopes belong to ``outlook.office.com``, Graph's to
``graph.microsoft.com`` — so every flow (browser, device, connect link, wizard) carries the
connector from its start to the mailbox it creates. One place decides what is valid, so the
API, the CLI and the wizard refuse the same things with the same words.
"""

from __future__ import annotations

from mailport.errors import InputError
from mailport.oauth.providers import OAuthProvider, ProviderRegistry

IMAP = "imap"
# Scopes that identify the user or ask for a refresh token rather than mail access.
IDENTITY_SCOPES = frozenset({"openid", "email", "profile", "offline_access"})


def api_connectors(registry: ProviderRegistry) -> dict[str, str]:
    """Every API connector a provider offers, to the provider offering it (``graph`` → ``microsoft``)."""
    return {key: provider.key for provider in registry for key in provider.apis}


def known_connectors(registry: ProviderRegistry) -> list[str]:
    return [IMAP, *sorted(api_connectors(registry))]


def provider_for(registry: ProviderRegistry, connector: str) -> str | None:
    """The provider an API connector needs (None for ``imap``); unknown keys are refused."""
    if connector == IMAP:
        return None
    offered = api_connectors(registry)
    if connector not in offered:
        raise InputError(
            f"connector: unknown connector {connector!r}",
            field="connector",
            hint=f"Use one of {', '.join(known_connectors(registry))}.",
        )
    return offered[connector]


def check_connector(registry: ProviderRegistry, provider_key: str, connector: str) -> str:
    """``connector`` for a sign-in at ``provider_key``: ``imap``, or an API that provider offers
    (``connector: graph needs provider microsoft`` otherwise)."""
    needed = provider_for(registry, connector)
    if needed is not None and needed != provider_key:
        raise InputError(
            f"connector: {connector} needs provider {needed}",
            field="connector",
            hint=f"Sign in with {needed} for the {connector} connector, or use connector imap.",
        )
    return connector


def mail_scopes(provider: OAuthProvider, connector: str) -> list[str]:
    """The scopes that give ``connector`` the mailbox (not the identity ones)."""
    return [s for s in provider.scopes_for(connector) if s.lower() not in IDENTITY_SCOPES]


def _granted(scope: str, have: set[str]) -> bool:
    """Providers answer with full URIs or short names (Microsoft: ``Mail.ReadWrite``)."""
    lowered = scope.lower()
    return lowered in have or any(lowered.endswith("/" + g) for g in have if g)


def missing_mail_scopes(provider: OAuthProvider, granted: str | None, connector: str = IMAP) -> list[str]:
    """The connector's mail scopes absent from the granted ones (users can untick them at Google)."""
    if granted is None:
        return []  # RFC 6749 5.1: scope omitted = as requested
    have = {s.lower() for s in granted.split()}
    return [s for s in mail_scopes(provider, connector) if not _granted(s, have)]


def granted_connector(provider: OAuthProvider, granted: str | None) -> str:
    """The connector a grant was made for, judged by its scopes: an API whose mail scopes are all
    granted, else ``imap``. Only for a device sign-in whose row was written before its
    connector was stored (migration 0020): every newer flow carries the connector it asked for."""
    if granted is None:
        return IMAP
    for key in sorted(provider.apis):
        if not missing_mail_scopes(provider, granted, key):
            return key
    return IMAP
