"""Cloud Pub/Sub, as much as pulling Gmail's notifications needs: ``subscriptions.pull``,
``subscriptions.acknowledge`` and a service-account token.

Gmail publishes ``{"emailAddress", "historyId"}`` to a Pub/Sub topic after a ``users.watch``.
Pulling from a subscription of that topic needs no public endpoint, only a service account
allowed to read the subscription (``MAILPORT_GMAIL_PUBSUB_CREDENTIALS_FILE``: the key JSON
Google's console hands out).

Hand-written rather than ``google-cloud-pubsub`` + ``google-auth``: those are synchronous or
gRPC-based, large, and would open connections past mailport's host guard. The whole need is two
JSON endpoints and the OAuth 2.0 JWT-bearer grant (RFC 7523): a JWT signed RS256 with the
service account's key (``cryptography``), exchanged at the key's ``token_uri`` for an access
token that is cached until shortly before it expires.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from mailport.connectors.api_http import ApiHttp
from mailport.crypto import Secret
from mailport.errors import ConfigurationError, OAuthClientRejectedError, OAuthUnavailableError

PUBSUB_SCOPE = "https://www.googleapis.com/auth/pubsub"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ASSERTION_SECONDS = 3600  # Google accepts at most an hour
REFRESH_MARGIN = 60.0  # a cached token is replaced this many seconds before it expires
_URLSAFE = str.maketrans("-_", "+/")


@dataclass(frozen=True)
class ReceivedMessage:
    """One pulled notification. ``email``/``history_id`` are empty for a message that is not a
    Gmail notification (acknowledge it anyway, or it comes back forever)."""

    ack_id: str
    email: str
    history_id: str
    message_id: str
    publish_time: datetime | None
    delivery_attempt: int | None = None


def decode_gmail_notification(data: str | None) -> tuple[str, str]:
    """``message.data`` of a Gmail notification (base64 JSON ``{"emailAddress", "historyId"}``)
    → (email, historyId as a decimal string); ("", "") when it is not one."""
    if not data:
        return "", ""
    try:
        text = data.translate(_URLSAFE) + "=" * (-len(data) % 4)  # standard or URL-safe base64
        payload = json.loads(base64.b64decode(text, validate=True))
    except (ValueError, TypeError):
        return "", ""
    if not isinstance(payload, dict):
        return "", ""
    email, history_id = payload.get("emailAddress"), payload.get("historyId")
    if not isinstance(email, str) or not isinstance(history_id, str | int) or isinstance(history_id, bool):
        return "", ""
    return email, str(history_id)


def _rfc3339(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    text = value.replace("Z", "+00:00")
    if "." in text:  # Pub/Sub gives nanoseconds; Python takes at most microseconds
        head, _, rest = text.partition(".")
        digits = "".join(c for c in rest if c.isdigit())
        zone = rest[len(digits) :]
        text = f"{head}.{digits[:6].ljust(6, '0')}{zone}"
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


class PubSubClient:
    """Pull and acknowledge on one Pub/Sub endpoint (``https://pubsub.googleapis.com``)."""

    def __init__(self, http: ApiHttp) -> None:
        self.http = http

    async def pull(self, subscription: str, max_messages: int = 100) -> list[ReceivedMessage]:
        """Up to ``max_messages`` notifications (``projects/P/subscriptions/S``); the server may
        hold the request a while and answer with none."""
        data = await self.http.json(
            "POST", f"/v1/{_resource(subscription)}:pull", json={"maxMessages": max_messages}, idempotent=True
        )
        received: list[ReceivedMessage] = []
        for item in (data or {}).get("receivedMessages") or ():
            message = item.get("message") or {}
            email, history_id = decode_gmail_notification(message.get("data"))
            received.append(
                ReceivedMessage(
                    ack_id=str(item.get("ackId") or ""),
                    email=email,
                    history_id=history_id,
                    message_id=str(message.get("messageId") or ""),
                    publish_time=_rfc3339(message.get("publishTime")),
                    delivery_attempt=item.get("deliveryAttempt"),
                )
            )
        return received

    async def acknowledge(self, subscription: str, ack_ids: Sequence[str]) -> None:
        if not ack_ids:
            return
        await self.http.request(
            "POST",
            f"/v1/{_resource(subscription)}:acknowledge",
            json={"ackIds": list(ack_ids)},
            expect=(200, 204),
            idempotent=True,
        )


def _resource(name: str) -> str:
    return quote(name.strip("/"), safe="/")


# ---------------------------------------------------------------------- service-account tokens


@dataclass(frozen=True)
class ServiceAccountKey:
    """The fields of a service-account key file mailport uses; the key itself stays private."""

    client_email: str
    private_key_id: str
    token_uri: str
    private_key: rsa.RSAPrivateKey

    def __repr__(self) -> str:
        return f"ServiceAccountKey(client_email={self.client_email!r}, private_key_id='***')"

    @classmethod
    def from_info(cls, info: Mapping[str, Any]) -> ServiceAccountKey:
        try:
            key = serialization.load_pem_private_key(str(info["private_key"]).encode(), password=None)
            email, token_uri = str(info["client_email"]), str(info["token_uri"])
        except (KeyError, ValueError, TypeError):
            raise ConfigurationError(
                "the Pub/Sub service-account key is not a Google service-account key file",
                hint="Set MAILPORT_GMAIL_PUBSUB_CREDENTIALS_FILE to the JSON key of a service account "
                "that may pull from the subscription (see docs/api-connectors.md).",
            ) from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ConfigurationError("the Pub/Sub service-account key is not an RSA key")
        return cls(email, str(info.get("private_key_id") or ""), token_uri, key)

    @classmethod
    def from_file(cls, path: Path) -> ServiceAccountKey:
        try:
            info = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise ConfigurationError(
                f"{path}: cannot read the Pub/Sub service-account key ({type(exc).__name__})"
            ) from exc
        return cls.from_info(info)

    def assertion(self, scope: str, *, now: float) -> str:
        """The signed JWT (RS256) the JWT-bearer grant exchanges for an access token."""
        header = {
            "alg": "RS256",
            "typ": "JWT",
            **({"kid": self.private_key_id} if self.private_key_id else {}),
        }
        claims = {
            "iss": self.client_email,
            "scope": scope,
            "aud": self.token_uri,
            "iat": int(now),
            "exp": int(now) + ASSERTION_SECONDS,
        }
        signing_input = f"{_b64json(header)}.{_b64json(claims)}".encode()
        signature = self.private_key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input.decode()}.{_b64(signature)}"


