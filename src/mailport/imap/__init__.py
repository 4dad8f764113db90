"""mailport's asyncio IMAP client (see ``docs/imap.md``).

``ImapClient`` does the I/O and policy; ``parser`` is the pure response parser; results are
plain dataclasses from ``models``; credentials come from :mod:`mailport.sasl`.
"""

from mailport.imap.arguments import quote, uid_set
from mailport.imap.client import FETCH_ITEMS, HEADER_ITEMS, ImapClient
from mailport.imap.models import (
    AppendResult,
    EventKind,
    FetchedMessage,
    Greeting,
    ListEntry,
    Namespace,
    Namespaces,
    Security,
    SelectInfo,
    ServerEvent,
    TLSInfo,
)
from mailport.imap.transport import DEFAULT_TLS_READ_BUFFER, make_context
from mailport.sasl import OAuth2Auth, PasswordAuth

__all__ = [
    "DEFAULT_TLS_READ_BUFFER",
    "FETCH_ITEMS",
    "HEADER_ITEMS",
    "AppendResult",
    "EventKind",
    "FetchedMessage",
    "Greeting",
    "ImapClient",
    "ListEntry",
    "Namespace",
    "Namespaces",
    "OAuth2Auth",
    "PasswordAuth",
    "SelectInfo",
    "Security",
    "ServerEvent",
    "TLSInfo",
    "make_context",
    "quote",
    "uid_set",
]
