"""Diagnoses of the failures before any words: DNS, TCP, TLS, the greeting and STARTTLS.

Each function takes a :class:`Failure` of its step and answers a :class:`Diagnosis`, or ``None``
when the evidence says nothing it knows (the catalogue then reads the server's words, or falls
back to the step's family code). They read errnos, ssl verification codes and the first bytes
the server sent; they never look at a provider's words.
"""

from __future__ import annotations

import errno
import socket
import ssl
from collections.abc import Sequence

from mailport.diagnosis.evidence import (
    describe,
    errno_of,
    find_in_chain,
    is_timeout,
    looks_like_tls,
    service_of,
    suggest_standard,
    where,
)
from mailport.diagnosis.model import (
    IMPLICIT_TLS_PORTS,
    STANDARD_PORTS,
    Diagnosis,
    Failure,
    Suggestion,
    one_line,
)
from mailport.diagnosis.providers import PROVIDER_HOSTS, effective_provider, provider_name
from mailport.errors import (
    CertificateChangedError,
    CertificateExpiredError,
    CertificateHostnameMismatchError,
    CertificateSelfSignedError,
    CertificateUntrustedError,
    ConnectError,
    ConnectionLostError,
    ConnectionRefusedByServerError,
    ConnectTimeoutError,
    HostNotFoundError,
    PlaintextOnTLSPortError,
    ServerSilentError,
    StartTLSNotOfferedError,
    TLSError,
    TLSOnPlaintextPortError,
    WrongServiceError,
)
from mailport.net.trust import PinMismatch
from mailport.servers import Security


def _host_suggestions(names: Sequence[str], protocol: str) -> tuple[str, ...]:
    """Concrete host names from a certificate's names, the protocol's likely one first."""
    concrete = [n for n in names if n and not n.startswith("*.")]
    wildcard = [n[2:] for n in names if n.startswith("*.")]
    prefixes = {"imap": ("imap", "mail"), "pop3": ("pop3", "pop", "mail")}.get(protocol, ("smtp", "mail"))
    concrete.sort(key=lambda n: 0 if n.split(".", 1)[0] in prefixes else 1)
    for base in wildcard:
        concrete.extend(f"{p}.{base}" for p in prefixes[:1])
    return tuple(dict.fromkeys(concrete))


def dns_failure(failure: Failure) -> Diagnosis | None:
    error = failure.error
    name_missing = isinstance(error, HostNotFoundError) or type(error).__name__ in ("NXDOMAIN", "NoAnswer")
    gai = find_in_chain(error, socket.gaierror)
    if isinstance(gai, socket.gaierror) and gai.errno in _GAI_NO_NAME:
        name_missing = True
    if name_missing:
        provider = effective_provider(failure)
        usual = PROVIDER_HOSTS.get(provider or "", {}).get(failure.protocol)
        suggestions = (Suggestion(host=usual),) if usual and usual != failure.host else ()
        hint = "Check the spelling of the host name; it has no address in DNS."
        if suggestions:
            hint += f" {provider_name(provider)}'s {failure.protocol.upper()} server is {usual}."
        else:
            hint += " Your provider's help pages list the exact IMAP and SMTP server names."
        return Diagnosis(
            HostNotFoundError,
            f"The host name {failure.host or ''} does not exist.".replace("  ", " "),
            hint,
            suggestions=suggestions,
        )
    if error is None:
        return None
    return Diagnosis(
        ConnectError,
        f"Looking up {failure.host or 'the host'} failed: {describe(error)}",
        "DNS did not answer; check this machine's network and DNS servers (MAILPORT_DNS_NAMESERVERS), "
        "then retry.",
    )


_GAI_NO_NAME = frozenset(
    {
        socket.EAI_NONAME,
        getattr(socket, "EAI_NODATA", socket.EAI_NONAME),
        getattr(socket, "EAI_ADDRFAMILY", -9),
    }
)


