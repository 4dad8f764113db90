"""The one way mailport opens an outbound connection: vet the host, then connect to that address.

Every client that talks to a host a user, a tenant, a document or a configuration file named —
the IMAP watcher and client, SMTP, connection checks, detection probes and autoconfig fetches,
webhooks, OAuth endpoints — gets its socket here:

* raw sockets and asyncio streams: :func:`open_socket` (vet with the caller's
  :class:`~mailport.net.guard.HostGuard`, then :func:`~mailport.net.guard.connect_vetted`) and
  :func:`open_stream` (the same, as ``asyncio`` streams, TLS from the caller's
  :class:`ssl.SSLContext`);
* HTTP: :func:`http_client` — an ``httpx.AsyncClient`` whose transport
  (:class:`GuardedTransport`) runs on :class:`GuardedBackend`, an httpcore network backend whose
  ``connect_tcp`` vets the URL's host and connects to exactly the vetted address. Every request,
  every redirect hop and every new pooled connection is vetted; environment proxies are ignored
  (a proxy would connect somewhere the guard never saw).

The guard resolves through mailport's resolver (``MAILPORT_DNS_NAMESERVERS``, else the
system's), once per connection, and TLS verifies the name the caller gave (SNI and certificate),
never the address. A refused host raises :class:`~mailport.errors.HostNotAllowedError` before
any packet leaves for it. ``tests/unit/net/test_no_bypass.py`` fails when code outside
:mod:`mailport.net` opens a connection any other way.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import typing
from collections.abc import Iterable

import httpcore
import httpx

from mailport.errors import ConnectTimeoutError, HostNotAllowedError, InputError, MailportError
from mailport.net.guard import HostGuard, VettedHost, connect_vetted

DEFAULT_LIMIT = 2**16  # asyncio stream buffer
DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)  # httpx's own


async def open_socket(
    guard: HostGuard,
    host: str,
    port: int,
    *,
    timeout: float,
    field: str = "host",
    local_addr: tuple[str, int] | None = None,
) -> tuple[VettedHost, socket.socket]:
    """Vet ``host`` with ``guard`` (resolving it once) and connect to a vetted address.

    ``timeout`` bounds the lookup and each connection attempt. Raises
    :class:`HostNotAllowedError` for a refused host, ``host_not_found`` / ``connect_failed`` /
    ``connection_refused`` / ``connect_timeout`` otherwise.
    """
    try:
        async with asyncio.timeout(timeout):
            vetted = await guard.vet(host, port, field=field)
    except TimeoutError as exc:
        raise ConnectTimeoutError(f"{host}:{port}: no DNS answer within {timeout:g} s") from exc
    return vetted, await connect_vetted(vetted, timeout=timeout, local_addr=local_addr)


async def open_stream(
    vetted: VettedHost,
    *,
    timeout: float,
    ssl_context: ssl.SSLContext | None = None,
    limit: int = DEFAULT_LIMIT,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """``asyncio`` streams to a vetted address; with ``ssl_context``, implicit TLS verifying
    ``vetted.server_hostname`` (Python sends no SNI for an IP literal and checks its IP SAN)."""
    sock = await connect_vetted(vetted, timeout=timeout)
    try:
        return await asyncio.open_connection(
            sock=sock,
            ssl=ssl_context,
            server_hostname=vetted.server_hostname if ssl_context is not None else None,
            ssl_handshake_timeout=timeout if ssl_context is not None else None,
            limit=limit,
        )
    except BaseException:
        sock.close()
        raise


# ------------------------------------------------------------------ HTTP (httpx / httpcore)


class _StreamAdapter(httpcore.AsyncNetworkStream):
    """An httpcore stream over asyncio streams (httpcore's own backends open their own sockets)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            async with asyncio.timeout(timeout):
                return await self._reader.read(max_bytes)
        except TimeoutError as exc:
            raise httpcore.ReadTimeout(str(exc) or "read timed out") from exc
        except OSError as exc:
            raise httpcore.ReadError(str(exc)) from exc

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        try:
            async with asyncio.timeout(timeout):
                self._writer.write(buffer)
                await self._writer.drain()
        except TimeoutError as exc:
            raise httpcore.WriteTimeout(str(exc) or "write timed out") from exc
        except OSError as exc:
            raise httpcore.WriteError(str(exc)) from exc

    async def aclose(self) -> None:
        self._writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._writer.wait_closed(), 1)

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                await self._writer.start_tls(ssl_context, server_hostname=server_hostname)
        except TimeoutError as exc:
            await self.aclose()
            raise httpcore.ConnectTimeout("TLS handshake timed out") from exc
        except (ssl.SSLError, OSError) as exc:
            await self.aclose()
            raise httpcore.ConnectError(str(exc)) from exc
        return self

    def get_extra_info(self, info: str) -> typing.Any:
        if info == "ssl_object":
            return self._writer.get_extra_info("ssl_object")
        if info == "server_addr":
            return self._writer.get_extra_info("peername")
        if info == "client_addr":
            return self._writer.get_extra_info("sockname")
        if info == "socket":
            return self._writer.get_extra_info("socket")
        if info == "is_readable":  # an idle pooled connection the server closed (or talked on)
            return self._writer.is_closing() or self._reader.at_eof()
        return None


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend for mailport: every ``connect_tcp`` goes through the guard."""

    def __init__(self, guard: HostGuard) -> None:
        self._guard = guard

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[typing.Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            _vetted, sock = await open_socket(self._guard, host, port, timeout=timeout or 30.0, field="url")
        except InputError:  # host_not_allowed (or not a host at all): the caller's to report
            raise
        except TimeoutError as exc:  # mailport's ConnectTimeoutError is a TimeoutError
            raise httpcore.ConnectTimeout(str(exc)) from exc
        except (MailportError, OSError) as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        for option in socket_options or ():
            sock.setsockopt(*option)
        try:
            reader, writer = await asyncio.open_connection(sock=sock, limit=DEFAULT_LIMIT)
        except BaseException:
            sock.close()
            raise
        return _StreamAdapter(reader, writer)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[typing.Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise HostNotAllowedError(f"{path}: mailport does not connect to Unix sockets", field="url")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """``httpx.AsyncHTTPTransport`` on :class:`GuardedBackend` (no proxies, no Unix sockets).

    ``ssl_context``: the caller's trust (None: httpx's default, certificates verified)."""

    def __init__(
        self,
        guard: HostGuard,
        *,
        ssl_context: ssl.SSLContext | None = None,
        limits: httpx.Limits = DEFAULT_LIMITS,
    ) -> None:
        context = ssl_context or httpx.create_ssl_context()
        super().__init__(verify=context, trust_env=False, limits=limits)
        # The pool httpx built connects by name on its own backend; ours vets every connection.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(guard),
        )


def http_client(
    guard: HostGuard,
    *,
    ssl_context: ssl.SSLContext | None = None,
    limits: httpx.Limits | None = None,
    timeout: httpx.Timeout | float = 15.0,
    follow_redirects: bool = False,
) -> httpx.AsyncClient:
    """The only way mailport makes an ``httpx.AsyncClient``: every connection vetted by ``guard``."""
    transport = GuardedTransport(guard, ssl_context=ssl_context, limits=limits or DEFAULT_LIMITS)
    return httpx.AsyncClient(
        transport=transport, trust_env=False, timeout=timeout, follow_redirects=follow_redirects
    )
