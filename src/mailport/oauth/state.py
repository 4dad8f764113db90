"""The OAuth ``state``: signed, bound to tenant/mailbox/provider, 10 minutes, single-use.

The state is a Fernet token made with the service's key ring (AES + HMAC-SHA256, so it is
signed *and* sealed): it carries the tenant, the mailbox, the provider, the purpose, the
owner of the mailbox to create (a JWT caller's user, issue 19), the return URL, the connector
the mailbox will use (its scopes) and the PKCE verifier. Sealing the verifier inside the state
means nothing must be stored between "authorize" and "callback", yet someone who sees the
authorization URL still cannot learn the verifier. Key rotation keeps states made under an older key readable.

The state is also bound to the browser that starts the sign-in (RFC 9700 4.7.1): it seals a
random ``binding`` that mailport's start page hands that browser as a cookie, and the callback
accepts the state only with that cookie (see :mod:`mailport.oauth.authcode`).

Single use needs shared storage: :class:`StateStore` is the small port the callback uses to
consume the state's nonce exactly once (a database table with a unique nonce in production).
Tampered, expired and replayed states fail with three distinct errors.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from mailport.clock import Clock, utc_now
from mailport.crypto import KeyRing, Secret
from mailport.errors import (
    InputError,
    OAuthStateExpiredError,
    OAuthStateInvalidError,
    OAuthStateReplayedError,
    SecretKeyError,
)

STATE_TTL = timedelta(minutes=10)
MAX_RETURN_URL = 2000
_VERSION = 2


class StateStore(Protocol):
    """Remembers consumed state nonces (until they expire anyway)."""

    async def consume(self, nonce: str, *, expires_at: datetime) -> bool:
        """True the first time ``nonce`` is consumed, False ever after."""
        ...


@dataclass(frozen=True)
class OAuthState:
    provider: str
    tenant_id: str | None
    mailbox_id: str | None
    purpose: str | None
    return_url: str | None
    login_hint: str | None
    nonce: str
    verifier: Secret  # the PKCE code_verifier, sealed inside the state
    expires_at: datetime
    binding: Secret  # the browser binding: the starting browser's cookie holds it
    connector: str = "imap"  # what will read the mailbox (imap, gmail_api, graph): decides the scopes
    owner: str | None = None  # the user the mailbox is for (a JWT caller's, or a connect link's)


def new_verifier() -> Secret:
    """An RFC 7636 code_verifier: 43 characters of url-safe base64 (32 random bytes)."""
    return Secret(secrets.token_urlsafe(32))


def s256_challenge(verifier: Secret) -> str:
    digest = hashlib.sha256(verifier.reveal().encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class StateCodec:
    """Issues and opens states with the key ring; ``clock`` is injectable for tests."""

    def __init__(self, key_ring: KeyRing, *, ttl: timedelta = STATE_TTL, clock: Clock = utc_now) -> None:
        self._key_ring = key_ring
        self._ttl = ttl
        self._clock = clock

    def issue(
        self,
        provider: str,
        *,
        tenant_id: str | None,
        mailbox_id: str | None = None,
        purpose: str | None = None,
        return_url: str | None = None,
        login_hint: str | None = None,
        connector: str = "imap",
        owner: str | None = None,
    ) -> tuple[str, OAuthState]:
        if return_url is not None and len(return_url) > MAX_RETURN_URL:
            raise InputError(f"return_url is longer than {MAX_RETURN_URL} characters", field="return_url")
        expires_at = (self._clock() + self._ttl).astimezone(UTC).replace(microsecond=0)
        state = OAuthState(
            provider=provider,
            tenant_id=tenant_id,
            mailbox_id=mailbox_id,
            purpose=purpose,
            return_url=return_url,
            login_hint=login_hint,
            nonce=secrets.token_urlsafe(16),
            verifier=new_verifier(),
            expires_at=expires_at,
            binding=Secret(secrets.token_urlsafe(32)),
            connector=connector,
            owner=owner,
        )
        payload = {
            "v": _VERSION,
            "p": provider,
            "t": tenant_id,
            "m": mailbox_id,
            "u": purpose,
            "r": return_url,
            "h": login_hint,
            "n": state.nonce,
            "k": state.verifier.reveal(),
            "b": state.binding.reveal(),
            "e": int(expires_at.timestamp()),
            "c": connector,
            "o": owner,
        }
        token = self._key_ring.encrypt(json.dumps(payload, separators=(",", ":")))
        return token, state

    def open(self, token: str, *, provider: str | None = None) -> OAuthState:
        """The state behind ``token``; raises invalid (tampered/foreign) or expired."""
        if not token or len(token) > 8000:
            raise OAuthStateInvalidError("the OAuth state is missing or malformed")
        try:
            payload = json.loads(self._key_ring.decrypt(token))
            if payload.get("v") != _VERSION:
                raise ValueError("unknown state version")
            state = OAuthState(
                provider=str(payload["p"]),
                tenant_id=payload["t"],
                mailbox_id=payload["m"],
                purpose=payload["u"],
                return_url=payload["r"],
                login_hint=payload["h"],
                nonce=str(payload["n"]),
                verifier=Secret(str(payload["k"])),
                expires_at=datetime.fromtimestamp(int(payload["e"]), UTC),
                binding=Secret(str(payload["b"])),
                connector=str(payload.get("c") or "imap"),  # states issued before connectors: IMAP
                owner=payload.get("o"),  # states issued before owners: the tenant's
            )
        except (SecretKeyError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise OAuthStateInvalidError(
                "the OAuth state was altered or was not issued by this service"
            ) from exc
        if provider is not None and state.provider != provider:
            raise OAuthStateInvalidError(
                f"the OAuth state was issued for {state.provider!r}, not {provider!r}"
            )
        if self._clock() >= state.expires_at:
            raise OAuthStateExpiredError("the OAuth sign-in expired (states are valid for 10 minutes)")
        return state

    async def consume(self, token: str, store: StateStore, *, provider: str | None = None) -> OAuthState:
        """Open ``token`` and use it up; a second call raises :class:`OAuthStateReplayedError`."""
        state = self.open(token, provider=provider)
        if not await store.consume(state.nonce, expires_at=state.expires_at):
            raise OAuthStateReplayedError(
                "this OAuth sign-in was already completed (the state is single-use)"
            )
        return state