def tcp_failure(failure: Failure) -> Diagnosis | None:
    error = failure.error
    number = errno_of(error)
    protocol = failure.protocol
    ssl_port, tls_port = STANDARD_PORTS[protocol]["ssl"], STANDARD_PORTS[protocol]["starttls"]
    suggestions: tuple[Suggestion, ...] = ()
    if (
        isinstance(error, ConnectionRefusedByServerError)
        or isinstance(find_in_chain(error, ConnectionRefusedError), ConnectionRefusedError)
        or number == errno.ECONNREFUSED
    ):
        suggestions = tuple(
            s
            for s in (suggest_standard(protocol, "ssl"), suggest_standard(protocol, "starttls"))
            if s.port != failure.port
        )
        return Diagnosis(
            ConnectionRefusedByServerError,
            f"{where(failure)} refused the connection: nothing listens on port {failure.port}.",
            f"Check the port: {protocol.upper()} is usually {ssl_port} with SSL/TLS or {tls_port} with "
            "STARTTLS. If the port is right, the server is down or a firewall rejects the connection.",
            suggestions=suggestions,
        )
    if is_timeout(error) or number == errno.ETIMEDOUT:
        hint = (
            "No answer at all: a firewall (on this network or the server's) drops the connection, or the "
            "host/port is wrong."
        )
        if protocol == "smtp" and failure.port == 25:
            hint += (
                " Many networks and cloud hosts block outgoing port 25; use 587 (STARTTLS) or 465 (SSL/TLS)."
            )
            suggestions = (suggest_standard("smtp", "starttls"), suggest_standard("smtp", "ssl"))
        return Diagnosis(
            ConnectTimeoutError,
            f"Connecting to {where(failure)} timed out.",
            hint,
            suggestions=suggestions,
        )
    if number in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return Diagnosis(
            ConnectError,
            f"{where(failure)} is unreachable from here ({describe(error)}).",
            "This machine has no route to that address (often IPv6 without IPv6 connectivity, or "
            "a private address); check the host name and this machine's network.",
        )
    return None


_TLS_MISMATCH_REASONS = frozenset(
    {
        "WRONG_VERSION_NUMBER",
        "HTTP_REQUEST",
        "PACKET_LENGTH_TOO_LONG",
        "RECORD_LAYER_FAILURE",
        "UNKNOWN_PROTOCOL",
        "RECORD_TOO_LARGE",
    }
)


def tls_failure(failure: Failure) -> Diagnosis | None:
    error = failure.error
    verify = find_in_chain(error, ssl.SSLCertVerificationError)
    if isinstance(verify, ssl.SSLCertVerificationError):
        return _certificate(failure, verify)
    ssl_error = find_in_chain(error, ssl.SSLError)
    reason = getattr(ssl_error, "reason", None) or ""
    service = service_of(failure.received)
    if reason in _TLS_MISMATCH_REASONS or service in ("imap", "smtp", "pop3"):
        return _tls_on_plaintext(failure)
    if reason in ("UNSUPPORTED_PROTOCOL", "TLSV1_ALERT_PROTOCOL_VERSION", "NO_PROTOCOLS_AVAILABLE"):
        return Diagnosis(
            TLSError,
            f"{where(failure)} and mailport share no TLS version ({reason}).",
            "The server only speaks an outdated TLS version (1.0/1.1); its operator must enable "
            "TLS 1.2 or later.",
        )
    if is_timeout(error):
        return Diagnosis(
            ServerSilentError,
            f"{where(failure)} accepted the connection but never answered the TLS handshake.",
            "The port is probably wrong or a proxy/firewall holds the connection; check host and port.",
        )
    if ssl_error is not None or isinstance(find_in_chain(error, ConnectionResetError), ConnectionResetError):
        return Diagnosis(
            TLSError,
            f"The TLS handshake with {where(failure)} failed: {describe(ssl_error or error)}",
            "The server closed the connection during the handshake: check the port/security "
            "pair (implicit TLS on 993/465, STARTTLS on 143/587) and that the server supports "
            "TLS 1.2 or later.",
        )
    return None


