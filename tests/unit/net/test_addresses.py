"""Address classification and IP literal parsing for the SSRF guard."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from mailport.net.addresses import blocked_reason, embedded_ipv4, parse_ip_literal

BLOCKED = [
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("10.0.0.1", "private"),
    ("172.16.5.4", "private"),
    ("172.31.255.255", "private"),
    ("192.168.1.1", "private"),
    ("100.64.0.1", "shared"),
    ("100.127.255.254", "shared"),
    ("169.254.1.1", "link_local"),
    ("169.254.169.254", "metadata"),
    ("169.254.170.2", "metadata"),
    ("100.100.100.200", "metadata"),
    ("192.0.0.192", "metadata"),
    ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "unspecified"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "broadcast"),
    ("192.0.2.10", "reserved"),
    ("198.18.0.1", "reserved"),
    ("::1", "loopback"),
    ("::", "unspecified"),
    ("fe80::1", "link_local"),
    ("fc00::1", "private"),
    ("fd12:3456::1", "private"),
    ("fd00:ec2::254", "metadata"),
    ("ff02::1", "multicast"),
    ("fec0::1", "private"),
    ("2001:db8::1", "reserved"),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "reserved"),  # Teredo
    ("100::1", "reserved"),
    ("::ffff:10.0.0.1", "private"),  # IPv4-mapped
    ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:169.254.169.254", "metadata"),
    ("::127.0.0.1", "loopback"),  # IPv4-compatible (deprecated)
    ("64:ff9b::a00:1", "private"),  # NAT64 of 10.0.0.1
    ("64:ff9b::7f00:1", "loopback"),
    ("64:ff9b:1::1", "private"),  # local-use NAT64
    ("2002:7f00:1::1", "loopback"),  # 6to4 of 127.0.0.1
    ("2002:a9fe:a9fe::1", "metadata"),  # 6to4 of 169.254.169.254
    ("4000::1", "reserved"),  # outside 2000::/3
]

PUBLIC = [
    "93.184.215.14",
    "142.250.153.108",  # imap.gmail.com
    "40.99.10.50",  # outlook.office365.com
    "100.63.255.255",  # just below shared space
    "100.128.0.0",  # just above
    "172.32.0.1",  # just above 172.16/12
    "2a00:1450:400c:c0b::6c",
    "2606:4700::6810:84e5",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",  # NAT64 of 8.8.8.8
    "2002:808:808::1",  # 6to4 of 8.8.8.8
]


@pytest.mark.parametrize(("address", "reason"), BLOCKED)
def test_blocked_addresses(address: str, reason: str) -> None:
    assert blocked_reason(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses(address: str) -> None:
    assert blocked_reason(ipaddress.ip_address(address)) is None


def test_scoped_ipv6_is_classified_without_its_zone() -> None:
    assert blocked_reason(ipaddress.IPv6Address("fe80::1%eth0")) == "link_local"


def test_embedded_ipv4() -> None:
    assert embedded_ipv4(ipaddress.IPv6Address("::ffff:1.2.3.4")) == ipaddress.IPv4Address("1.2.3.4")
    assert embedded_ipv4(ipaddress.IPv6Address("64:ff9b::102:304")) == ipaddress.IPv4Address("1.2.3.4")
    assert embedded_ipv4(ipaddress.IPv6Address("2002:102:304::")) == ipaddress.IPv4Address("1.2.3.4")
    assert embedded_ipv4(ipaddress.IPv6Address("2a00::1")) is None


LITERALS = [
    ("127.0.0.1", "127.0.0.1"),
    ("2130706433", "127.0.0.1"),
    ("017700000001", "127.0.0.1"),
    ("0x7f000001", "127.0.0.1"),
    ("0x7f.1", "127.0.0.1"),
    ("127.1", "127.0.0.1"),
    ("0177.0.0.01", "127.0.0.1"),
    ("10.1", "10.0.0.1"),
    ("192.168.257", "192.168.1.1"),
    ("0", "0.0.0.0"),
    ("[::1]", "::1"),
    ("[::ffff:10.0.0.1]", "::ffff:a00:1"),
    ("fe80::1%eth0", "fe80::1%eth0"),
    ("127.0.0.1.", "127.0.0.1"),
]


@pytest.mark.parametrize(("text", "address"), LITERALS)
def test_ip_literals_in_every_form_the_os_accepts(text: str, address: str) -> None:
    assert parse_ip_literal(text) == ipaddress.ip_address(address)


@pytest.mark.parametrize("text", ["2130706433", "017700000001", "0x7f.1", "127.1", "10.1", "192.168.257"])
def test_legacy_forms_agree_with_inet_aton(text: str) -> None:
    parsed = parse_ip_literal(text)
    assert parsed is not None
    assert parsed.packed == socket.inet_aton(text)


@pytest.mark.parametrize(
    "text",
    [
        "imap.example.com",
        "1.2.3.4.5",
        "256.1.1.1",
        "0x",
        "08.1.1.1",
        "1.2.3.4 junk",
        "[::1",
        "1e3",
        "example",
    ],
)
def test_names_and_invalid_forms_are_not_literals(text: str) -> None:
    assert parse_ip_literal(text) is None
