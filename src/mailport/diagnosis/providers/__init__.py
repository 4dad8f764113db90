"""The providers the catalogue knows by name, one file each, and how a failure names its provider.

Each file holds one provider's quoted words (its rules), its links and its advice; ``generic``
holds the words any server may say. This module gathers the providers' own knowledge: where their
servers are (to suggest a host when the given one does not exist) and how to recognise them from
a host name or from their words, when the caller did not say which provider it is.
"""

from __future__ import annotations

from mailport.diagnosis.model import Failure
from mailport.diagnosis.providers import aol, gmail, icloud, microsoft, yahoo, yandex
from mailport.diagnosis.rules import UNKNOWN, Provider

# In the order their words are tried (Microsoft's greeting may quote other names).
PROVIDERS: dict[str, Provider] = {
    p.key: p
    for p in (
        microsoft.PROVIDER,
        gmail.PROVIDER,
        yandex.PROVIDER,
        icloud.PROVIDER,
        yahoo.PROVIDER,
        aol.PROVIDER,
    )
}

# Where each big provider's servers are (used to suggest a host when the given one does not exist).
PROVIDER_HOSTS: dict[str, dict[str, str]] = {key: dict(p.hosts) for key, p in PROVIDERS.items()}
PROVIDER_NAMES: dict[str, str] = {key: p.name for key, p in PROVIDERS.items()}

# The providers that refuse the account's own password from mail programs.
APP_PASSWORDS_ONLY: frozenset[str] = frozenset(key for key, p in PROVIDERS.items() if p.app_passwords_only)


def infer_provider(host: str | None, words: str = "") -> str | None:
    """Best guess of the provider from the server's host name or its words (greeting, reply)."""
    if host:
        name = host.lower().rstrip(".")
        for key, provider in PROVIDERS.items():
            for suffix in provider.domains:
                if name == suffix or name.endswith("." + suffix):
                    return key
    for key, provider in PROVIDERS.items():
        if words and provider.words is not None and provider.words.search(words):
            return key
    return None


def effective_provider(failure: Failure) -> str | None:
    """The provider the caller named, else the one its host or the server's words reveal."""
    words = failure.reply.words() if failure.reply else ""
    return failure.provider or infer_provider(failure.host, words)


def advice_of(provider: str | None) -> Provider:
    """The provider's file's knowledge, or :data:`~mailport.diagnosis.rules.UNKNOWN`'s (none)."""
    return PROVIDERS.get(provider or "", UNKNOWN)


def provider_name(provider: str | None) -> str:
    return advice_of(provider).name


__all__ = [
    "APP_PASSWORDS_ONLY",
    "PROVIDERS",
    "PROVIDER_HOSTS",
    "PROVIDER_NAMES",
    "advice_of",
    "effective_provider",
    "infer_provider",
    "provider_name",
]
