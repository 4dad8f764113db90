"""TLS for the connection check: the facts to report and the evidence a failure needs.

The trust to verify with (system CAs plus ``MAILPORT_MAIL_CA_FILE``, a request's ``ca_pem``, a
server's pinned certificate) comes from :class:`mailport.net.trust.MailTrust`, like every other
mail connection's. Verification is never off.

* :func:`describe` — protocol, cipher, certificate subject/issuer/names and expiry, one line.
* :func:`verification_error` — the certificate the client refused, if that is the failure (then
  the check reports the certificate presented, so a person or an API caller can pin it).
"""

from __future__ import annotations

import ssl

from mailport.imap.models import TLSInfo


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
    parts.append("pinned certificate" if info.pinned else "verified" if info.verified else "NOT verified")
    return "; ".join(parts)


def verification_error(error: BaseException | None) -> ssl.SSLCertVerificationError | None:
    """The certificate verification failure in ``error``'s cause chain, if any."""
    seen = 0
    while error is not None and seen < 10:
        if isinstance(error, ssl.SSLCertVerificationError):
            return error
        error = error.__cause__ or error.__context__
        seen += 1
    return None


def hostname_mismatch(error: BaseException | None) -> bool:
    """Whether ``error`` (or its cause chain) is a certificate hostname mismatch."""
    found = verification_error(error)
    if found is None:
        return False
    message = (found.verify_message or "").lower()
    return found.verify_code in (62, 64) or "hostname mismatch" in message or "ip address mismatch" in message
