"""SSRF guard: vet a user-supplied host before the service connects to it on the user's behalf.

``POST /v1/check`` takes a host and port from the request body and opens a connection; without a
guard, anyone with an API key could make the service probe its own network (databases, admin
ports, the cloud metadata endpoint that hands out credentials). :meth:`HostGuard.vet` resolves the
host once and refuses it with ``host_not_allowed`` when **any** of its addresses is loopback,
private, link-local, multicast, unspecified, reserved, shared (100.64/10) or a cloud metadata
endpoint — IPv6, IPv4-mapped/NAT64/6to4 forms and legacy IPv4 spellings included.

No DNS rebinding: :meth:`HostGuard.vet` returns a :class:`VettedHost` holding the addresses it
checked, and the connectors connect to exactly those (:func:`connect_vetted`), using the name only
for SNI and certificate verification (``server_hostname``). A second lookup never happens.

An operator can allow private addresses (``MAILPORT_ALLOW_PRIVATE_HOSTS=true``) or list hosts,
wildcards, addresses or networks
(``MAILPORT_ALLOWED_HOSTS=imap.internal.example,*.corp.example,10.1.0.0/16``). Metadata
endpoints stay refused unless listed explicitly (or ``allow_metadata=True``, for the CLI).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import idna

from mailport.errors import (
    ConfigurationError,
    ConnectError,
    ConnectionRefusedByServerError,
    ConnectTimeoutError,
    HostNotAllowedError,
    InputError,
)
from mailport.net.addresses import IPAddress, blocked_reason, parse_ip_literal
from mailport.net.resolve import DnsResolver, Resolver, SystemResolver

if TYPE_CHECKING:
    from mailport.config import Settings

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
LOCALHOST = ipaddress.IPv4Address("127.0.0.1")


@dataclass(frozen=True)
class VettedHost:
    """A host that passed the guard, with the addresses to connect to.

    ``server_hostname`` is what TLS must verify (and send as SNI): the ASCII host name, or the
    canonical address for an IP literal. ``addresses`` are the only addresses to connect to.
    """

    host: str
    port: int
    addresses: tuple[IPAddress, ...]
    server_hostname: str
    allowed_by: str  # "public", "allow_private_hosts" or "allowed_hosts"

    @property
    def is_ip_literal(self) -> bool:
        return parse_ip_literal(self.server_hostname) is not None


def normalize_host(host: str, *, field: str = "host") -> str:
    """The host as an ASCII, lower-case name (IDNA) or a canonical IP address string."""
    text = host.strip()
    if not text or len(text) > 255 or any(ch.isspace() or ch in "/\\@?#" for ch in text):
        raise InputError(f"{host!r} is not a valid host name", field=field)
    literal = parse_ip_literal(text)
    if literal is not None:
        return str(literal).split("%", 1)[0] if isinstance(literal, ipaddress.IPv6Address) else str(literal)
    text = text.rstrip(".")
    try:
        return idna.encode(text, uts46=True).decode("ascii").lower()
    except idna.IDNAError as exc:
        raise InputError(f"{host!r} is not a valid host name ({exc})", field=field) from exc


@dataclass(frozen=True)
class _Allowed:
    names: frozenset[str]
    suffixes: tuple[str, ...]  # from "*.example.com": any name under example.com
    networks: tuple[IPNetwork, ...]

    def name(self, host: str) -> bool:
        return host in self.names or any(host.endswith(suffix) for suffix in self.suffixes)

    def address(self, address: IPAddress) -> bool:
        return any(address in network for network in self.networks)


def _parse_allowed(entries: Iterable[str]) -> _Allowed:
    """``MAILPORT_ALLOWED_HOSTS`` entries: names, ``*.domain`` wildcards, addresses, CIDR networks."""
    names: set[str] = set()
    suffixes: list[str] = []
    networks: list[IPNetwork] = []
    for entry in entries:
        text = entry.strip()
        if not text:
            continue
        try:
            if "/" in text:
                networks.append(ipaddress.ip_network(text, strict=False))
            elif text.startswith("*."):
                suffixes.append("." + normalize_host(text[2:]))
            elif (literal := parse_ip_literal(text)) is not None:
                networks.append(ipaddress.ip_network(literal))
            else:
                names.add(normalize_host(text))
        except (ValueError, InputError) as exc:
            raise ConfigurationError(
                f"MAILPORT_ALLOWED_HOSTS: {text!r} is not a host name, *.domain, address or network"
            ) from exc
    return _Allowed(frozenset(names), tuple(suffixes), tuple(networks))


class HostGuard:
    """Resolve and vet user-supplied hosts (see the module docstring)."""

    def __init__(
        self,
        *,
        resolver: Resolver | None = None,
        allow_private: bool = False,
        allowed_hosts: Iterable[str] = (),
        allow_metadata: bool = False,
    ) -> None:
        self._resolver: Resolver = resolver or SystemResolver()
        self._allow_private = allow_private
        self._allow_metadata = allow_metadata
        self._allowed = _parse_allowed(allowed_hosts)

    @classmethod
    def from_settings(cls, settings: Settings, *, resolver: Resolver | None = None) -> HostGuard:
        """The service's guard: ``MAILPORT_ALLOW_PRIVATE_HOSTS``, ``MAILPORT_ALLOWED_HOSTS`` and
        ``MAILPORT_DNS_NAMESERVERS`` (dnspython against those servers; the system resolver otherwise)."""
        if resolver is None:
            resolver = DnsResolver(settings.dns_nameservers) if settings.dns_nameservers else SystemResolver()
        return cls(
            resolver=resolver,
            allow_private=settings.allow_private_hosts,
            allowed_hosts=settings.allowed_hosts,
        )

    @classmethod
    def for_operator(cls, *, resolver: Resolver | None = None) -> HostGuard:
        """The CLI's guard: the operator runs it, so every address is allowed (still resolved once)."""
        return cls(resolver=resolver, allow_private=True, allow_metadata=True)

    async def vet(self, host: str, port: int, *, field: str = "host") -> VettedHost:
        """Resolve ``host`` and refuse it when any address is not allowed; never connects.

        ``field`` names the request field in errors (e.g. ``imap.host``; the port's is ``….port``).
        """
        if not isinstance(port, int) or not 1 <= port <= 65535:
            port_field = field.rsplit(".", 1)[0] + ".port" if "." in field else "port"
            raise InputError(f"port {port!r} is not between 1 and 65535", field=port_field)
        name = normalize_host(host, field=field)
        literal = parse_ip_literal(name)
        if literal is not None:
            addresses = [literal]
        elif name == "localhost" or name.endswith(".localhost"):
            addresses = await self._loopback(name)
        else:
            addresses = await self._resolver.resolve(name)
        listed_name = self._allowed.name(name)
        allowed_by = "allowed_hosts" if listed_name else "public"
        for address in addresses:
            reason = blocked_reason(address)
            if reason is None:
                continue
            if listed_name or self._allowed.address(address):
                allowed_by = "allowed_hosts"
            elif reason == "metadata" and self._allow_metadata:
                allowed_by = "allow_private_hosts"
            elif reason != "metadata" and self._allow_private:
                allowed_by = "allow_private_hosts" if allowed_by == "public" else allowed_by
            else:
                raise self._refuse(host, address, reason, field)
        return VettedHost(
            host=host.strip(),
            port=port,
            addresses=tuple(addresses),
            server_hostname=name,
            allowed_by=allowed_by,
        )

    async def _loopback(self, name: str) -> list[IPAddress]:
        """A ``localhost`` name: always loopback (RFC 6761 6.3), whatever DNS answers. The
        resolver's loopback answers are kept (their order, IPv4 or IPv6); 127.0.0.1 without one."""
        try:
            found = await self._resolver.resolve(name)
        except (ConnectError, OSError):  # host_not_found included
            found = []
        loopback = [a for a in found if blocked_reason(a) == "loopback"]
        return loopback or [LOCALHOST]

    @staticmethod
    def _refuse(host: str, address: IPAddress, reason: str, field: str) -> HostNotAllowedError:
        shown = host.strip()
        where = "" if shown == str(address) else f" resolves to {address}, which"
        kind = reason.replace("_", "-")
        return HostNotAllowedError(
            f"{shown}{where} is a {kind} address; the service does not connect there on a user's behalf",
            field=field,
            host=shown,
            address=str(address),
            reason=reason,
        )


