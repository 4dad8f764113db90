"""Which certificates a mail server may present: the one place that builds TLS client contexts
for IMAP and SMTP.

Every path that speaks TLS to a mail server asks :class:`MailTrust` for its context: the
watcher, connection checks (``POST /v1/check``, ``POST /v1/mailboxes/{id}/test``, the wizard,
the dashboard's Test, ``mailport check``) and detection probes. Opening the connection is
someone else's job (the SSRF guard's connect); this module only answers "which
``ssl.SSLContext`` for this server".

Two kinds of trust:

* **CAs** — the system's default trust store, **plus** ``MAILPORT_MAIL_CA_FILE`` (a private or
  company CA) when set: the file *adds* to the defaults, so public-CA mailboxes keep working in
  the same instance. Host name and expiry are checked as usual.
* **A pinned certificate** (a mail client's "security exception"), per server of a mailbox:
  the server must present exactly that leaf certificate, compared by its SHA-256 fingerprint
  after the handshake and before a byte of the protocol is exchanged. CA trust, host name and
  expiry are then not consulted: the person accepted that exact certificate (and with it its
  key) for this server, which binds more tightly than a name — a self-signed certificate often
  names the machine (``localhost``, ``mail.lan``) rather than the name users connect to, and a
  name adds nothing an attacker without the key could use. Any other certificate, even one a
  public CA signed, is refused with ``certificate_changed`` (the SSH ``known_hosts`` rule: a
  change is surfaced to a person, never accepted silently). Remove the pin to go back to CA
  verification.

Contexts without a pin are built once per trust and shared (loading the system store costs a
few hundred KiB; thousands of watcher connections must not each pay it). A pinned context loads
no CA store at all and is cached per fingerprint.
"""

from __future__ import annotations

import functools
import hashlib
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from mailport.errors import CertificateChangedError, ConfigurationError, InputError, TLSError

if TYPE_CHECKING:
    from mailport.config import Settings

MAX_PEM_CHARS = 16_384  # one leaf certificate; a chain or a bundle is not a pin


def fingerprint(der: bytes) -> str:
    """``AB:CD:…``: the SHA-256 of the DER certificate, as mail clients and ``openssl x509
    -fingerprint -sha256`` show it."""
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


def _name(name: x509.Name) -> str:
    common = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(common[0].value) if len(name) == 1 and common else name.rfc4514_string()


@dataclass(frozen=True)
class Certificate:
    """One X.509 certificate as a person needs to judge it (and as a pin stores it)."""

    der: bytes

    @classmethod
    def from_pem(cls, text: str, *, field: str = "trusted_certificate") -> Certificate:
        """Exactly one PEM certificate; anything else is the caller's input error."""
        if len(text) > MAX_PEM_CHARS or text.count("-----BEGIN CERTIFICATE-----") != 1:
            raise InputError(
                f"{field} must be exactly one PEM certificate (-----BEGIN CERTIFICATE----- …)",
                field=field,
                hint="Give the server's own certificate as PEM, e.g. the `pem` a failed check reports.",
            )
        try:
            cert = x509.load_pem_x509_certificate(text.strip().encode("ascii"))
        except (ValueError, UnicodeEncodeError) as exc:
            raise InputError(
                f"{field} is not a readable PEM certificate",
                field=field,
                hint="Give the server's own certificate as PEM, e.g. the `pem` a failed check reports.",
            ) from exc
        return cls(cert.public_bytes(Encoding.DER))

    @functools.cached_property
    def _cert(self) -> x509.Certificate:
        return x509.load_der_x509_certificate(self.der)

    @property
    def pem(self) -> str:
        return self._cert.public_bytes(Encoding.PEM).decode("ascii")

    @property
    def sha256(self) -> str:
        return fingerprint(self.der)

    @property
    def subject(self) -> str:
        return _name(self._cert.subject)

    @property
    def issuer(self) -> str:
        return _name(self._cert.issuer)

    @property
    def not_before(self) -> datetime:
        return self._cert.not_valid_before_utc.astimezone(UTC)

    @property
    def not_after(self) -> datetime:
        return self._cert.not_valid_after_utc.astimezone(UTC)

    @property
    def self_signed(self) -> bool:
        return self._cert.subject == self._cert.issuer

    @property
    def names(self) -> tuple[str, ...]:
        try:
            san = self._cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            return ()
        return tuple(san.get_values_for_type(x509.DNSName)) + tuple(
            str(ip) for ip in san.get_values_for_type(x509.IPAddress)
        )

    def summary(self) -> dict[str, Any]:
        """What lists and mailbox reads show: the fingerprint and the facts, no PEM."""
        return {
            "sha256": self.sha256,
            "subject": self.subject,
            "issuer": self.issuer,
            "names": list(self.names),
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "self_signed": self.self_signed,
        }

    def to_dict(self) -> dict[str, Any]:
        """The summary plus the PEM, to pin it (``trusted_certificate``) after a failed check."""
        return {**self.summary(), "pem": self.pem}

    def __repr__(self) -> str:
        return f"Certificate(sha256={self.sha256!r}, subject={self.subject!r})"


class PinMismatch(ssl.SSLCertVerificationError):
    """The server presented another certificate than the pinned one (raised in the handshake)."""

    def __init__(self, presented: Certificate | None, pinned: str) -> None:
        shown = presented.sha256 if presented else "none"
        super().__init__(f"certificate {shown} is not the pinned {pinned}")
        self.verify_code = 0
        self.verify_message = f"the certificate changed: SHA-256 {shown}, trusted {pinned}"
        self.presented = presented
        self.pinned = pinned


