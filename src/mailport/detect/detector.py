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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx

from mailport.detect.address import parse_address
from mailport.detect.autoconfig import AutoconfigDocument, AutoconfigParseError, parse
from mailport.detect.cache import TTLCache
from mailport.detect.database import ProviderDatabase, default_database
from mailport.detect.dns import DNS, LookupFailed, make_resolver
from mailport.detect.fetch import DetectionResolver, fetch_document, vet_quietly
from mailport.detect.model import (
    CONFIDENCE_ORDER,
    Address,
    Alternative,
    AuthMethod,
    Candidate,
    Confidence,
    DetectionResult,
    Hint,
    OAuthInfo,
    Provider,
    Security,
    ServerSettings,
    ServerTemplate,
)
from mailport.detect.probe import ProbeResult, ProbeTarget, probe
from mailport.detect.records import SRV_SERVICES, is_null_mx, lowest_preference_mx, srv_candidate
from mailport.net.connect import http_client
from mailport.net.guard import HostGuard
from mailport.net.trust import MailTrust

if TYPE_CHECKING:
    import dns.asyncresolver

    from mailport.config import Settings

log = logging.getLogger(__name__)

RANK_DATABASE, RANK_ONLINE, RANK_HTTPS, RANK_SRV, RANK_MX, RANK_HTTP, RANK_PROBE = range(7)
ONLINE_ISPDB_URL = "https://autoconfig.thunderbird.net/v1.1/"

HINT_MANUAL = Hint(
    "manual_configuration",
    "No settings were found for this domain: enter the IMAP and SMTP servers by hand "
    "(your email provider or IT department knows them).",
)
HINT_NO_DOMAIN = Hint("domain_not_found", "This domain does not exist in DNS; check the address for typos.")
HINT_NULL_MX = Hint("domain_accepts_no_mail", "This domain declares that it accepts no email (null MX).")
HINT_INCOMPLETE = Hint(
    "detection_incomplete",
    "Some lookups did not answer in time; the settings shown are what was found before the deadline.",
)


@dataclass(frozen=True, slots=True)
class DetectOptions:
    """Tunables; tests override the ports, production takes them from Settings."""

    timeout: float = 8.0  # overall deadline (MAILPORT_DETECT_TIMEOUT)
    step_timeout: float | None = None  # per mechanism; default: min(5 s, 3/4 of timeout)
    probe: bool = True
    online_ispdb: bool = False
    online_ispdb_url: str = ONLINE_ISPDB_URL
    cache_ttl: float = 3600.0
    https_port: int = 443
    http_port: int = 80
    imap_probe_ports: tuple[tuple[int, Security], ...] = ((993, Security.SSL), (143, Security.STARTTLS))
    smtp_probe_ports: tuple[tuple[int, Security], ...] = ((465, Security.SSL), (587, Security.STARTTLS))
    probe_timeout: float = 4.0
    probe_stagger: float = 0.05
    probe_concurrency: int = 6
    allow_private_hosts: bool = False

    @property
    def effective_step_timeout(self) -> float:
        return self.step_timeout if self.step_timeout is not None else min(5.0, self.timeout * 0.75)

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: object) -> DetectOptions:
        options = cls(
            timeout=settings.detect_timeout,
            probe=settings.detect_probe,
            online_ispdb=settings.detect_online_ispdb,
            cache_ttl=settings.detect_cache_ttl,
            allow_private_hosts=settings.allow_private_hosts,
        )
        return replace(options, **overrides)  # type: ignore[arg-type]


def configured_oauth_providers(settings: Settings) -> frozenset[str]:
    """OAuth providers this instance has an instance-wide app for (env or providers file)."""
    from mailport.oauth.providers import configured_providers

    return frozenset(configured_providers(settings))


@dataclass(frozen=True, slots=True)
class Findings:
    """Everything learnt about one domain (cached; independent of the local part)."""

    candidates: tuple[Candidate, ...] = ()
    exists: bool | None = None
    null_mx: bool = False
    timed_out: bool = False


