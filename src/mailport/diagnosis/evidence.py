"""Reading the evidence of a failure: the exception's cause chain and the first bytes received.

Pure helpers shared by the per-step diagnoses: the errno or exception type buried in a cause
chain, whether bytes are a TLS record or another service's banner, and how to name the server.
"""

from __future__ import annotations

import re

from mailport.diagnosis.model import STANDARD_PORTS, Failure, Suggestion, one_line
from mailport.servers import Security


def errno_of(error: BaseException | None) -> int | None:
    while error is not None:
        if isinstance(error, OSError) and error.errno is not None:
            return error.errno
        error = error.__cause__ or error.__context__
    return None


def find_in_chain(error: BaseException | None, kind: type[BaseException]) -> BaseException | None:
    """``error`` or the first exception in its cause chain of type ``kind``."""
    seen = 0
    while error is not None and seen < 10:
        if isinstance(error, kind):
            return error
        error = error.__cause__ or error.__context__
        seen += 1
    return None


def is_timeout(error: BaseException | None) -> bool:
    return find_in_chain(error, TimeoutError) is not None


def describe(error: BaseException | None) -> str:
    if error is None:
        return ""
    text = str(error) or type(error).__name__
    return one_line(f"{type(error).__name__}: {text}" if str(error) else text)


_TLS_RECORD_TYPES = frozenset({0x14, 0x15, 0x16, 0x17})


def looks_like_tls(data: bytes | None) -> bool:
    """A TLS record header: content type 20–23 followed by major version 3."""
    return bool(data) and len(data or b"") >= 2 and data[0] in _TLS_RECORD_TYPES and data[1] == 3  # type: ignore[index]


def service_of(data: bytes | None) -> str | None:
    """Recognise which service a banner belongs to."""
    if not data:
        return None
    if looks_like_tls(data):
        return "tls"
    head = data[:64].decode("latin-1")
    if re.match(r"\* (OK|PREAUTH|BYE)\b", head, re.I):
        return "imap"
    if re.match(r"[245]\d\d[ -]", head):
        return "smtp"
    if head.startswith("+OK"):
        return "pop3"
    if head.startswith("SSH-"):
        return "ssh"
    if head.startswith("HTTP/") or head.startswith("<"):
        return "http"
    return "unknown"


def suggest_standard(protocol: str, security: str) -> Suggestion:
    chosen = Security(security)
    return Suggestion(port=STANDARD_PORTS[protocol][chosen], security=chosen)


def where(failure: Failure) -> str:
    """The server as the detail names it: ``host:port``, the host, or "the server"."""
    if failure.host and failure.port:
        return f"{failure.host}:{failure.port}"
    return failure.host or "the server"