class ServiceAccountTokens:
    """Access tokens of a service account for :class:`ApiHttp` (``token`` and ``force_refresh``
    are its ``token_source`` and ``force_refresh``). ``client`` is a guarded HTTP client
    (:func:`mailport.net.connect.http_client`)."""

    def __init__(
        self,
        key: ServiceAccountKey,
        *,
        client: httpx.AsyncClient,
        scope: str = PUBSUB_SCOPE,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.key = key
        self._client = client
        self._scope = scope
        self._monotonic = monotonic
        self._wall = wall
        self._token: Secret | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()
        self.grants = 0  # token requests made (tests count them)

    def __repr__(self) -> str:
        return f"ServiceAccountTokens({self.key.client_email!r})"

    async def token(self) -> Secret:
        async with self._lock:
            if self._token is None or self._monotonic() >= self._expires - REFRESH_MARGIN:
                await self._grant()
            assert self._token is not None
            return self._token

    async def force_refresh(self, rejected: Secret | None = None) -> Secret:
        async with self._lock:
            if self._token is None or rejected is None or rejected == self._token:
                await self._grant()
            assert self._token is not None
            return self._token

    async def _grant(self) -> None:
        assertion = self.key.assertion(self._scope, now=self._wall())
        started = self._monotonic()
        try:
            response = await self._client.post(
                self.key.token_uri,
                data={"grant_type": JWT_BEARER, "assertion": assertion},
                headers={"accept": "application/json"},
            )
        except httpx.HTTPError as exc:
            raise OAuthUnavailableError(
                f"service-account token: {type(exc).__name__} at the token endpoint"
            ) from exc
        self.grants += 1
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code >= 500 or response.status_code == 429:
            raise OAuthUnavailableError(
                f"service-account token: the token endpoint answered {response.status_code}"
            )
        if response.status_code != 200 or not isinstance(body.get("access_token"), str):
            said = (
                f"{body.get('error', '')}: {body.get('error_description', '')}"[:300]
                if isinstance(body, dict)
                else ""
            )
            raise OAuthClientRejectedError(
                f"service-account token for {self.key.client_email}: refused (HTTP {response.status_code})",
                server_said=said,
                hint="The Pub/Sub service-account key was refused: create a new key for the service account "
                "and set MAILPORT_GMAIL_PUBSUB_CREDENTIALS_FILE to it.",
            )
        self._token = Secret(body["access_token"])
        self._expires = started + float(body.get("expires_in") or ASSERTION_SECONDS)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64json(value: Mapping[str, Any]) -> str:
    return _b64(json.dumps(value, separators=(",", ":")).encode())


__all__ = [
    "PUBSUB_SCOPE",
    "PubSubClient",
    "ReceivedMessage",
    "ServiceAccountKey",
    "ServiceAccountTokens",
    "decode_gmail_notification",
]
