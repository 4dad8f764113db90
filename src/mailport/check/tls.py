"""TLS for the connection check: the trust to verify with, the facts to report, and when the
handshake finished.

* :func:`check_context` — system CAs, or only the CA the caller gives (a file for the CLI, PEM
  text for the API: the service never reads a path a user chose). Verification is never off.
* :func:`timed_context` — the same, plus the moment the TLS handshake completed. aiosmtplib
  does TCP, TLS and the ``220`` greeting in one call; to report the handshake and the greeting
  as separate steps (and to know which of them failed) the context's public
  ``sslobject_class`` hook records when ``do_handshake`` succeeds.
* :func:`describe` — protocol, cipher, certificate subject/issuer/names and expiry, one line.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from mailport.errors import InputError
from mailport.imap.models import TLSInfo
from mailport.imap.transport import shared_context

Clock = Callable[[], float]


def check_context(*, ca_file: str | None = None, ca_pem: str | None = None) -> ssl.SSLContext:
    """A verifying client context (TLS >= 1.2): system CAs, a CA file, or CA certificates as PEM."""
    if ca_pem is None:
        with _unusable_ca(ca_file, ca_pem):
            return shared_context(ca_file, True)
    return _new_context(ca_pem=ca_pem)


@contextmanager
def _unusable_ca(ca_file: str | None, ca_pem: str | None) -> Iterator[None]:
    """An unreadable or non-PEM CA is the caller's input error, never a crash."""
    try:
        yield
    except (ssl.SSLError, ValueError, TypeError) as exc:  # TypeError: non-ASCII PEM text
        field = "ca_pem" if ca_pem is not None else "ca_file"
        raise InputError(
            f"{field} holds no usable PEM certificate",
            field=field,
            hint="Give the CA certificate(s) as PEM.",
        ) from exc
    except OSError as exc:
        raise InputError(
            f"cannot read the CA file {ca_file}: {exc.strerror}",
            field="ca_file",
            hint="Give a readable PEM file with the CA certificate(s).",
        ) from exc


def _new_context(*, ca_file: str | None = None, ca_pem: str | None = None) -> ssl.SSLContext:
    with _unusable_ca(ca_file, ca_pem):
        context = ssl.create_default_context(cafile=ca_file, cadata=ca_pem)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def timed_context(
    *, ca_file: str | None = None, ca_pem: str | None = None, clock: Clock = time.perf_counter
) -> tuple[ssl.SSLContext, list[float]]:
    """A fresh verifying context and the list its handshakes append their completion time to."""
    marks: list[float] = []

    class _TimedSSLObject(ssl.SSLObject):
        def do_handshake(self) -> None:
            super().do_handshake()
            marks.append(clock())

    context = _new_context(ca_file=ca_file, ca_pem=ca_pem)
    context.sslobject_class = _TimedSSLObject
    return context, marks


def unverified_context() -> ssl.SSLContext:
    """Only to read the names in a certificate that failed the hostname check; nothing is sent."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def describe(info: TLSInfo | None) -> str:
    """One line: ``TLSv1.3 (cipher); certificate … for names; issued by …; valid until …; verified``."""
    if info is None:
        return "TLS established"
    parts = [f"{info.version or 'TLS'}" + (f" ({info.cipher})" if info.cipher else "")]
    if info.subject:
        names = f" for {', '.join(info.san)}" if info.san else ""
        parts.append(f"certificate {info.subject}{names}")
    if info.issuer:
        parts.append(f"issued by {info.issuer}")
    if info.not_after:
        parts.append(f"valid until {info.not_after.isoformat()}")
    parts.append("verified" if info.verified else "NOT verified")
    return "; ".join(parts)


def hostname_mismatch(error: BaseException | None) -> bool:
    """Whether ``error`` (or its cause chain) is a certificate hostname mismatch."""
    seen = 0
    while error is not None and seen < 10:
        if isinstance(error, ssl.SSLCertVerificationError):
            message = (error.verify_message or "").lower()
            return (
                error.verify_code in (62, 64)
                or "hostname mismatch" in message
                or "ip address mismatch" in message
            )
        error = error.__cause__ or error.__context__
        seen += 1
    return False