def _certificate(failure: Failure, error: ssl.SSLCertVerificationError) -> Diagnosis:
    code = error.verify_code
    message = error.verify_message or str(error)
    at = where(failure)
    if isinstance(error, PinMismatch):
        presented = error.presented.sha256 if error.presented else "none"
        return Diagnosis(
            CertificateChangedError,
            f"{at}: the server presented a different certificate (SHA-256 {presented}) than the "
            f"one trusted for this server (SHA-256 {error.pinned}).",
            CertificateChangedError.hint,
        )
    if code in (62, 64) or any(
        m in message.lower() for m in ("hostname mismatch", "ip address mismatch", "doesn't match")
    ):
        hosts = _host_suggestions(failure.peer_names, failure.protocol)
        names = ", ".join(failure.peer_names) or "another host"
        hint = f"The certificate is valid for {names}, not for {failure.host or 'this host'}."
        if hosts:
            hint += f" Use {hosts[0]} as the server name."
        else:
            hint += (
                " Use the host name your provider publishes for IMAP/SMTP (the one the certificate names)."
            )
        return Diagnosis(
            CertificateHostnameMismatchError,
            f"{at}: {message}",
            hint,
            suggestions=tuple(Suggestion(host=h) for h in hosts),
        )
    if code in (10, 9):
        when = "has expired" if code == 10 else "is not valid yet"
        return Diagnosis(
            CertificateExpiredError,
            f"{at}: the certificate {when} ({message}).",
            f"The server's certificate {when}. Its operator must renew it; if this machine's "
            "clock is wrong, fix the clock. Do not turn verification off.",
        )
    if code in (18, 19):
        return Diagnosis(
            CertificateSelfSignedError,
            f"{at}: {message}.",
            "The server presents a self-signed certificate. If you trust this server, trust this "
            "certificate for it after comparing its fingerprint with the server's operator (the "
            "wizard's \"Trust this certificate\", or the server's `trusted_certificate`); better, "
            "its operator installs a certificate from a public CA.",
        )
    if code in (2, 20, 21, 27, 28):
        return Diagnosis(
            CertificateUntrustedError,
            f"{at}: {message}.",
            "The certificate is issued by a CA this machine does not trust (a private/company CA, "
            "or the server omits its intermediate certificate). Add the CA (MAILPORT_MAIL_CA_FILE, "
            "`ca_pem`, `--imap-ca-file`/`--smtp-ca-file`) or trust this server's certificate; the "
            "server's operator should send the full chain.",
        )
    return Diagnosis(TLSError, f"{at}: certificate verification failed ({message}).", TLSError.hint)


def _tls_on_plaintext(failure: Failure) -> Diagnosis:
    protocol = failure.protocol
    port = failure.port
    suggestions = [Suggestion(port=port, security=Security.STARTTLS)] if port else []
    ssl_port = STANDARD_PORTS[protocol]["ssl"]
    if port != ssl_port:
        suggestions.append(Suggestion(port=ssl_port, security=Security.SSL))
    said = failure.received.decode("latin-1", "replace").strip() if failure.received else None
    return Diagnosis(
        TLSOnPlaintextPortError,
        f"mailport started TLS, but {where(failure)} answered in plaintext: "
        "the port expects STARTTLS (or no TLS).",
        f"Use security STARTTLS on port {port}, or SSL/TLS on port {ssl_port}."
        if port
        else f"Use STARTTLS on this port, or SSL/TLS on port {ssl_port}.",
        server_said=one_line(said) if said else None,
        suggestions=tuple(suggestions),
    )


def _plaintext_on_tls(failure: Failure, how: str) -> Diagnosis:
    port = failure.port
    protocol = failure.protocol
    plain = STANDARD_PORTS[protocol]["starttls"]
    suggestions = [Suggestion(port=port, security=Security.SSL)] if port else []
    if port != plain:
        suggestions.append(Suggestion(port=plain, security=Security.STARTTLS))
    return Diagnosis(
        PlaintextOnTLSPortError,
        f"{where(failure)} {how}: the port expects TLS from the first byte (implicit TLS).",
        f"Choose security SSL/TLS for port {port}, or STARTTLS on port {plain}."
        if port
        else f"Choose security SSL/TLS, or STARTTLS on port {plain}.",
        suggestions=tuple(suggestions),
    )


