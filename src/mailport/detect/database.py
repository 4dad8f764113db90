"""The provider database: ISPDB + provider-db (generated, MPL-2.0) + our overrides, in memory.

Loaded once per process into plain dicts so that a lookup is a dictionary probe (the
benchmark's goal is p99 < 1 ms for a known domain, including rendering). Lookups:

* :meth:`ProviderDatabase.by_domain` — the address's domain;
* :meth:`ProviderDatabase.by_mx` — a domain's lowest-preference MX host: our MX suffix
  rules first (Microsoft 365, Google Workspace …), then ISPDB's MX entries by the host itself,
  its parent domain and its registrable domain (Public Suffix List).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from publicsuffixlist import PublicSuffixList

from mailport.detect.model import AuthMethod, Confidence, Hint, Provider, ServerTemplate
from mailport.detect.overrides import OVERRIDES, Override

_AUTH_METHODS: frozenset[str] = frozenset({"oauth2", "password", "app_password"})


@dataclass(frozen=True, slots=True)
class MXMatch:
    provider: Provider
    confidence: Confidence
    matched: str  # the suffix or domain that matched


def provider_from_json(data: dict[str, Any]) -> Provider:
    auth: tuple[AuthMethod, ...] = tuple(m for m in data.get("auth_methods", ()) if m in _AUTH_METHODS)
    return Provider(
        id=str(data["id"]),
        name=str(data["name"]),
        domains=tuple(data.get("domains", ())),
        imap=tuple(ServerTemplate.from_json(s) for s in data.get("imap", ())),
        smtp=tuple(ServerTemplate.from_json(s) for s in data.get("smtp", ())),
        pop3=tuple(ServerTemplate.from_json(s) for s in data.get("pop3", ())),
        auth_methods=auth,
        oauth_provider=data.get("oauth_provider"),
        hints=tuple(Hint.from_json(h) for h in data.get("hints", ())),
        origin=str(data.get("origin", "ispdb")),
    )


class ProviderDatabase:
    """An immutable in-memory index of providers by domain and by MX suffix."""

    def __init__(self, providers: Iterable[Provider], overrides: Iterable[Override] = ()) -> None:
        base = {p.id: p for p in providers}
        self._domains: dict[str, Provider] = {}
        for provider in base.values():
            for domain in provider.domains:
                self._domains.setdefault(domain, provider)
        self._mx_suffixes: dict[str, Provider] = {}
        self._by_id: dict[str, Provider] = dict(base)
        for override in overrides:
            provider = override.provider
            adopted = [d for pid in override.adopt if pid in base for d in base[pid].domains]
            domains = tuple(dict.fromkeys([*provider.domains, *adopted]))
            merged = Provider(
                id=provider.id,
                name=provider.name,
                domains=domains,
                imap=provider.imap,
                smtp=provider.smtp,
                pop3=provider.pop3,
                auth_methods=provider.auth_methods,
                oauth_provider=provider.oauth_provider,
                hints=provider.hints,
                origin=provider.origin,
            )
            self._by_id[merged.id] = merged
            for domain in domains:
                self._domains[domain] = merged
            for suffix in override.mx_suffixes:
                self._mx_suffixes[suffix] = merged
        self._psl: PublicSuffixList | None = None

    @property
    def providers(self) -> list[Provider]:
        return list(self._by_id.values())

    def domains(self) -> list[str]:
        return list(self._domains)

    def get(self, provider_id: str) -> Provider | None:
        return self._by_id.get(provider_id)

    def by_domain(self, domain: str) -> Provider | None:
        """The provider of ``domain`` (ASCII form); provider-db's ``*.example`` covers subdomains."""
        domain = domain.lower().rstrip(".")
        found = self._domains.get(domain)
        if found is None and "." in domain:
            found = self._domains.get("*." + domain.split(".", 1)[1])
        return found

    def registrable_domain(self, host: str) -> str | None:
        if self._psl is None:
            self._psl = PublicSuffixList()
        result: str | None = self._psl.privatesuffix(host)
        return result

    def by_mx(self, mx_host: str) -> MXMatch | None:
        """Recognise a hosted provider from a domain's lowest-preference MX host."""
        host = mx_host.lower().rstrip(".")
        labels = host.split(".")
        # Our suffix rules, most specific first: "x.mail.protection.outlook.com" -> Microsoft 365.
        for i in range(len(labels) - 1):
            suffix = ".".join(labels[i:])
            provider = self._mx_suffixes.get(suffix)
            if provider is not None:
                return MXMatch(provider, "high", suffix)
        # ISPDB lists some MX hosts/domains among a provider's domains.
        for candidate, confidence in ((host, "high"), (".".join(labels[1:]), "high")):
            provider = self._domains.get(candidate)
            if provider is not None and provider.imap:
                return MXMatch(provider, confidence, candidate)  # type: ignore[arg-type]
        registrable = self.registrable_domain(host)
        if registrable:
            provider = self._domains.get(registrable)
            if provider is not None and provider.imap:
                return MXMatch(provider, "medium", registrable)
        return None


def load_generated() -> list[Provider]:
    """The providers of ``data/ispdb.json`` (ISPDB + provider-db, MPL-2.0)."""
    text = resources.files("mailport.detect").joinpath("data/ispdb.json").read_text(encoding="utf-8")
    data = json.loads(text)
    return [provider_from_json(p) for p in data["providers"]]


@cache
def default_database() -> ProviderDatabase:
    """The shipped database, loaded once per process."""
    return ProviderDatabase(load_generated(), OVERRIDES)
