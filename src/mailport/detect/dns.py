"""DNS for detection: one injectable asyncio resolver (dnspython) and typed lookups.

``MAILPORT_DNS_NAMESERVERS`` (comma-separated ``ip[:port]``, ``[v6]:port`` for IPv6) points
it at specific servers — tests use a local DNS server on a free loopback port; empty means
the system resolver. Every lookup returns a small typed answer; "does not exist" is an
answer, a timeout or server failure is :class:`LookupFailed`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver

from mailport.detect.records import MXRecord, SRVRecord
from mailport.errors import ConfigurationError


class LookupFailed(Exception):
    """The DNS did not answer (timeout, SERVFAIL): unknown, not 'does not exist'."""


@dataclass(frozen=True, slots=True)
class MXAnswer:
    exists: bool  # False: NXDOMAIN
    records: tuple[MXRecord, ...] = ()


def parse_nameserver(spec: str) -> tuple[str, int]:
    """``"127.0.0.1:5353"`` -> ("127.0.0.1", 5353); ``"[::1]:53"``; ``"9.9.9.9"`` -> port 53."""
    spec = spec.strip()
    host, port = spec, 53
    if spec.startswith("["):
        host, _, rest = spec[1:].partition("]")
        if rest.startswith(":"):
            port = int(rest[1:])
    elif spec.count(":") == 1:
        host, port_text = spec.split(":")
        port = int(port_text)
    try:
        ipaddress.ip_address(host)
    except ValueError as exc:
        raise ConfigurationError(f"MAILPORT_DNS_NAMESERVERS: {spec!r} is not ip[:port]") from exc
    if not 0 < port < 65536:
        raise ConfigurationError(f"MAILPORT_DNS_NAMESERVERS: bad port in {spec!r}")
    return host, port


def make_resolver(nameservers: Sequence[str] = (), *, timeout: float = 5.0) -> dns.asyncresolver.Resolver:
    """A resolver for ``nameservers`` (``ip[:port]``), or the system's when empty."""
    if nameservers:
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = [dns.nameserver.Do53Nameserver(*parse_nameserver(s)) for s in nameservers]
    else:
        resolver = dns.asyncresolver.Resolver()
    resolver.lifetime = timeout
    resolver.timeout = min(timeout, 2.0)
    return resolver


class DNS:
    """Typed lookups on top of an injected resolver."""

    def __init__(self, resolver: dns.asyncresolver.Resolver) -> None:
        self.resolver = resolver

    async def _query(self, name: str, rdtype: str) -> dns.resolver.Answer | None:
        try:
            return await self.resolver.resolve(name, rdtype, search=False)
        except dns.resolver.NXDOMAIN:
            raise
        except (dns.resolver.NoAnswer, dns.resolver.NoNameservers) as exc:
            if isinstance(exc, dns.resolver.NoNameservers):
                raise LookupFailed(f"{name} {rdtype}: no server answered") from exc
            return None
        except (dns.exception.Timeout, dns.resolver.LifetimeTimeout) as exc:
            raise LookupFailed(f"{name} {rdtype}: timed out") from exc
        except dns.exception.DNSException as exc:
            raise LookupFailed(f"{name} {rdtype}: {type(exc).__name__}") from exc

    async def mx(self, domain: str) -> MXAnswer:
        try:
            answer = await self._query(domain, "MX")
        except dns.resolver.NXDOMAIN:
            return MXAnswer(exists=False)
        if answer is None:
            return MXAnswer(exists=True)
        return MXAnswer(
            exists=True, records=tuple(MXRecord(int(r.preference), _host(r.exchange)) for r in answer)
        )

    async def srv(self, name: str) -> tuple[SRVRecord, ...]:
        try:
            answer = await self._query(name, "SRV")
        except dns.resolver.NXDOMAIN:
            return ()
        if answer is None:
            return ()
        return tuple(SRVRecord(int(r.priority), int(r.weight), int(r.port), _host(r.target)) for r in answer)

    async def addresses(self, host: str) -> list[str]:
        """IPv4 then IPv6 addresses of ``host``; [] if it does not exist."""
        if _is_ip(host):
            return [host]
        found: list[str] = []
        failure: LookupFailed | None = None
        for rdtype in ("A", "AAAA"):
            try:
                answer = await self._query(host, rdtype)
            except dns.resolver.NXDOMAIN:
                return found
            except LookupFailed as exc:
                failure = exc
                continue
            if answer is not None:
                found.extend(r.to_text() for r in answer)
        if not found and failure is not None:
            raise failure
        return found


def _host(name: dns.name.Name) -> str:
    """A target name as text; "" for the root (".", meaning "none")."""
    if name == dns.name.root:
        return ""
    return str(name.to_text(omit_final_dot=True)).lower()


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
