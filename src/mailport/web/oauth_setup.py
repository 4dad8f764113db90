"""What an operator must set before "Connect with Google / Microsoft" works.

A provider that detection recognised but that has no OAuth app (neither instance-wide nor the
tenant's own) is still shown in the wizard, disabled, with this guidance: a button that silently
disappears leaves a newcomer wondering whether detection failed.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OAuthSetup:
    provider: str
    name: str
    variables: tuple[str, ...]  # what the operator sets (environment or providers file)
    guide: str  # mailport's step-by-step page, in the docs shipped with mailport
    console_url: str | None  # where the app is registered at the provider


_KNOWN = {
    "google": (
        ("MAILPORT_GOOGLE_CLIENT_ID", "MAILPORT_GOOGLE_CLIENT_SECRET"),
        "docs/oauth-google.md",
        "https://console.cloud.google.com/apis/credentials",
    ),
    "microsoft": (
        ("MAILPORT_MICROSOFT_CLIENT_ID", "MAILPORT_MICROSOFT_CLIENT_SECRET", "MAILPORT_MICROSOFT_TENANT"),
        "docs/oauth-microsoft.md",
        "https://entra.microsoft.com/#view/Microsoft_AAD_RegisteredApps/ApplicationsListBlade",
    ),
}


def oauth_setup(provider: str, name: str) -> OAuthSetup:
    """The guidance for ``provider``; one added by the providers file takes its app there."""
    variables, guide, console = _KNOWN.get(
        provider,
        (("client_id", "client_secret in MAILPORT_OAUTH_PROVIDERS_FILE"), "docs/oauth-google.md", None),
    )
    return OAuthSetup(provider, name, variables, guide, console)
