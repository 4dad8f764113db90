"""The SSRF guard against a real DNS server and real sockets (loopback only)."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator

import pytest

from mailport.diagnosis import Failure, diagnose
from mailport.errors import (
    ConnectionRefusedByServerError,
    HostNotAllowedError,
    HostNotFoundError,
)
from mailport.net.guard import HostGuard, VettedHost, connect_vetted
from mailport.net.resolve import DnsResolver, SystemResolver
from tests.fixtures.dns import LocalDNSServer
from tests.mailstack.dovecot import free_port


def guard(server: LocalDNSServer, **options: object) -> HostGuard:
    return HostGuard(resolver=DnsResolver([server.nameserver], timeout=3), **options)  # type: ignore[arg-type]


async def test_a_public_name_is_vetted_with_its_a_and_aaaa_records(dns_guard_server: LocalDNSServer) -> None:
    vetted = await guard(dns_guard_server).vet("public.guard.test", 993)
    assert vetted.addresses == (
        ipaddress.ip_address("93.184.215.14"),
        ipaddress.ip_address("2606:4700::6810:84e5"),
    )
    assert vetted.server_hostname == "public.guard.test"
    assert sorted(dns_guard_server.lookups("public.guard.test")) == ["A", "AAAA"]


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("private.guard.test", "private"),
        ("loopback.guard.test", "loopback"),
        ("mixed.guard.test", "private"),
        ("mapped.guard.test", "private"),
        ("v6loop.guard.test", "loopback"),
        ("nat64.guard.test", "metadata"),
        ("metadata.guard.test", "metadata"),
        ("ula.guard.test", "private"),
    ],
)
async def test_names_resolving_to_private_addresses_are_refused(
    dns_guard_server: LocalDNSServer, name: str, reason: str
) -> None:
    with pytest.raises(HostNotAllowedError) as info:
        await guard(dns_guard_server).vet(name, 993)
    assert info.value.details["reason"] == reason
    assert info.value.details["host"] == name


async def test_unknown_names_and_names_without_addresses(dns_guard_server: LocalDNSServer) -> None:
    with pytest.raises(HostNotFoundError) as info:
        await guard(dns_guard_server).vet("nothing.guard.test", 993)
    diagnosis = diagnose(Failure(step="dns", protocol="imap", host="nothing.guard.test", error=info.value))
    assert diagnosis.code == "host_not_found"
    with pytest.raises(HostNotFoundError):
        await guard(dns_guard_server).vet("empty.guard.test", 993)


async def test_allowed_hosts_and_allow_private(dns_guard_server: LocalDNSServer) -> None:
    vetted = await guard(dns_guard_server, allowed_hosts=["private.guard.test"]).vet(
        "private.guard.test", 143
    )
    assert vetted.addresses == (ipaddress.ip_address("10.20.30.40"),)
    relaxed = guard(dns_guard_server, allow_private=True)
    assert (await relaxed.vet("mapped.guard.test", 143)).allowed_by == "allow_private_hosts"
    with pytest.raises(HostNotAllowedError):
        await relaxed.vet("metadata.guard.test", 80)


async def test_system_resolver_resolves_localhost_and_refuses_it() -> None:
    with pytest.raises(HostNotAllowedError) as info:
        await HostGuard(resolver=SystemResolver()).vet("localhost", 993)
    assert info.value.details["reason"] == "loopback"
    with pytest.raises(HostNotFoundError):
        await SystemResolver().resolve("no-such-host.invalid")


@pytest.fixture
async def banner_server() -> AsyncIterator[int]:
    async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"* OK hello from 127.0.0.1\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(greet, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield port
    server.close()
    await server.wait_closed()


async def test_the_address_checked_is_the_address_connected_to(
    dns_guard_server: LocalDNSServer, banner_server: int
) -> None:
    # The attacker's DNS answers 127.0.0.1 (allowed here) first and 127.0.0.3 afterwards.
    dns_guard_server.rebind("rebind.guard.test", "A", "127.0.0.3")
    checker = guard(dns_guard_server, allowed_hosts=["127.0.0.1"])
    vetted = await checker.vet("rebind.guard.test", banner_server)
    assert vetted.addresses == (ipaddress.ip_address("127.0.0.1"),)

    sock = await connect_vetted(vetted, timeout=3)
    assert sock.getpeername() == ("127.0.0.1", banner_server)
    reader, writer = await asyncio.open_connection(sock=sock)
    assert await reader.readline() == b"* OK hello from 127.0.0.1\r\n"
    writer.close()
    assert dns_guard_server.lookups("rebind.guard.test").count("A") == 1  # never looked up again

    # Looking it up again now would have been refused: the rebinding answer is not allowed.
    with pytest.raises(HostNotAllowedError):
        await checker.vet("rebind.guard.test", banner_server)


async def test_connecting_to_a_closed_port_is_diagnosed() -> None:
    port = free_port()
    vetted = VettedHost("127.0.0.1", port, (ipaddress.ip_address("127.0.0.1"),), "127.0.0.1", "allowed_hosts")
    with pytest.raises(ConnectionRefusedByServerError) as info:
        await connect_vetted(vetted, timeout=3)
    diagnosis = diagnose(
        Failure(step="tcp_connect", protocol="imap", host="127.0.0.1", port=port, error=info.value)
    )
    assert diagnosis.code == "connection_refused"
    assert diagnosis.suggestions[0].port == 993
