"""Evidence for troubleshooting: raw probes of a vetted host that do not speak IMAP or SMTP.

When a check fails in a way the protocol client cannot explain, these probes gather what
:func:`mailport.diagnosis.diagnose` needs to name the fix:

* :func:`probe_plaintext` — connect without TLS and read the greeting; if the server stays silent,
  send one harmless line (``QUIT``). A port that expects TLS from the first byte hangs up on it
  (Dovecot and Python's ssl both close without a TLS alert), which tells "plaintext spoken to 993"
  apart from a server that simply never speaks. Its fields go to ``Failure.received``/``probe``.
* :func:`peer_certificate` — finish a TLS handshake *without* verification, only to read the
  certificate: the names it holds (a hostname mismatch can suggest the right host), or the
  certificate itself (a person may choose to trust it). Nothing is sent over that connection.

Both connect only to the vetted addresses (:func:`mailport.net.guard.connect_vetted`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from mailport.net.guard import VettedHost, connect_vetted
from mailport.net.trust import unverified_context


def certificate_names(der: bytes) -> tuple[str, ...]:
    """The names a DER certificate is valid for (DNS and IP SANs; the CN only when there are none)."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    cert = x509.load_der_x509_certificate(der)
    names: list[str] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names.extend(san.get_values_for_type(x509.DNSName))
        names.extend(str(ip) for ip in san.get_values_for_type(x509.IPAddress))
    except x509.ExtensionNotFound:
        pass
    if not names:
        names.extend(str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME))
    return tuple(dict.fromkeys(names))


@dataclass(frozen=True)
class PlaintextProbe:
    """``received``: the greeting's first bytes (None: silent; ``b""``: closed at once).
    ``probe``: after silence, the answer to one plaintext line (``b""``: the server hung up;
    None: not probed, or still silent)."""

    received: bytes | None
    probe: bytes | None


async def probe_plaintext(
    vetted: VettedHost,
    *,
    connect_timeout: float = 5.0,
    greeting_timeout: float = 3.0,
    probe_timeout: float = 2.0,
) -> PlaintextProbe:
    """Read what a plaintext connection gets (see the module docstring)."""
    sock = await connect_vetted(vetted, timeout=connect_timeout)
    reader, writer = await asyncio.open_connection(sock=sock)
    try:
        try:
            async with asyncio.timeout(greeting_timeout):
                return PlaintextProbe(received=await reader.read(512), probe=None)
        except TimeoutError:
            pass
        writer.write(b"QUIT\r\n")
        try:
            await writer.drain()
            async with asyncio.timeout(probe_timeout):
                answer = await reader.read(512)
        except TimeoutError:
            return PlaintextProbe(received=None, probe=None)
        except ConnectionError:
            answer = b""
        return PlaintextProbe(received=None, probe=answer)
    finally:
        writer.close()


async def peer_certificate_names(vetted: VettedHost, *, timeout: float = 5.0) -> tuple[str, ...]:
    """The names (SANs) of the certificate an implicit-TLS port presents, without verifying it."""
    der = await peer_certificate(vetted, timeout=timeout)
    return certificate_names(der) if der else ()


async def peer_certificate(vetted: VettedHost, *, timeout: float = 5.0) -> bytes | None:
    """The certificate (DER) an implicit-TLS port presents, read without verifying it: to show
    a person what they would trust, or the names it holds."""
    context = unverified_context()  # only to read the certificate; never used to send anything
    sock = await connect_vetted(vetted, timeout=timeout)
    async with asyncio.timeout(timeout):
        _reader, writer = await asyncio.open_connection(
            sock=sock, ssl=context, server_hostname="" if vetted.is_ip_literal else vetted.server_hostname
        )
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        return ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    finally:
        writer.close()