def greeting_failure(failure: Failure) -> Diagnosis | None:
    error = failure.error
    service = service_of(failure.received)
    if service == "tls":
        return _plaintext_on_tls(failure, "answered with TLS data")
    if failure.received == b"" and not is_timeout(error):
        return Diagnosis(
            ConnectionLostError,
            f"{where(failure)} closed the connection before greeting.",
            "The server hung up at once: it may refuse this machine's address (blocklist, firewall, "
            "connection limit) or be overloaded. Retry later; check the host and port.",
        )
    if is_timeout(error) or (error is None and failure.reply is None and not failure.received):
        if failure.probe is not None and (failure.probe == b"" or looks_like_tls(failure.probe)):
            return _plaintext_on_tls(failure, "never greeted and hung up on plaintext")
        implicit = failure.port in IMPLICIT_TLS_PORTS[failure.protocol]
        if failure.security in (Security.STARTTLS, Security.NONE) and implicit:
            return _plaintext_on_tls(failure, "never greeted (it waits for a TLS handshake)")
        return Diagnosis(
            ServerSilentError,
            f"{where(failure)} accepted the connection but never sent a greeting.",
            "A server that accepts TCP and stays silent is usually the wrong port (one that expects TLS: "
            f"choose SSL/TLS for {failure.protocol.upper()} on {STANDARD_PORTS[failure.protocol]['ssl']}), a "
            "firewall or proxy that holds connections, or an overloaded server. Check host and port.",
            suggestions=(Suggestion(port=failure.port, security=Security.SSL),)
            if failure.port and failure.security != Security.SSL
            else (),
        )
    if service and service not in ("unknown", failure.protocol):
        names = {
            "imap": "an IMAP server",
            "smtp": "an SMTP server",
            "pop3": "a POP3 server",
            "ssh": "an SSH server",
            "http": "a web server",
        }
        said = failure.received.decode("latin-1", "replace") if failure.received else ""
        right = STANDARD_PORTS[failure.protocol]
        return Diagnosis(
            WrongServiceError,
            f"{where(failure)} is {names.get(service, 'another service')}, not {failure.protocol.upper()}.",
            f"Use the {failure.protocol.upper()} port: {right['ssl']} (SSL/TLS) "
            f"or {right['starttls']} (STARTTLS).",
            server_said=one_line(said),
            suggestions=(
                suggest_standard(failure.protocol, "ssl"),
                suggest_standard(failure.protocol, "starttls"),
            ),
        )
    return None


def starttls_failure(failure: Failure) -> Diagnosis | None:
    tls = tls_failure(failure) if failure.error is not None else None
    if tls is not None:
        return tls
    reply = failure.reply
    refused = reply is None or reply.status in ("NO", "BAD", "-ERR") or (reply.smtp_code or 0) >= 400
    # Not offered (nothing raised), or the client's own verdict on a refused STARTTLS/STLS.
    if (failure.error is None or isinstance(failure.error, StartTLSNotOfferedError)) and refused:
        ssl_port = STANDARD_PORTS[failure.protocol]["ssl"]
        command = "STLS (POP3's STARTTLS)" if failure.protocol == "pop3" else "STARTTLS"
        return Diagnosis(
            StartTLSNotOfferedError,
            f"{where(failure)} does not offer {command}.",
            f"Use implicit TLS instead (security SSL/TLS, port {ssl_port}); "
            "if the server offers no TLS at all, "
            "its operator must enable it — mailport does not send passwords over an unencrypted connection.",
            server_said=reply.quoted() if reply else None,
            suggestions=(suggest_standard(failure.protocol, "ssl"),),
        )
    return None
