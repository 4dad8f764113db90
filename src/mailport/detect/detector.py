"""Find a mailbox's IMAP/SMTP settings from its address: the detection pipeline.

Mechanisms, most trusted first (lower rank wins):

====  =======================  ===========  =====================================
rank  mechanism                source       confidence
====  =======================  ===========  =====================================
0     provider database        database     high
1     online ISPDB (opt-in)    database     high
2     autoconfig over HTTPS    autoconfig   high
3     DNS SRV (RFC 6186/8314)  srv          high; medium if a target is elsewhere
4     MX recognition           mx           high (known suffix); medium (registrable domain)
5     autoconfig over HTTP     autoconfig   low
6     probing (opt-in)         probe        medium (TLS verified); low otherwise
====  =======================  ===========  =====================================

A database hit answers at once without network. Otherwise the network mechanisms run
concurrently, each under a per-step deadline, all under the overall deadline
(``MAILPORT_DETECT_TIMEOUT``); the wait ends early as soon as nothing still running could
beat the best answer so far. Probing runs only when nothing else answered. Findings are
cached per domain (``MAILPORT_DETECT_CACHE_TTL``) and rendered per address.

This module is the entry point (:class:`Detector`: the cache, one investigation per domain at a
time); the race is :mod:`.race`, the mechanisms :mod:`.mechanisms`, the answer :mod:`.render`.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

import httpx

from mailport.detect.address import parse_address
from mailport.detect.cache import TTLCache
from mailport.detect.database import ProviderDatabase, default_database
from mailport.detect.dns import DNS, make_resolver
from mailport.detect.fetch import DetectionResolver
from mailport.detect.mechanisms import RANK_DATABASE, RANK_PROBE, Mechanisms, provider_candidate
from mailport.detect.model import DetectionResult, Findings, Provider
from mailport.detect.options import DetectOptions
from mailport.detect.race import RunState, race, settled_rank
from mailport.detect.render import render
from mailport.net.connect import http_client
from mailport.net.guard import HostGuard
from mailport.net.trust import MailTrust

if TYPE_CHECKING:
    import dns.asyncresolver

    from mailport.config import Settings

__all__ = ["DetectOptions", "Detector", "Findings", "configured_oauth_providers"]


def configured_oauth_providers(settings: Settings) -> frozenset[str]:
    """OAuth providers this instance has an instance-wide app for (env or providers file)."""
    from mailport.oauth.providers import configured_providers

    return frozenset(configured_providers(settings))


class Detector:
    """Detect settings; one instance per process (it holds the cache)."""

    def __init__(
        self,
        *,
        options: DetectOptions | None = None,
        resolver: dns.asyncresolver.Resolver | None = None,
        http_client: httpx.AsyncClient | None = None,
        ssl_context: ssl.SSLContext | None = None,
        mail_ssl_context: ssl.SSLContext | None = None,
        database: ProviderDatabase | None = None,
        oauth_configured: Callable[[str], bool] | None = None,
        clock: Callable[[], float] = time.monotonic,
        guard: HostGuard | None = None,
    ) -> None:
        """``guard``: vets every host detection connects to (autoconfig, ISPDB, probes); by
        default one resolving through ``resolver`` and allowing private addresses only with
        ``options.allow_private_hosts``."""
        self.options = options or DetectOptions()
        self.database = database or default_database()
        self._resolver = resolver
        self._http_client = http_client
        self.ssl_context = ssl_context or ssl.create_default_context()  # HTTPS (autoconfig)
        # Probes of mail servers trust what every mail connection trusts (mailport.net.trust).
        self.mail_ssl_context = mail_ssl_context or ssl_context or MailTrust().context()
        self.oauth_configured = oauth_configured or (lambda _provider: False)
        self.cache: TTLCache[tuple[str, bool], Findings] = TTLCache(self.options.cache_ttl, clock=clock)
        self.guard = guard or HostGuard(
            resolver=DetectionResolver(self.dns), allow_private=self.options.allow_private_hosts
        )
        self._inflight: dict[tuple[str, bool], asyncio.Future[Findings]] = {}

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: object) -> Detector:
        """The production wiring: resolver from MAILPORT_DNS_NAMESERVERS, OAuth from Settings."""
        given = kwargs.pop("options", None)
        options = given if isinstance(given, DetectOptions) else DetectOptions.from_settings(settings)
        configured = configured_oauth_providers(settings)
        if kwargs.get("mail_ssl_context") is None:
            kwargs["mail_ssl_context"] = MailTrust.from_settings(settings).context()
        kwargs.setdefault("oauth_configured", configured.__contains__)
        if kwargs.get("resolver") is None:
            kwargs["resolver"] = make_resolver(
                settings.dns_nameservers, timeout=options.effective_step_timeout
            )
        if kwargs.get("guard") is None:  # the service's rules (MAILPORT_ALLOW_PRIVATE_HOSTS, …)
            kwargs["guard"] = HostGuard.from_settings(settings)
        return cls(options=options, **kwargs)  # type: ignore[arg-type]

    @property
    def dns(self) -> DNS:
        if self._resolver is None:
            self._resolver = make_resolver((), timeout=self.options.effective_step_timeout)
        return DNS(self._resolver)

    # ------------------------------------------------------------------ public API

    async def detect(self, email: str, *, probe: bool | None = None) -> DetectionResult:
        """Settings for ``email``; raises InvalidEmailError for a malformed address only."""
        address = parse_address(email)
        do_probe = self.options.probe if probe is None else probe
        provider = self.database.by_domain(address.domain)
        if provider is not None and (provider.imap or provider.smtp or provider.pop3):
            findings = Findings(candidates=(provider_candidate(provider, "database", "high", RANK_DATABASE),))
            return render(address, findings, self.oauth_configured)
        findings = await self._findings(address.domain, do_probe, provider)
        return render(address, findings, self.oauth_configured)

    async def _findings(self, domain: str, probe: bool, known: Provider | None) -> Findings:
        """Cached findings, or one investigation shared by concurrent callers of the domain."""
        key = (domain, probe)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        running = self._inflight.get(key)
        if running is not None:
            return await asyncio.shield(running)
        task = asyncio.ensure_future(self.investigate(domain, probe=probe))
        self._inflight[key] = task
        task.add_done_callback(lambda _: self._inflight.pop(key, None))
        findings = await asyncio.shield(task)
        if known is not None:  # known to provider-db but without servers: keep its hints
            findings = replace(
                findings,
                candidates=(
                    *findings.candidates,
                    provider_candidate(known, "database", "high", RANK_DATABASE),
                ),
            )
        if not findings.timed_out:
            self.cache.put(key, findings)
        return findings

    # ------------------------------------------------------------------ the network part

    async def investigate(self, domain: str, *, probe: bool) -> Findings:
        """Ask the network about ``domain``: the race of the mechanisms, then probing when
        nothing answered (and it is allowed), all under the overall deadline."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.timeout
        owns_client = self._http_client is None
        client = self._http_client or http_client(
            self.guard, ssl_context=self.ssl_context, limits=httpx.Limits(max_keepalive_connections=0)
        )
        mechanisms = Mechanisms(
            self.dns, self.database, self.options, client, self.guard, self.mail_ssl_context
        )
        state = RunState()
        try:
            found, timed_out = await race(
                mechanisms.steps(domain, state),
                state,
                deadline=deadline,
                step_timeout=self.options.effective_step_timeout,
            )
            if probe and not any(c.usable for c in found) and state.exists is not False:
                remaining = deadline - loop.time()
                if remaining > 0.05:
                    found.extend(await mechanisms.probe(domain, deadline))
                if deadline - loop.time() <= 0.01:
                    timed_out = True
        finally:
            if owns_client:
                await client.aclose()
        # A step that timed out matters only if it could have beaten the answer we have (without
        # IMAP, any step could have: it might have found the IMAP server).
        best = settled_rank(found)
        best = RANK_PROBE + 2 if best is None else best
        missed = any(rank < best for rank in state.timed_out_ranks)
        return Findings(
            candidates=tuple(found),
            exists=state.exists,
            null_mx=state.null_mx,
            timed_out=timed_out or missed,
        )
