"""Resolve a host name to IP addresses, with an injectable resolver.

Two implementations of :class:`Resolver`:

* :class:`SystemResolver` — the operating system's resolver (``loop.getaddrinfo``), the default;
* :class:`DnsResolver` — dnspython's async stub resolver against given nameservers
  (``MAILPORT_DNS_NAMESERVERS``; ``host`` or ``host:port``/``[v6]:port`` entries), used when an
  operator wants DNS answers independent of ``/etc/hosts`` and by the tests' local DNS server.

Both raise :class:`~mailport.errors.HostNotFoundError` when the name does not exist or has no
address, and :class:`~mailport.errors.ConnectError` when DNS itself fails.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from typing import Protocol

import dns.asyncresolver
import dns.exception
import dns.nameserver
import dns.rdatatype
import dns.resolver

from mailport.errors import ConnectError, HostNotFoundError
from mailport.net.addresses import IPAddress

_NO_NAME = frozenset(
    {
        socket.EAI_NONAME,
        getattr(socket, "EAI_NODATA", socket.EAI_NONAME),
        getattr(socket, "EAI_ADDRFAMILY", -9),
    }
)


class Resolver(Protocol):
    """Resolve a host name (never an IP literal) to its addresses, in preference order."""

    async def resolve(self, host: str) -> list[IPAddress]: ...


def _unique(addresses: Sequence[IPAddress]) -> list[IPAddress]:
    return list(dict.fromkeys(addresses))


class SystemResolver:
    """The operating system's resolver, through the event loop's ``getaddrinfo``."""

    async def resolve(self, host: str) -> list[IPAddress]:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            if exc.errno in _NO_NAME:
                raise HostNotFoundError(f"{host}: no such host ({exc.strerror})") from exc
            raise ConnectError(f"{host}: DNS lookup failed ({exc.strerror})") from exc
        addresses: list[IPAddress] = []
        for _family, _type, _proto, _canon, sockaddr in infos:
            addresses.append(ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0]))
        if not addresses:
            raise HostNotFoundError(f"{host}: no address")
        return _unique(addresses)


def _nameserver(entry: str) -> dns.nameserver.Do53Nameserver:
    """``1.1.1.1``, ``1.1.1.1:5353``, ``::1``, ``[::1]:5353`` -> a nameserver."""
    text = entry.strip()
    port = 53
    if text.startswith("["):
        address, _, rest = text[1:].partition("]")
        if rest.startswith(":"):
            port = int(rest[1:])
    elif text.count(":") == 1:
        address, _, port_text = text.partition(":")
        port = int(port_text)
    else:
        address = text
    ipaddress.ip_address(address)  # a nameserver must be an address; ValueError otherwise
    return dns.nameserver.Do53Nameserver(address, port)


class DnsResolver:
    """dnspython's async stub resolver asking the given nameservers for A and AAAA records."""

    def __init__(self, nameservers: Sequence[str], *, timeout: float = 5.0) -> None:
        if not nameservers:
            raise ValueError("DnsResolver needs at least one nameserver")
        self._resolver = dns.asyncresolver.Resolver(configure=False)
        self._resolver.nameservers = [_nameserver(n) for n in nameservers]
        self._resolver.lifetime = timeout
        self._resolver.timeout = timeout

    async def _query(self, host: str, rdtype: dns.rdatatype.RdataType) -> list[IPAddress] | None:
        """Addresses of one type; None when the name does not exist at all."""
        try:
            answer = await self._resolver.resolve(host, rdtype, search=False)
        except dns.resolver.NXDOMAIN:
            return None
        except dns.resolver.NoAnswer:
            return []
        return [ipaddress.ip_address(r.address) for r in answer]

    async def resolve(self, host: str) -> list[IPAddress]:
        try:
            v4, v6 = await asyncio.gather(
                self._query(host, dns.rdatatype.A), self._query(host, dns.rdatatype.AAAA)
            )
        except (dns.exception.Timeout, dns.resolver.NoNameservers) as exc:
            raise ConnectError(f"{host}: DNS lookup failed ({type(exc).__name__})") from exc
        except dns.exception.DNSException as exc:
            raise ConnectError(f"{host}: DNS lookup failed ({exc})") from exc
        if v4 is None and v6 is None:
            raise HostNotFoundError(f"{host}: no such host (NXDOMAIN)")
        addresses = [*(v4 or []), *(v6 or [])]
        if not addresses:
            raise HostNotFoundError(f"{host}: the name has no A or AAAA record")
        return _unique(addresses)