@dataclass
class _RunState:
    """What the steps of one investigation learn besides candidates."""

    exists: bool | None = None
    null_mx: bool = False
    timed_out_ranks: list[int] = field(default_factory=list)


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
        if provider is not None and (provider.imap or provider.smtp):
            findings = Findings(
                candidates=(_provider_candidate(provider, "database", "high", RANK_DATABASE),)
            )
            return self.render(address, findings)
        findings = await self._findings(address.domain, do_probe, provider)
        return self.render(address, findings)

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
                    _provider_candidate(known, "database", "high", RANK_DATABASE),
                ),
            )
        if not findings.timed_out:
            self.cache.put(key, findings)
        return findings

    # ------------------------------------------------------------------ the network part

    async def investigate(self, domain: str, *, probe: bool) -> Findings:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.timeout
        owns_client = self._http_client is None
        client = self._http_client or http_client(
            self.guard, ssl_context=self.ssl_context, limits=httpx.Limits(max_keepalive_connections=0)
        )
        try:
            return await self._investigate(domain, client, deadline, probe=probe)
        finally:
            if owns_client:
                await client.aclose()

    async def _investigate(
        self, domain: str, client: httpx.AsyncClient, deadline: float, *, probe: bool
    ) -> Findings:
        loop = asyncio.get_running_loop()
        state = _RunState()
        steps: dict[asyncio.Task[list[Candidate]], int] = {}

        def start(rank: int, work: Awaitable[list[Candidate]], name: str) -> None:
            steps[asyncio.ensure_future(self._step(work, name, rank, state))] = rank

        https, http = self.options.https_port, self.options.http_port
        if self.options.online_ispdb:
            start(RANK_ONLINE, self._online_ispdb(client, domain), "online-ispdb")
        for host, path in _autoconfig_urls(domain):
            start(RANK_HTTPS, self._autoconfig(client, "https", host, https, path, domain), f"https {host}")
            start(RANK_HTTP, self._autoconfig(client, "http", host, http, path, domain), f"http {host}")
        start(RANK_SRV, self._srv(domain), "srv")
        start(RANK_MX, self._mx(domain, state), "mx")

        found: list[Candidate] = []
        pending = set(steps)
        timed_out = False
        try:
            while pending:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    timed_out = True
                    break
                done, pending = await asyncio.wait(
                    pending, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
                )
                for task in done:
                    found.extend(task.result())
                if state.exists is False:
                    break  # NXDOMAIN: nothing else can exist
                best = min((c.rank for c in found if c.usable), default=None)
                if best is not None and all(steps[t] > best for t in pending):
                    break
        finally:
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)

        if probe and not any(c.usable for c in found) and state.exists is not False:
            remaining = deadline - loop.time()
            if remaining > 0.05:
                found.extend(await self._probe(domain, deadline))
            if deadline - loop.time() <= 0.01:
                timed_out = True
        # A step that timed out matters only if it could have beaten the answer we have.
        best = min((c.rank for c in found if c.usable), default=RANK_PROBE + 2)
        missed = any(rank < best for rank in state.timed_out_ranks)
        return Findings(
            candidates=tuple(found),
            exists=state.exists,
            null_mx=state.null_mx,
            timed_out=timed_out or missed,
        )

    async def _step(
        self, work: Awaitable[list[Candidate]], name: str, rank: int, state: _RunState
    ) -> list[Candidate]:
        try:
            async with asyncio.timeout(self.options.effective_step_timeout):
                return await work
        except TimeoutError:
            log.info("detect: %s timed out", name)
            state.timed_out_ranks.append(rank)
        except LookupFailed as exc:
            log.info("detect: %s failed: %s", name, exc)
            state.timed_out_ranks.append(rank)
        except (httpx.HTTPError, OSError) as exc:
            log.info("detect: %s failed: %s", name, type(exc).__name__)
        return []

    async def _mx(self, domain: str, state: _RunState) -> list[Candidate]:
        answer = await self.dns.mx(domain)
        state.exists = answer.exists
        state.null_mx = is_null_mx(answer.records)
        host = lowest_preference_mx(answer.records)
        if host is None:
            return []
        match = self.database.by_mx(host)
        if match is None:
            return []
        return [
            replace(
                _provider_candidate(match.provider, "mx", match.confidence, RANK_MX),
                detail=f"MX {host} ({match.matched})",
            )
        ]

    async def _srv(self, domain: str) -> list[Candidate]:
        labels = [label for label, _, _ in SRV_SERVICES]
        answers = await asyncio.gather(*(self.dns.srv(f"{label}.{domain}") for label in labels))
        candidate = srv_candidate(domain, dict(zip(labels, answers, strict=True)))
        return [replace(candidate, rank=RANK_SRV)] if candidate else []

    async def _autoconfig(
        self, client: httpx.AsyncClient, scheme: str, host: str, port: int, path: str, domain: str
    ) -> list[Candidate]:
        body = await fetch_document(
            client,
            scheme=scheme,
            host=host,
            port=port,
            path=path,
            timeout=self.options.effective_step_timeout,
        )
        if body is None:
            return []
        try:
            doc = parse(body)
        except AutoconfigParseError as exc:
            log.info("detect: %s://%s%s: %s", scheme, host, path, exc)
            return []
        secure = scheme == "https"
        return [
            self._document_candidate(
                doc,
                source="autoconfig",
                confidence="high" if secure else "low",
                rank=RANK_HTTPS if secure else RANK_HTTP,
                detail=f"{scheme}://{host}{path}",
            )
        ]

    async def _online_ispdb(self, client: httpx.AsyncClient, domain: str) -> list[Candidate]:
        url = urlsplit(self.options.online_ispdb_url)
        host = url.hostname or ""
        port = url.port or (443 if url.scheme == "https" else 80)
        body = await fetch_document(
            client,
            scheme=url.scheme,
            host=host,
            port=port,
            path=f"{url.path.rstrip('/')}/{domain}",
            timeout=self.options.effective_step_timeout,
        )
        if body is None:
            return []
        try:
            doc = parse(body)
        except AutoconfigParseError:
            return []
        return [self._document_candidate(doc, "database", "high", RANK_ONLINE, f"online ISPDB {host}")]

    def _document_candidate(
        self, doc: AutoconfigDocument, source: str, confidence: Confidence, rank: int, detail: str
    ) -> Candidate:
        known = next((p for p in map(self.database.by_domain, doc.domains) if p is not None), None)
        provider = known or Provider(
            id=doc.provider_id or "unknown",
            name=doc.display_name or doc.provider_id,
            domains=doc.domains,
            origin="autoconfig",
        )
        return Candidate(
            source=source,  # type: ignore[arg-type]
            confidence=confidence,
            imap=doc.imap,
            smtp=doc.smtp,
            provider=provider if doc.provider_id or known else None,
            hints=doc.hints,
            rank=rank,
            detail=detail,
        )

    # ------------------------------------------------------------------ probing

    def probe_plan(self, domain: str) -> list[ProbeTarget]:
        plan: list[ProbeTarget] = []
        for port, security in self.options.imap_probe_ports:
            plan.extend(
                ProbeTarget("imap", h, port, security) for h in (f"imap.{domain}", f"mail.{domain}", domain)
            )
        for port, security in self.options.smtp_probe_ports:
            plan.extend(
                ProbeTarget("smtp", h, port, security) for h in (f"smtp.{domain}", f"mail.{domain}", domain)
            )
        return plan

    async def _probe(self, domain: str, deadline: float) -> list[Candidate]:
        loop = asyncio.get_running_loop()
        plan = self.probe_plan(domain)
        first_port = {t.host: t.port for t in reversed(plan)}
        hosts = list(dict.fromkeys(t.host for t in plan))
        try:
            async with asyncio.timeout(max(0.0, deadline - loop.time())):
                resolved = await asyncio.gather(*(vet_quietly(self.guard, h, first_port[h]) for h in hosts))
        except TimeoutError:
            return []
        vetted = dict(zip(hosts, resolved, strict=True))
        runnable = [t for t in plan if vetted.get(t.host) is not None]
        if not runnable:
            return []
        gate = asyncio.Semaphore(self.options.probe_concurrency)

        async def run(index: int, target: ProbeTarget) -> ProbeResult:
            await asyncio.sleep(index * self.options.probe_stagger)
            async with gate:
                budget = min(self.options.probe_timeout, deadline - loop.time())
                if budget <= 0:
                    return ProbeResult(target, error="no time left")
                host = vetted[target.host]
                assert host is not None
                return await probe(
                    target,
                    replace(host, port=target.port),
                    ssl_context=self.mail_ssl_context,
                    timeout=budget,
                )

        tasks = [asyncio.ensure_future(run(i, t)) for i, t in enumerate(runnable)]
        try:
            async with asyncio.timeout(max(0.0, deadline - loop.time())):
                results = await asyncio.gather(*tasks)
        except TimeoutError:
            results = [t.result() for t in tasks if t.done() and not t.cancelled()]
        finally:
            for task in tasks:
                task.cancel()
        return _probe_candidates(domain, results)

    # ------------------------------------------------------------------ rendering

    def render(self, address: Address, findings: Findings) -> DetectionResult:
        ranked = sorted(
            (c for c in findings.candidates if c.usable),
            key=lambda c: (c.rank, CONFIDENCE_ORDER[c.confidence]),
        )
        informative = [c for c in findings.candidates if not c.usable and c.provider is not None]
        hints: list[Hint] = []
        if not ranked:
            provider = informative[0].provider if informative else None
            for c in informative:
                hints.extend(c.hints)
                if c.provider:
                    hints.extend(c.provider.hints)
            if findings.exists is False:
                hints.append(HINT_NO_DOMAIN)
            elif findings.null_mx:
                hints.append(HINT_NULL_MX)
            if findings.timed_out:
                hints.append(HINT_INCOMPLETE)
            hints.append(HINT_MANUAL)
            return DetectionResult(
                email=address.email,
                domain=address.unicode_domain,
                provider=(provider.id, provider.name) if provider else None,
                imap=None,
                smtp=None,
                auth_methods=provider.auth_methods if provider else (),
                oauth=self._oauth(provider),
                hints=_unique(hints),
                source=informative[0].source if informative else "none",
                confidence=informative[0].confidence if informative else "low",
            )
        best = ranked[0]
        provider = best.provider
        if provider is not None:
            hints.extend(provider.hints)
        hints.extend(best.hints)
        if findings.timed_out:
            hints.append(HINT_INCOMPLETE)
        imap = best.imap[0].render(address) if best.imap else None
        smtp = best.smtp[0].render(address) if best.smtp else None
        return DetectionResult(
            email=address.email,
            domain=address.unicode_domain,
            provider=(provider.id, provider.name) if provider else None,
            imap=imap,
            smtp=smtp,
            auth_methods=_auth_methods(best),
            oauth=self._oauth(provider),
            hints=_unique(hints),
            source=best.source,
            confidence=best.confidence,
            alternatives=_alternatives(address, best, ranked[1:], imap, smtp),
        )

    def _oauth(self, provider: Provider | None) -> OAuthInfo | None:
        if provider is None or provider.oauth_provider is None:
            return None
        name = provider.oauth_provider
        return OAuthInfo(provider=name, usable=bool(self.oauth_configured(name)))