class PinnedContext(ssl.SSLContext):
    """A client context that accepts exactly one leaf certificate (``pin``, a SHA-256)."""

    pin: str


HandshakeHook = Callable[[], None]


def _sslobject_class(pin: str | None, on_handshake: HandshakeHook | None) -> type[ssl.SSLObject]:
    """``SSLContext.sslobject_class`` is the public hook asyncio's TLS (and so aiosmtplib's)
    goes through: a pin is compared when the handshake completes, before any protocol byte."""

    class _MailSSLObject(ssl.SSLObject):
        def do_handshake(self) -> None:
            super().do_handshake()
            if pin is not None:
                der = self.getpeercert(binary_form=True)
                if not der or fingerprint(der) != pin:
                    raise PinMismatch(Certificate(der) if der else None, pin)
            if on_handshake is not None:
                on_handshake()

    return _MailSSLObject


def _pinned_context(pin: str, on_handshake: HandshakeHook | None = None) -> PinnedContext:
    context = PinnedContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the pin below replaces CA verification
    context.pin = pin
    context.sslobject_class = _sslobject_class(pin, on_handshake)
    return context


@functools.lru_cache(maxsize=1024)
def _shared_pinned_context(pin: str) -> PinnedContext:
    return _pinned_context(pin)


class MailTrust:
    """The trust for mail servers: system CAs plus optional extra CAs; per-server pins.

    ``ca_files`` / ``ca_pems`` add CA certificates to the system defaults (never replace them).
    An unreadable or non-PEM CA raises :class:`InputError` (a CA given with a request or on the
    command line) — :meth:`from_settings` turns that into a configuration error.
    """

    def __init__(self, *, ca_files: Iterable[str | Path] = (), ca_pems: Iterable[str] = ()) -> None:
        self.ca_files = tuple(str(f) for f in ca_files)
        self.ca_pems = tuple(ca_pems)
        self._shared = self._new_ca_context()  # built now: a bad CA fails here, not at a connection

    @classmethod
    def from_settings(cls, settings: Settings) -> MailTrust:
        """``MAILPORT_MAIL_CA_FILE`` added to the system CAs."""
        try:
            return cls(ca_files=[settings.mail_ca_file] if settings.mail_ca_file else [])
        except InputError as exc:
            raise ConfigurationError(f"MAILPORT_MAIL_CA_FILE: {exc.message}") from exc

    def adding(self, *, ca_file: str | Path | None = None, ca_pem: str | None = None) -> MailTrust:
        """This trust plus more CAs (a request's ``ca_pem``, the CLI's ``--imap-ca-file``)."""
        if ca_file is None and ca_pem is None:
            return self
        return MailTrust(
            ca_files=self.ca_files + ((str(ca_file),) if ca_file is not None else ()),
            ca_pems=self.ca_pems + ((ca_pem,) if ca_pem is not None else ()),
        )

    def _new_ca_context(self, on_handshake: HandshakeHook | None = None) -> ssl.SSLContext:
        context = ssl.create_default_context()  # the system's trust store, always
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        for ca_file in self.ca_files:
            _load_ca(context, "ca_file", ca_file, None)
        for ca_pem in self.ca_pems:
            _load_ca(context, "ca_pem", None, ca_pem)
        if on_handshake is not None:
            context.sslobject_class = _sslobject_class(None, on_handshake)
        return context

    def context(
        self, pinned: Certificate | None = None, *, on_handshake: HandshakeHook | None = None
    ) -> ssl.SSLContext:
        """The context for one server: its pin if it has one, else the CAs.

        ``on_handshake`` (a fresh context then) is called when a handshake completes — the
        connection check uses it to tell the TLS step from the greeting that follows it."""
        if pinned is not None:
            if on_handshake is not None:
                return _pinned_context(pinned.sha256, on_handshake)
            return _shared_pinned_context(pinned.sha256)
        if on_handshake is not None:
            return self._new_ca_context(on_handshake)
        return self._shared

    def ca_count(self) -> int:
        """How many CA certificates the shared context trusts (system plus added)."""
        return int(self.context().cert_store_stats()["x509_ca"])


def _load_ca(context: ssl.SSLContext, field: str, cafile: str | None, cadata: str | None) -> None:
    """An unreadable or non-PEM CA is the caller's input error, never a crash."""
    try:
        context.load_verify_locations(cafile=cafile, cadata=cadata)
    except (ssl.SSLError, ValueError, TypeError) as exc:  # TypeError: non-ASCII PEM text
        raise InputError(
            f"{field} holds no usable PEM certificate", field=field, hint="Give the CA certificate(s) as PEM."
        ) from exc
    except OSError as exc:
        raise InputError(
            f"cannot read the CA file {cafile}: {exc.strerror}",
            field="ca_file",
            hint="Give a readable PEM file with the CA certificate(s).",
        ) from exc


def unverified_context() -> ssl.SSLContext:
    """Only to *read* a certificate the server presents (to show it, or the names it holds) after
    verification refused it; nothing is ever sent over such a connection."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def certificate_error(exc: ssl.SSLCertVerificationError, where: str) -> TLSError:
    """A failed verification as mailport's error (IMAP and SMTP clients translate with this)."""
    if isinstance(exc, PinMismatch):
        return CertificateChangedError(
            f"{where}: the server presented a different certificate (SHA-256 "
            f"{exc.presented.sha256 if exc.presented else 'none'}) than the one trusted for this "
            f"server (SHA-256 {exc.pinned})",
            verify_message=exc.verify_message,
        )
    return TLSError(
        f"{where}: certificate verification failed: {exc.verify_message}", verify_message=exc.verify_message
    )
