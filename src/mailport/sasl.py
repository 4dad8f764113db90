"""SASL initial responses shared by the IMAP and SMTP clients.

PLAIN (RFC 4616), XOAUTH2 (Google's and Microsoft's format) and OAUTHBEARER (RFC 7628) are a
few lines each; keeping them pure and in one place means IMAP and SMTP send byte-identical
credentials and the unit tests pin the exact bytes. The OAuth error challenge (a base64 JSON
object such as ``{"status": "401", "schemes": "bearer", ...}``) is decoded here too, so
both protocols turn it into the same :class:`~mailport.errors.AuthenticationError` detail.

Functions return the *raw* (not base64) bytes; :func:`b64` encodes for the wire. No library
served: aiosmtplib has XOAUTH2 only for SMTP, and imapclient's helpers are synchronous-client
methods.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from mailport.crypto.secret import Secret
from mailport.errors import AuthMechanismUnsupportedError


def b64(data: bytes) -> bytes:
    """Base64 for the wire (no line breaks)."""
    return base64.b64encode(data)


def plain(username: str, password: str, *, authzid: str = "") -> bytes:
    """RFC 4616 PLAIN: ``authzid NUL authcid NUL passwd`` (UTF-8)."""
    return f"{authzid}\x00{username}\x00{password}".encode()


def xoauth2(username: str, token: str) -> bytes:
    """XOAUTH2: ``user=<u> ^A auth=Bearer <token> ^A ^A``."""
    return f"user={username}\x01auth=Bearer {token}\x01\x01".encode()


def oauthbearer(username: str, token: str, *, host: str | None = None, port: int | None = None) -> bytes:
    """RFC 7628 OAUTHBEARER: a GS2 header with the authzid, then key/value pairs."""
    user = username.replace("=", "=3D").replace(",", "=2C")
    parts = [f"n,a={user},"]
    if host:
        parts.append(f"host={host}")
    if port:
        parts.append(f"port={port}")
    parts.append(f"auth=Bearer {token}")
    return ("\x01".join(parts) + "\x01\x01").encode()


def decode_oauth_error(challenge: bytes | str) -> dict[str, Any] | None:
    """The JSON object of an OAuth error challenge (base64 or already decoded), or None."""
    data = challenge.encode() if isinstance(challenge, str) else bytes(challenge)
    data = data.strip()
    if not data:
        return None
    candidates = [data]
    try:
        candidates.insert(0, base64.b64decode(data, validate=True))
    except (binascii.Error, ValueError):
        pass
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except (ValueError, UnicodeDecodeError):
            continue
        if isinstance(value, dict):
            return value
    return None


def describe_oauth_error(error: dict[str, Any] | None) -> str:
    """A short human sentence for an OAuth error challenge (status and scope, never the token)."""
    if not error:
        return ""
    bits = [f"status {error['status']}" if "status" in error else ""]
    if error.get("scope"):
        bits.append(f"scope {error['scope']}")
    if error.get("schemes"):
        bits.append(f"schemes {error['schemes']}")
    return "OAuth error: " + ", ".join(b for b in bits if b)


# --------------------------------------------------------------------------- credentials

TokenSource = Callable[[], Awaitable[str | Secret]]
"""An async callable returning a fresh access token (called at connect time)."""


@dataclass(frozen=True, slots=True)
class PasswordAuth:
    """User name and password; ``mechanism`` "auto" picks AUTHENTICATE PLAIN when offered, else LOGIN."""

    username: str
    password: Secret
    mechanism: Literal["auto", "PLAIN", "LOGIN"] = "auto"


@dataclass(frozen=True, slots=True)
class OAuth2Auth:
    """An OAuth2 access token (or an async source of fresh ones) for XOAUTH2 or OAUTHBEARER."""

    username: str
    token: Secret | TokenSource
    mechanism: Literal["XOAUTH2", "OAUTHBEARER"] = "XOAUTH2"

    async def access_token(self) -> Secret:
        """The token to send now: the stored one, or a fresh one from the async source."""
        if isinstance(self.token, Secret):
            return self.token
        value = await self.token()
        return value if isinstance(value, Secret) else Secret(value)


Credentials = PasswordAuth | OAuth2Auth

PASSWORD_MECHANISMS = ("PLAIN", "LOGIN")
OAUTH_MECHANISMS = ("XOAUTH2", "OAUTHBEARER")


def candidates(auth: Credentials) -> tuple[str, ...]:
    """The mechanisms ``auth`` may use, best first: "auto" allows PLAIN then LOGIN; a named
    mechanism only itself."""
    if isinstance(auth, PasswordAuth) and auth.mechanism == "auto":
        return PASSWORD_MECHANISMS
    return (auth.mechanism,)


def preferred_mechanism(wanted: tuple[str, ...], offered: Iterable[str]) -> str:
    """The first of ``wanted`` the server offers, else the first of ``wanted`` (which
    :func:`choose_mechanism` then refuses with a clear error)."""
    upper = {m.upper() for m in offered}
    return next((m for m in wanted if m in upper), wanted[0])


def choose_mechanism(auth: Credentials, offered: Iterable[str], *, where: str) -> str:
    """The mechanism to send: one the server advertised, never another.

    A server rejects an unadvertised mechanism anyway (``504``), and some count it as a failed
    login; saying which mechanisms were on offer is the useful error.
    """
    offered = [m.upper() for m in offered]
    wanted = candidates(auth)
    chosen = preferred_mechanism(wanted, offered)
    if chosen not in offered:
        on_offer = ", ".join(offered) if offered else "none"
        raise AuthMechanismUnsupportedError(
            f"{where}: the server does not offer AUTH {' or '.join(wanted)} (it offers: {on_offer})",
            mechanism=" or ".join(wanted),
            offered=on_offer,
        )
    return chosen