# ---------------------------------------------------------------------- helpers


def _autoconfig_urls(domain: str) -> list[tuple[str, str]]:
    return [
        (f"autoconfig.{domain}", "/mail/config-v1.1.xml"),
        (domain, "/.well-known/autoconfig/mail/config-v1.1.xml"),
    ]


def _provider_candidate(provider: Provider, source: str, confidence: Confidence, rank: int) -> Candidate:
    return Candidate(
        source=source,  # type: ignore[arg-type]
        confidence=confidence,
        imap=provider.imap,
        smtp=provider.smtp,
        provider=provider,
        rank=rank,
        detail=provider.id,
    )


def _auth_methods(candidate: Candidate) -> tuple[AuthMethod, ...]:
    if candidate.provider is not None and candidate.provider.auth_methods:
        return candidate.provider.auth_methods
    methods: list[AuthMethod] = []
    for server in (*candidate.imap[:1], *candidate.smtp[:1]):
        for item in server.auth:
            if item in ("oauth2", "password") and item not in methods:
                methods.append(item)  # type: ignore[arg-type]
    return tuple(methods) or ("password",)


def _unique(hints: Iterable[Hint]) -> tuple[Hint, ...]:
    seen: set[tuple[str, str]] = set()
    out: list[Hint] = []
    for hint in hints:
        if (hint.code, hint.text) not in seen:
            seen.add((hint.code, hint.text))
            out.append(hint)
    return tuple(out)


