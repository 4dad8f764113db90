"""TCP connect, TLS upgrade with a small read buffer, TCP keepalive, certificate facts.

Why a subclass of ``asyncio.sslproto.SSLProtocol``: CPython 3.11's asyncio TLS transport
allocates a zero-filled ``bytearray(SSLProtocol.max_size)`` of **256 KiB** per connection,
which is ~85 % of what an idle TLS connection costs (289 KiB measured, see PERF-NOTES). A
TLS record is at most 16 KiB, so a 16 KiB buffer loses nothing against a real server.
``max_size`` is a class attribute and not public API. Instead of changing it process-wide
(which would also shrink every other library's TLS buffers), :func:`start_tls` upgrades our
own transports with :class:`SmallBufferSSLProtocol`, which sets ``max_size`` per instance,
mirroring the ten lines of ``BaseEventLoop.start_tls``. During a bulk FETCH the client
switches that one connection to a large buffer (``bulk_read_buffer``, 256 KiB like asyncio's
default: fewer, larger reads) and back to the small one afterwards, so throughput is
asyncio's and idle memory is ours. Implicit TLS is "connect, then
start_tls at once", so both modes share this one place. The size is the client option
``tls_read_buffer`` (default :data:`DEFAULT_TLS_READ_BUFFER`). If a future Python changes
these internals, :func:`start_tls` falls back to the public ``loop.start_tls`` (and a
larger buffer) rather than failing.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
import ssl
from asyncio import sslproto
from datetime import UTC
from typing import Any, cast

from cryptography import x509
from cryptography.x509.oid import NameOID

from mailport.imap.models import TLSInfo
from mailport.net.trust import MailTrust, PinnedContext

log = logging.getLogger(__name__)

DEFAULT_TLS_READ_BUFFER = 16 * 1024
DEFAULT_BULK_READ_BUFFER = 256 * 1024


class SmallBufferSSLProtocol(sslproto.SSLProtocol):
    """asyncio's SSL protocol with a per-connection read buffer size."""

    def __init__(self, *args: Any, read_buffer: int, **kwargs: Any) -> None:
        self.max_size = read_buffer  # type: ignore[misc]  # read by SSLProtocol.__init__
        super().__init__(*args, **kwargs)

    def resize_read_buffer(self, size: int) -> None:
        """Switch the read buffer size between callbacks (bulk FETCH: large; idle: small).

        Safe because the event loop takes the buffer with ``get_buffer`` and fills it within
        one callback; between callbacks nothing holds the old one.
        """
        if size == self.max_size:
            return
        self.max_size = size  # type: ignore[misc]
        self._ssl_buffer = bytearray(size)
        self._ssl_buffer_view = memoryview(self._ssl_buffer)


def read_buffer_control(transport: asyncio.BaseTransport) -> SmallBufferSSLProtocol | None:
    """The SSL protocol behind a transport made by :func:`start_tls`, if it is ours."""
    protocol = getattr(transport, "_ssl_protocol", None)
    return protocol if isinstance(protocol, SmallBufferSSLProtocol) else None


async def start_tls(
    transport: asyncio.BaseTransport,
    protocol: asyncio.BaseProtocol,
    context: ssl.SSLContext,
    *,
    server_hostname: str | None,
    handshake_timeout: float,
    read_buffer: int = DEFAULT_TLS_READ_BUFFER,
) -> asyncio.Transport:
    """Upgrade a connected plain transport to TLS (``loop.start_tls`` with a small buffer)."""
    loop = asyncio.get_running_loop()
    if not isinstance(transport, asyncio.WriteTransport) or not getattr(
        transport, "_start_tls_compatible", False
    ):
        # asyncio's own start_tls (and uvloop's, whose transports are no asyncio subclasses)
        upgraded = await loop.start_tls(
            cast(asyncio.WriteTransport, transport),
            protocol,
            context,
            server_hostname=server_hostname,
            ssl_handshake_timeout=handshake_timeout,
        )
        assert upgraded is not None
        return upgraded
    waiter: asyncio.Future[None] = loop.create_future()
    ssl_protocol = SmallBufferSSLProtocol(
        loop,
        protocol,
        context,
        waiter,
        False,
        server_hostname,
        ssl_handshake_timeout=handshake_timeout,
        call_connection_made=False,
        read_buffer=read_buffer,
    )
    plain: Any = transport
    plain.pause_reading()
    plain.set_protocol(ssl_protocol)
    made = loop.call_soon(ssl_protocol.connection_made, transport)
    resume = loop.call_soon(plain.resume_reading)
    try:
        await waiter
    except BaseException:
        transport.close()
        made.cancel()
        resume.cancel()
        raise
    app_transport: asyncio.Transport = ssl_protocol._app_transport
    return app_transport


def enable_keepalive(
    transport: asyncio.BaseTransport, *, idle: int = 60, interval: int = 20, count: int = 5
) -> None:
    """TCP keepalive so a silently dead peer (NAT timeout, pulled cable) is noticed while idling."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        if hasattr(socket, "TCP_KEEPIDLE"):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, idle)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, interval)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, count)
    except OSError as exc:  # not fatal: some platforms refuse the fine-grained options
        log.debug("could not set TCP keepalive: %s", exc)


def make_context(*, ca_file: str | None = None, verify: bool = True) -> ssl.SSLContext:
    """A new client context: system CAs plus ``ca_file`` (:class:`MailTrust`), TLS >= 1.2,
    optionally not verifying (the library's ``verify=False``; the service never uses it)."""
    context = MailTrust(ca_files=[ca_file] if ca_file else []).context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


@functools.lru_cache(maxsize=64)
def shared_context(ca_file: str | None = None, verify: bool = True) -> ssl.SSLContext:
    """One context per (CA file, verify) for library callers that give a CA file, not a context.

    Loading the system CA store costs a few hundred KiB per ``SSLContext``; connections must
    share it (contexts are not modified after creation). A CA file changed on disk is picked up
    after a restart.
    """
    return make_context(ca_file=ca_file, verify=verify)


def tls_info(transport: asyncio.BaseTransport) -> TLSInfo:
    """Protocol version, cipher and the peer certificate's subject, SAN and validity."""
    ssl_object: ssl.SSLObject | None = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return TLSInfo(version=None, cipher=None, verified=False)
    cipher = ssl_object.cipher()
    pinned = isinstance(ssl_object.context, PinnedContext)
    verified = ssl_object.context.verify_mode != ssl.CERT_NONE or pinned
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return TLSInfo(ssl_object.version(), cipher[0] if cipher else None, verified)
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        return TLSInfo(ssl_object.version(), cipher[0] if cipher else None, verified)
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        san = tuple(str(v) for v in ext.get_values_for_type(x509.DNSName)) + tuple(
            str(v) for v in ext.get_values_for_type(x509.IPAddress)
        )
    except x509.ExtensionNotFound:
        san = ()
    common_names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return TLSInfo(
        version=ssl_object.version(),
        cipher=cipher[0] if cipher else None,
        verified=verified,
        subject=str(common_names[0].value) if common_names else cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        san=san,
        not_before=cert.not_valid_before_utc.astimezone(UTC),
        not_after=cert.not_valid_after_utc.astimezone(UTC),
        pinned=pinned,
        certificate=der,
    )
