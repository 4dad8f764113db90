"""mailport's asyncio POP3 client (see ``docs/pop3.md``).

:class:`Pop3Client` does the I/O and policy; :mod:`~mailport.pop3.parser` is the pure framing;
credentials come from :mod:`mailport.sasl`.
"""

from mailport.pop3.client import DEFAULT_PORTS, Pop3Client, Retrieved, login_refused
from mailport.pop3.parser import MultiLineReader, Status, parse_status, unstuff
from mailport.sasl import OAuth2Auth, PasswordAuth

__all__ = [
    "DEFAULT_PORTS",
    "MultiLineReader",
    "OAuth2Auth",
    "PasswordAuth",
    "Pop3Client",
    "Retrieved",
    "Status",
    "login_refused",
    "parse_status",
    "unstuff",
]
