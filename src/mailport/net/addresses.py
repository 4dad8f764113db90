"""Which IP addresses a user-supplied host may make the service connect to.

The SSRF guard needs two answers the standard library does not give exactly:

* **Is this host an IP literal, in any form the OS would accept?** ``ipaddress`` refuses the
  legacy IPv4 spellings on purpose (``2130706433``, ``0x7f.1``, ``017700000001``, ``127.1``), but
  ``getaddrinfo``/``inet_aton`` accept them and connect to 127.0.0.1 — so :func:`parse_ip_literal`
  reads them the way ``inet_aton`` does (strictly: no trailing text), plus ``[v6]`` brackets and
  ``%zone`` suffixes.
* **Is this address public?** ``ipaddress.is_private`` and friends changed between Python
  patch releases (CVE-2024-4032) and do not look inside IPv4-mapped, NAT64 or 6to4 addresses, so
  :func:`blocked_reason` uses an explicit table (IANA special-purpose registries) and unwraps
  embedded IPv4 addresses. IPv6 outside global unicast (2000::/3) is refused outright.
"""

from __future__ import annotations

import ipaddress
from typing import Final

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cloud instance-metadata endpoints: refused even when private hosts are allowed.
METADATA_ADDRESSES: Final = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, Oracle, DigitalOcean …
        "169.254.170.2",  # AWS ECS task metadata
        "169.254.169.253",  # AWS VPC DNS
        "169.254.169.123",  # AWS time sync
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud (classic)
        "fd00:ec2::254",  # AWS IMDS over IPv6
        "fd00:ec2::253",  # AWS VPC DNS over IPv6
        "fd00:ec2::123",  # AWS time sync over IPv6
    )
)

_V4: Final[tuple[tuple[ipaddress.IPv4Network, str], ...]] = tuple(
    (ipaddress.IPv4Network(net), reason)
    for net, reason in (
        ("0.0.0.0/8", "unspecified"),
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "shared"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link_local"),
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "reserved"),
        ("192.0.2.0/24", "reserved"),
        ("192.31.196.0/24", "reserved"),
        ("192.52.193.0/24", "reserved"),
        ("192.88.99.0/24", "reserved"),
        ("192.168.0.0/16", "private"),
        ("192.175.48.0/24", "reserved"),
        ("198.18.0.0/15", "reserved"),
        ("198.51.100.0/24", "reserved"),
        ("203.0.113.0/24", "reserved"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),
    )
)

_V6: Final[tuple[tuple[ipaddress.IPv6Network, str], ...]] = tuple(
    (ipaddress.IPv6Network(net), reason)
    for net, reason in (
        ("64:ff9b:1::/48", "private"),  # local-use NAT64
        ("100::/64", "reserved"),  # discard-only
        ("2001::/23", "reserved"),  # IETF protocol assignments (Teredo, ORCHID, benchmarking …)
        ("2001:db8::/32", "reserved"),  # documentation
        ("3fff::/20", "reserved"),  # documentation
        ("5f00::/16", "reserved"),  # SRv6 SIDs
        ("fc00::/7", "private"),  # unique local
        ("fe80::/10", "link_local"),
        ("fec0::/10", "private"),  # site-local (deprecated)
        ("ff00::/8", "multicast"),
    )
)
_GLOBAL_UNICAST: Final = ipaddress.IPv6Network("2000::/3")
_NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")
_SIX_TO_FOUR: Final = ipaddress.IPv6Network("2002::/16")
_V4_COMPATIBLE: Final = ipaddress.IPv6Network("::/96")


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for: mapped, compatible, NAT64 or 6to4."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64 or (address in _V4_COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _SIX_TO_FOUR:
        return ipaddress.IPv4Address((int(address) >> 80) & 0xFFFFFFFF)
    return None


def blocked_reason(address: IPAddress) -> str | None:
    """Why the service must not connect there (``loopback``, ``private``, ``metadata`` …), or None."""
    if address in METADATA_ADDRESSES:
        return "metadata"
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            address = ipaddress.IPv6Address(str(address).split("%", 1)[0])
        if address == ipaddress.IPv6Address("::"):
            return "unspecified"
        if address == ipaddress.IPv6Address("::1"):
            return "loopback"
        inner = embedded_ipv4(address)
        if inner is not None:
            return blocked_reason(inner)
        for network, reason in _V6:
            if address in network:
                return reason
        return None if address in _GLOBAL_UNICAST else "reserved"
    if address == ipaddress.IPv4Address("255.255.255.255"):
        return "broadcast"
    for network4, reason in _V4:
        if address in network4:
            return reason
    return None


def _inet_aton_part(text: str) -> int | None:
    if not text:
        return None
    try:
        if text[:2].lower() == "0x":
            return int(text[2:], 16) if text[2:] else None
        if len(text) > 1 and text[0] == "0":
            return int(text[1:], 8)
        return int(text, 10) if text.isdigit() else None
    except ValueError:
        return None


def _legacy_ipv4(text: str) -> ipaddress.IPv4Address | None:
    """IPv4 in any form ``inet_aton`` accepts: ``a``, ``a.b``, ``a.b.c``, ``a.b.c.d``, each part
    decimal, octal (leading 0) or hex (0x)."""
    parts = text.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    numbers = [_inet_aton_part(p) for p in parts]
    if any(n is None for n in numbers):
        return None
    values: list[int] = [n for n in numbers if n is not None]
    *head, last = values
    if any(n > 0xFF for n in head) or last >= 1 << (8 * (4 - len(head))):
        return None
    value = 0
    for n in head:
        value = (value << 8) | n
    value = (value << (8 * (4 - len(head)))) | last
    return ipaddress.IPv4Address(value)


def parse_ip_literal(host: str) -> IPAddress | None:
    """The address if ``host`` is an IP literal (``[::1]``, ``fe80::1%eth0``, ``0x7f.1`` …), else None."""
    text = host.strip().rstrip(".") if not host.strip().startswith("[") else host.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if ":" in text:
        try:
            return ipaddress.IPv6Address(text)
        except ValueError:
            return None
    try:
        return ipaddress.IPv4Address(text)
    except ValueError:
        pass
    if text and text[0].isdigit():
        return _legacy_ipv4(text)
    return None