def _alternatives(
    address: Address,
    best: Candidate,
    others: list[Candidate],
    imap: ServerSettings | None,
    smtp: ServerSettings | None,
) -> tuple[Alternative, ...]:
    def ident(p: Provider | None) -> tuple[str, str] | None:
        return (p.id, p.name) if p else None

    out: list[Alternative] = []
    seen = {(imap, smtp)}

    def add(alt: Alternative) -> None:
        if (alt.imap, alt.smtp) not in seen:
            seen.add((alt.imap, alt.smtp))
            out.append(alt)

    for server in best.imap[1:]:
        add(Alternative(server.render(address), smtp, best.source, best.confidence, ident(best.provider)))
    for server in best.smtp[1:]:
        add(Alternative(imap, server.render(address), best.source, best.confidence, ident(best.provider)))
    for other in others:
        add(
            Alternative(
                other.imap[0].render(address) if other.imap else None,
                other.smtp[0].render(address) if other.smtp else None,
                other.source,
                other.confidence,
                ident(other.provider),
            )
        )
    return tuple(out)


def _probe_candidates(domain: str, results: list[ProbeResult]) -> list[Candidate]:
    """The best verified IMAP and SMTP servers found by probing (plan order = preference)."""

    def pick(protocol: str, verified: bool) -> list[ProbeResult]:
        return [
            r
            for r in results
            if r.target.protocol == protocol
            and (
                r.ok
                if verified
                else (r.reachable and r.greeting == "" and (r.error or "").startswith("certificate"))
            )
        ]

    def template(r: ProbeResult) -> ServerTemplate:
        mechanisms = {m.upper() for m in r.auth_mechanisms}
        auth: list[str] = []
        if mechanisms & {"XOAUTH2", "OAUTHBEARER"}:
            auth.append("oauth2")
        if mechanisms & {"PLAIN", "LOGIN"} or (r.target.protocol == "imap" and not r.login_disabled):
            auth.append("password")
        return ServerTemplate(r.target.host, r.target.port, r.target.security, auth=tuple(auth))

    imap_ok, smtp_ok = pick("imap", True), pick("smtp", True)
    candidates: list[Candidate] = []
    if imap_ok or smtp_ok:
        candidates.append(
            Candidate(
                source="probe",
                confidence="medium",
                imap=tuple(template(r) for r in imap_ok[:1]),
                smtp=tuple(template(r) for r in smtp_ok[:1]),
                rank=RANK_PROBE,
                detail=f"probed hosts of {domain}",
            )
        )
    untrusted_imap, untrusted_smtp = pick("imap", False), pick("smtp", False)
    if (untrusted_imap and not imap_ok) or (untrusted_smtp and not smtp_ok):
        first = (untrusted_imap or untrusted_smtp)[0]
        candidates.append(
            Candidate(
                source="probe",
                confidence="low",
                imap=tuple(template(r) for r in untrusted_imap[:1]),
                smtp=tuple(template(r) for r in untrusted_smtp[:1]),
                hints=(
                    Hint(
                        "certificate_untrusted",
                        f"A mail server answers at {first.target.host}:{first.target.port}, but its TLS "
                        f"certificate is not valid for that name ({first.error}). Ask your provider for "
                        "the correct server name.",
                    ),
                ),
                rank=RANK_PROBE + 1,
                detail=f"probed hosts of {domain} (certificate not trusted)",
            )
        )
    with contextlib.suppress(Exception):
        for r in results:
            log.debug(
                "detect: probe %s %s:%s -> ok=%s %s",
                r.target.protocol,
                r.target.host,
                r.target.port,
                r.ok,
                r.error,
            )
    return candidates
