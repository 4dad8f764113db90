"""TCP keepalive, TLS contexts and certificate facts for the IMAP client's connections.

TLS itself is :class:`mailport.net.tls_layer.TLSLayer` (public ``ssl`` APIs only, no read
buffer per connection). Until 2026-12 this module subclassed the private
``asyncio.sslproto.SSLProtocol`` to shrink its 256 KiB per-connection buffer to 16 KiB; an idle
TLS connection cost 47 KiB that way, and the private class changed between Python versions.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
import ssl
from datetime import UTC

from cryptography import x509
from cryptography.x509.oid import NameOID

from mailport.imap.models import TLSInfo
from mailport.net.tls_layer import DEFAULT_BULK_SLICE, DEFAULT_IDLE_SLICE, TLSLayer
from mailport.net.trust import MailTrust, PinnedContext

log = logging.getLogger(__name__)

# The client options ``tls_read_buffer`` / ``bulk_read_buffer``: the largest piece of a TLS
# record handed to OpenSSL at once while idle / during a bulk FETCH (what a connection keeps
# in its BIO afterwards); reads themselves go to one buffer shared by all connections.
DEFAULT_TLS_READ_BUFFER = DEFAULT_IDLE_SLICE
DEFAULT_BULK_READ_BUFFER = DEFAULT_BULK_SLICE


def tls_layer(transport: asyncio.BaseTransport | None) -> TLSLayer | None:
    """The :class:`TLSLayer` a connection of ours runs on (None for a foreign transport)."""
    return transport if isinstance(transport, TLSLayer) else None


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
