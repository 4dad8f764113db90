"""The detection mechanisms: what each one asks and how its answer becomes a :class:`Candidate`.

Ranks, most trusted first (lower wins): the provider database, the online ISPDB, autoconfig
over HTTPS, DNS SRV, MX recognition, autoconfig over HTTP, probing. Timing is
:mod:`mailport.detect.race`'s job; rendering for an address, :mod:`mailport.detect.render`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

import httpx

from mailport.detect.autoconfig import AutoconfigDocument, AutoconfigParseError, parse
from mailport.detect.database import ProviderDatabase
from mailport.detect.dns import DNS
from mailport.detect.fetch import fetch_document, vet_quietly
from mailport.detect.model import Candidate, Confidence, Hint, Provider, ServerTemplate
from mailport.detect.options import DetectOptions
from mailport.detect.probe import ProbeResult, ProbeTarget, probe
from mailport.detect.race import RunState, Step
from mailport.detect.records import SRV_SERVICES, is_null_mx, lowest_preference_mx, srv_candidate
from mailport.net.guard import HostGuard

log = logging.getLogger(__name__)

RANK_DATABASE, RANK_ONLINE, RANK_HTTPS, RANK_SRV, RANK_MX, RANK_HTTP, RANK_PROBE = range(7)


def provider_candidate(provider: Provider, source: str, confidence: Confidence, rank: int) -> Candidate:
    """A provider database entry as a candidate (rank 0, or MX recognition's)."""
    return Candidate(
        source=source,  # type: ignore[arg-type]
        confidence=confidence,
        imap=provider.imap,
        smtp=provider.smtp,
        pop3=provider.pop3,
        provider=provider,
        rank=rank,
        detail=provider.id,
    )


def autoconfig_urls(domain: str) -> list[tuple[str, str]]:
    return [
        (f"autoconfig.{domain}", "/mail/config-v1.1.xml"),
        (domain, "/.well-known/autoconfig/mail/config-v1.1.xml"),
    ]


@dataclass(frozen=True)
class Mechanisms:
    """The network mechanisms of one investigation, with what they need to ask."""

    dns: DNS
    database: ProviderDatabase
    options: DetectOptions
    client: httpx.AsyncClient
    guard: HostGuard
    mail_ssl_context: ssl.SSLContext

    def steps(self, domain: str, state: RunState) -> list[Step]:
        """Everything but probing, in the order they start."""
        https, http = self.options.https_port, self.options.http_port
        steps: list[Step] = []
        if self.options.online_ispdb:
            steps.append(Step(RANK_ONLINE, "online-ispdb", self.online_ispdb(domain)))
        for host, path in autoconfig_urls(domain):
            steps.append(
                Step(RANK_HTTPS, f"https {host}", self.autoconfig("https", host, https, path, domain))
            )
            steps.append(Step(RANK_HTTP, f"http {host}", self.autoconfig("http", host, http, path, domain)))
        steps.append(Step(RANK_SRV, "srv", self.srv(domain)))
        steps.append(Step(RANK_MX, "mx", self.mx(domain, state)))
        return steps

    async def mx(self, domain: str, state: RunState) -> list[Candidate]:
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
                provider_candidate(match.provider, "mx", match.confidence, RANK_MX),
                detail=f"MX {host} ({match.matched})",
            )
        ]

    async def srv(self, domain: str) -> list[Candidate]:
        labels = [label for label, _, _ in SRV_SERVICES]
        answers = await asyncio.gather(*(self.dns.srv(f"{label}.{domain}") for label in labels))
        candidate = srv_candidate(domain, dict(zip(labels, answers, strict=True)))
        return [replace(candidate, rank=RANK_SRV)] if candidate else []

    async def autoconfig(self, scheme: str, host: str, port: int, path: str, domain: str) -> list[Candidate]:
        body = await fetch_document(
            self.client,
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

    async def online_ispdb(self, domain: str) -> list[Candidate]:
        url = urlsplit(self.options.online_ispdb_url)
        host = url.hostname or ""
        port = url.port or (443 if url.scheme == "https" else 80)
        body = await fetch_document(
            self.client,
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
            pop3=doc.pop3,
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

    def pop3_probe_plan(self, domain: str) -> list[ProbeTarget]:
        """POP3's usual names and ports, probed only when no IMAP server answered."""
        return [
            ProbeTarget("pop3", h, port, security)
            for port, security in self.options.pop3_probe_ports
            for h in (f"pop3.{domain}", f"pop.{domain}", f"mail.{domain}")
        ]

    async def probe(self, domain: str, deadline: float) -> list[Candidate]:
        """The last resort: connect to the usual host names and ports (staggered, bounded);
        POP3's only after IMAP's all failed, in what is left of the same deadline."""
        results = await self._probe_plan(self.probe_plan(domain), deadline)
        imap_answered = any(
            r.target.protocol == "imap" and (r.greeting or (r.error or "").startswith("certificate"))
            for r in results
        )
        if not imap_answered:
            results += await self._probe_plan(self.pop3_probe_plan(domain), deadline)
        return probe_candidates(domain, results)

    async def _probe_plan(self, plan: list[ProbeTarget], deadline: float) -> list[ProbeResult]:
        loop = asyncio.get_running_loop()
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
        return results


def _pop3_user(capabilities: tuple[str, ...]) -> bool:
    """USER/PASS is offered: CAPA lists USER, or the server has no CAPA (RFC 1939 only)."""
    return not capabilities or any(c.split()[:1] == ["USER"] for c in capabilities)


def probe_candidates(domain: str, results: list[ProbeResult]) -> list[Candidate]:
    """The best verified IMAP, POP3 and SMTP servers found by probing (plan order = preference)."""

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
        if (
            mechanisms & {"PLAIN", "LOGIN"}
            or (r.target.protocol == "imap" and not r.login_disabled)
            or (r.target.protocol == "pop3" and _pop3_user(r.capabilities))
        ):
            auth.append("password")
        return ServerTemplate(r.target.host, r.target.port, r.target.security, auth=tuple(auth))

    imap_ok, smtp_ok, pop3_ok = pick("imap", True), pick("smtp", True), pick("pop3", True)
    candidates: list[Candidate] = []
    if imap_ok or smtp_ok or pop3_ok:
        candidates.append(
            Candidate(
                source="probe",
                confidence="medium",
                imap=tuple(template(r) for r in imap_ok[:1]),
                smtp=tuple(template(r) for r in smtp_ok[:1]),
                pop3=tuple(template(r) for r in pop3_ok[:1]),
                rank=RANK_PROBE,
                detail=f"probed hosts of {domain}",
            )
        )
    untrusted_imap, untrusted_smtp, untrusted_pop3 = (
        pick("imap", False),
        pick("smtp", False),
        pick("pop3", False),
    )
    if (
        (untrusted_imap and not imap_ok)
        or (untrusted_smtp and not smtp_ok)
        or (untrusted_pop3 and not pop3_ok)
    ):
        first = (untrusted_imap or untrusted_pop3 or untrusted_smtp)[0]
        candidates.append(
            Candidate(
                source="probe",
                confidence="low",
                imap=tuple(template(r) for r in untrusted_imap[:1]),
                smtp=tuple(template(r) for r in untrusted_smtp[:1]),
                pop3=tuple(template(r) for r in untrusted_pop3[:1]),
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