async def connect_vetted(
    vetted: VettedHost, *, timeout: float, local_addr: tuple[str, int] | None = None
) -> socket.socket:
    """A connected non-blocking TCP socket to one of the vetted addresses (tried in order).

    The only ``connect`` in mailport (:mod:`mailport.net.connect` builds on it). Hand the socket
    to ``asyncio.open_connection(sock=…, ssl=ctx, server_hostname=vetted.server_hostname)`` or
    ``aiosmtplib.SMTP(hostname=vetted.server_hostname, sock=…)``: the address connected to is
    the address that was checked. ``timeout`` bounds each attempt; ``local_addr`` binds the
    local end first.
    """
    loop = asyncio.get_running_loop()
    last: OSError | None = None
    for address in vetted.addresses:
        family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            if local_addr is not None:
                sock.bind(local_addr)
            async with asyncio.timeout(timeout):
                await loop.sock_connect(sock, (str(address), vetted.port))
        except OSError as exc:  # TimeoutError included
            sock.close()
            last = exc
            continue
        except BaseException:
            sock.close()
            raise
        return sock
    at = f"{vetted.host}:{vetted.port}"
    if isinstance(last, ConnectionRefusedError):
        raise ConnectionRefusedByServerError(f"{at}: connection refused") from last
    if isinstance(last, TimeoutError):
        raise ConnectTimeoutError(f"{at}: connecting timed out after {timeout:g} s") from last
    raise ConnectError(f"{at}: {last.strerror if last else 'no address'}") from last
