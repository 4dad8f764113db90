"""The SSRF guard's decisions, with an injected in-memory resolver (no network)."""

from __future__ import annotations

import ipaddress

import pytest

from mailport.config import Settings
from mailport.errors import ConfigurationError, HostNotAllowedError, HostNotFoundError, InputError
from mailport.net.addresses import IPAddress
from mailport.net.guard import HostGuard, normalize_host
from mailport.net.resolve import DnsResolver, SystemResolver


class TableResolver:
    """A resolver answering from a dict, counting lookups."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.lookups: list[str] = []

    async def resolve(self, host: str) -> list[IPAddress]:
        self.lookups.append(host)
        if host not in self.table:
            raise HostNotFoundError(f"{host}: no such host")
        return [ipaddress.ip_address(a) for a in self.table[host]]


TABLE = {
    "imap.public.test": ["93.184.215.14", "2606:4700::6810:84e5"],
    "intranet.test": ["10.0.0.5"],
    "mixed.test": ["93.184.215.14", "192.168.1.10"],
    "mapped.test": ["::ffff:10.0.0.1"],
    "metadata.test": ["169.254.169.254"],
    "v6local.test": ["fd00::5"],
    "xn--bcher-kva.test": ["93.184.215.14"],
}


async def test_public_host_is_vetted_with_its_addresses() -> None:
    resolver = TableResolver(TABLE)
    vetted = await HostGuard(resolver=resolver).vet("IMAP.Public.Test.", 993)
    assert vetted.addresses == (
        ipaddress.ip_address("93.184.215.14"),
        ipaddress.ip_address("2606:4700::6810:84e5"),
    )
    assert vetted.server_hostname == "imap.public.test"
    assert vetted.port == 993 and vetted.allowed_by == "public"
    assert resolver.lookups == ["imap.public.test"]


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("intranet.test", "private"),
        ("mixed.test", "private"),  # ANY address blocked refuses the host
        ("mapped.test", "private"),
        ("metadata.test", "metadata"),
        ("v6local.test", "private"),
        ("127.0.0.1", "loopback"),
        ("[::1]", "loopback"),
        ("2130706433", "loopback"),
        ("0x7f.1", "loopback"),
        ("017700000001", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("[::ffff:169.254.169.254]", "metadata"),
        ("169.254.169.254", "metadata"),
        ("0.0.0.0", "unspecified"),
        ("100.64.1.1", "shared"),
    ],
)
async def test_private_targets_are_refused(host: str, reason: str) -> None:
    guard = HostGuard(resolver=TableResolver(TABLE))
    with pytest.raises(HostNotAllowedError) as info:
        await guard.vet(host, 993)
    error = info.value
    assert error.code == "host_not_allowed"
    assert error.details["reason"] == reason
    assert error.to_dict()["error"] == "host_not_allowed"


async def test_literals_are_never_sent_to_dns() -> None:
    resolver = TableResolver(TABLE)
    vetted = await HostGuard(resolver=resolver).vet("[2606:4700::6810:84e5]", 993)
    assert vetted.server_hostname == "2606:4700::6810:84e5" and vetted.is_ip_literal
    assert resolver.lookups == []


async def test_allow_private_hosts_allows_private_but_not_metadata() -> None:
    guard = HostGuard(resolver=TableResolver(TABLE), allow_private=True)
    vetted = await guard.vet("intranet.test", 143)
    assert vetted.allowed_by == "allow_private_hosts"
    assert (await guard.vet("127.0.0.1", 143)).addresses == (ipaddress.ip_address("127.0.0.1"),)
    with pytest.raises(HostNotAllowedError):
        await guard.vet("metadata.test", 80)


async def test_allowed_hosts_by_name_address_or_network() -> None:
    guard = HostGuard(
        resolver=TableResolver(TABLE), allowed_hosts=["Intranet.Test", "fd00::/8", "169.254.169.254"]
    )
    assert (await guard.vet("intranet.test", 993)).allowed_by == "allowed_hosts"
    assert (await guard.vet("v6local.test", 993)).allowed_by == "allowed_hosts"
    assert (await guard.vet("metadata.test", 993)).allowed_by == "allowed_hosts"
    with pytest.raises(HostNotAllowedError):
        await guard.vet("mixed.test", 993)


async def test_operator_guard_allows_everything() -> None:
    guard = HostGuard.for_operator(resolver=TableResolver(TABLE))
    assert (await guard.vet("metadata.test", 993)).addresses == (ipaddress.ip_address("169.254.169.254"),)
    assert (await guard.vet("::1", 993)).server_hostname == "::1"


async def test_unicode_names_are_resolved_as_idna() -> None:
    resolver = TableResolver(TABLE)
    vetted = await HostGuard(resolver=resolver).vet("bücher.test", 993)
    assert vetted.server_hostname == "xn--bcher-kva.test"
    assert resolver.lookups == ["xn--bcher-kva.test"]


@pytest.mark.parametrize(
    ("host", "port"), [("", 993), ("a b", 993), ("h/x", 993), ("ok.test", 0), ("ok.test", 70000)]
)
async def test_bad_input_is_an_input_error(host: str, port: int) -> None:
    with pytest.raises(InputError):
        await HostGuard(resolver=TableResolver(TABLE)).vet(host, port)


async def test_unknown_names_raise_host_not_found() -> None:
    with pytest.raises(HostNotFoundError):
        await HostGuard(resolver=TableResolver(TABLE)).vet("nope.test", 993)


def test_normalize_host() -> None:
    assert normalize_host(" Mail.Example.COM. ") == "mail.example.com"
    assert normalize_host("0x7f.1") == "127.0.0.1"
    assert normalize_host("[::FFFF:10.0.0.1]") == "::ffff:a00:1"


def test_guard_from_settings() -> None:
    settings = Settings(
        allow_private_hosts=True, allowed_hosts="a.test, 10.0.0.0/8", dns_nameservers="127.0.0.1:5353"
    )
    guard = HostGuard.from_settings(settings)
    assert isinstance(guard._resolver, DnsResolver)
    assert guard._allow_private and guard._allowed.name("a.test")
    assert isinstance(HostGuard.from_settings(Settings())._resolver, SystemResolver)


async def test_wildcard_allowed_hosts_and_bad_entries() -> None:
    table = {"imap.corp.test": ["10.9.8.7"], "corp.test": ["10.9.8.6"], "evilcorp.test": ["10.9.8.5"]}
    guard = HostGuard(resolver=TableResolver(table), allowed_hosts=["*.corp.test"])
    assert (await guard.vet("imap.corp.test", 993)).allowed_by == "allowed_hosts"
    for host in ("corp.test", "evilcorp.test"):
        with pytest.raises(HostNotAllowedError):
            await guard.vet(host, 993)
    with pytest.raises(ConfigurationError):
        HostGuard(allowed_hosts=["10.0.0.0/33"])
    with pytest.raises(ConfigurationError):
        HostGuard(allowed_hosts=["bad host"])


async def test_errors_name_the_request_field() -> None:
    guard = HostGuard(resolver=TableResolver(TABLE))
    with pytest.raises(HostNotAllowedError) as info:
        await guard.vet("intranet.test", 993, field="smtp.host")
    assert info.value.details["field"] == "smtp.host"
    with pytest.raises(InputError) as bad_port:
        await guard.vet("imap.public.test", 0, field="imap.host")
    assert bad_port.value.details["field"] == "imap.port"


@pytest.mark.parametrize(
    ("name", "answer", "expected"),
    [
        ("localhost", None, ["127.0.0.1"]),  # the resolver does not know it: loopback anyway
        ("LocalHost.", ["93.184.215.14"], ["127.0.0.1"]),  # a lying resolver is not believed
        ("imap.localhost", ["::1", "127.0.0.1"], ["::1", "127.0.0.1"]),
    ],
)
async def test_localhost_names_are_loopback_whatever_dns_answers(
    name: str, answer: list[str] | None, expected: list[str]
) -> None:
    normalized = normalize_host(name)
    table = {normalized: answer} if answer is not None else {}
    with pytest.raises(HostNotAllowedError) as info:
        await HostGuard(resolver=TableResolver(table)).vet(name, 993)
    assert info.value.details["reason"] == "loopback"
    allowed = await HostGuard(resolver=TableResolver(table), allow_private=True).vet(name, 993)
    assert [str(a) for a in allowed.addresses] == expected
