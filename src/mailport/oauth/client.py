"""The HTTP side of OAuth2: token endpoint (code, refresh, device grants), device authorization,
revocation (RFC 7009) and userinfo, with every failure translated once into mailport's errors.

Hand-written over an injected ``httpx.AsyncClient`` rather than authlib's client because the
part we need is a handful of form POSTs, while what matters is exact: tokens become
:class:`~mailport.crypto.Secret` the moment they are parsed (authlib hands back plain dicts),
and each outcome maps to one error class — ``invalid_grant`` (a dead grant), ``invalid_client``
(the operator's app), and network errors or 5xx (:class:`OAuthUnavailableError`, retriable and
never an authentication failure). Nothing here logs or raises a token, a code or a secret.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from mailport.clock import Clock, utc_now
from mailport.crypto import Secret
from mailport.errors import (
    DeviceCodeExpiredError,
    OAuthClientRejectedError,
    OAuthDeniedError,
    OAuthError,
    OAuthInvalidGrantError,
    OAuthUnavailableError,
)
from mailport.net.connect import http_client
from mailport.net.guard import HostGuard
from mailport.oauth.providers import OAuthApp, OAuthProvider

log = logging.getLogger(__name__)

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
DEFAULT_TIMEOUT = httpx.Timeout(15.0, connect=10.0)
_DESCRIPTION_LIMIT = 500


@dataclass(frozen=True, repr=False)
class TokenResponse:
    """A successful token endpoint answer, secrets wrapped."""

    access_token: Secret
    token_type: str
    expires_at: datetime | None
    refresh_token: Secret | None
    id_token: Secret | None
    scope: str | None
    issued_at: datetime | None = None  # when the answer came: expires_at - issued_at = lifetime

    def __repr__(self) -> str:
        return f"TokenResponse(access_token=***, expires_at={self.expires_at!r}, scope={self.scope!r})"


@dataclass(frozen=True)
class ErrorResponse:
    """An OAuth error answer (RFC 6749 5.2): ``error`` code and its description."""

    error: str
    description: str
    status: int

    @property
    def said(self) -> str:
        return f"{self.error}: {self.description}" if self.description else self.error


def raise_for(provider: OAuthProvider, answer: ErrorResponse, *, during: str) -> None:
    """Translate an OAuth error answer into the one mailport error it means."""
    message = f"{provider.name} refused the {during}: {answer.said}"
    kwargs: dict[str, Any] = {"server_said": answer.said, "provider": provider.key}
    if answer.error == "invalid_grant":
        raise OAuthInvalidGrantError(message, **kwargs)
    if answer.error in ("invalid_client", "unauthorized_client"):
        raise OAuthClientRejectedError(message, **kwargs)
    if answer.error == "access_denied":
        raise OAuthDeniedError(message, **kwargs)
    if answer.error == "expired_token":
        raise DeviceCodeExpiredError(f"the {provider.name} device code expired", **kwargs)
    if answer.error in ("temporarily_unavailable", "server_error"):
        raise OAuthUnavailableError(message, **kwargs)
    raise OAuthError(message, **kwargs)


class OAuthClient:
    """Talks to authorization servers; one instance per service, sharing an HTTP client."""

    def __init__(
        self, http: httpx.AsyncClient | None = None, *, guard: HostGuard | None = None, clock: Clock = utc_now
    ) -> None:
        """``guard``: vets every endpoint's host at each connection (the service's SSRF guard, for
        endpoints from the providers file and tenants' apps alike; None: the operator's)."""
        self._own_http = http is None
        self._http = http or http_client(guard or HostGuard.for_operator(), timeout=DEFAULT_TIMEOUT)
        self._clock = clock

    async def aclose(self) -> None:
        if self._own_http:
            await self._http.aclose()

    # ------------------------------------------------------------------ grants

    async def exchange_code(
        self, provider: OAuthProvider, app: OAuthApp, *, code: Secret, redirect_uri: str, verifier: Secret
    ) -> TokenResponse:
        form = {
            "grant_type": "authorization_code",
            "code": code.reveal(),
            "redirect_uri": redirect_uri,
            "code_verifier": verifier.reveal(),
        }
        return await self._grant(provider, app, form, during="authorization code exchange")

    async def refresh(
        self, provider: OAuthProvider, app: OAuthApp, refresh_token: Secret, *, scope: str | None = None
    ) -> TokenResponse:
        """A refresh; ``scope`` names the resource's scopes where the provider needs it (Microsoft:
        one grant spans Outlook's IMAP/SMTP and Graph, and the access token is for one of them)."""
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token.reveal()}
        if scope:
            form["scope"] = scope
        return await self._grant(provider, app, form, during="token refresh")

    async def poll_device(
        self, provider: OAuthProvider, app: OAuthApp, device_code: Secret
    ) -> TokenResponse | ErrorResponse:
        """One device-grant poll: the tokens, or the error answer (pending, slow_down, …)."""
        form = {"grant_type": DEVICE_GRANT, "device_code": device_code.reveal()}
        return await self.token_request(provider, app, form, during="device code poll")

    async def _grant(
        self, provider: OAuthProvider, app: OAuthApp, form: dict[str, str], *, during: str
    ) -> TokenResponse:
        answer = await self.token_request(provider, app, form, during=during)
        if isinstance(answer, ErrorResponse):
            raise_for(provider, answer, during=during)
            raise AssertionError("unreachable")  # pragma: no cover
        return answer

    async def token_request(
        self, provider: OAuthProvider, app: OAuthApp, form: dict[str, str], *, during: str
    ) -> TokenResponse | ErrorResponse:
        url = provider.url(provider.token_endpoint, app.tenant)
        data = dict(form)
        headers = {"Accept": "application/json"}
        self._authenticate(provider, app, data, headers)
        body = await self._post(provider, url, data, headers, during=during)
        if isinstance(body, ErrorResponse):
            return body
        return self._token_response(provider, body, during=during)

    # ------------------------------------------------------------------ device, revoke, userinfo

    async def device_authorization(
        self, provider: OAuthProvider, app: OAuthApp, scope: str
    ) -> dict[str, Any]:
        """RFC 8628 3.1-3.2: the raw (non-secret parts are checked by the caller) answer.

        A confidential client authenticates here as at the token endpoint (RFC 8628 3.1 refers
        to RFC 6749 2.3: ``client_secret_basic`` or ``client_secret_post``, per provider); a
        public client sends its ``client_id``."""
        assert provider.device_authorization_endpoint is not None
        url = provider.url(provider.device_authorization_endpoint, app.tenant)
        data = {"scope": scope}
        headers = {"Accept": "application/json"}
        self._authenticate(provider, app, data, headers)
        body = await self._post(provider, url, data, headers, during="device sign-in")
        if isinstance(body, ErrorResponse):
            raise_for(provider, body, during="device sign-in")
            raise AssertionError("unreachable")  # pragma: no cover
        return body

    async def revoke(
        self, provider: OAuthProvider, app: OAuthApp, token: Secret, *, hint: str = "refresh_token"
    ) -> bool:
        """RFC 7009 revocation; False when the provider has no revocation endpoint.

        A token the provider no longer knows (``invalid_token``) counts as revoked.
        """
        if provider.revocation_endpoint is None:
            return False
        url = provider.url(provider.revocation_endpoint, app.tenant)
        data = {"token": token.reveal(), "token_type_hint": hint}
        headers: dict[str, str] = {"Accept": "application/json"}
        self._authenticate(provider, app, data, headers)
        body = await self._post(provider, url, data, headers, during="token revocation", empty_ok=True)
        if isinstance(body, ErrorResponse) and body.error not in ("invalid_token",):
            raise_for(provider, body, during="token revocation")
        return True

    async def discard(
        self, provider: OAuthProvider, app: OAuthApp, *, access_token: Secret, refresh_token: Secret | None
    ) -> bool:
        """Revoke tokens mailport obtained but will not keep (a sign-in refused after the code
        exchange): never leave a live grant behind. Best effort, never raises; True when revoked.
        The refresh token first (revoking it ends the whole grant, RFC 7009 2.1)."""
        token, hint = refresh_token, "refresh_token"
        if token is None:
            token, hint = access_token, "access_token"
        try:
            revoked = await self.revoke(provider, app, token, hint=hint)
        except Exception as exc:  # the caller's own error is the one to report
            log.warning("%s: revoking discarded tokens failed: %s", provider.name, type(exc).__name__)
            return False
        if not revoked:
            log.warning(
                "%s has no revocation endpoint; discarded tokens live until they expire", provider.name
            )
        return revoked

    async def userinfo(self, provider: OAuthProvider, access_token: Secret) -> dict[str, Any]:
        if provider.userinfo_endpoint is None:
            return {}
        url = provider.url(provider.userinfo_endpoint)
        headers = {"Authorization": f"Bearer {access_token.reveal()}", "Accept": "application/json"}
        try:
            response = await self._http.get(url, headers=headers)
        except httpx.HTTPError as exc:
            raise self._unreachable(provider, url, exc, during="userinfo request") from exc
        if response.status_code >= 500:
            raise OAuthUnavailableError(
                f"{provider.name} userinfo answered HTTP {response.status_code}", provider=provider.key
            )
        if response.status_code != 200:
            return {}
        try:
            body = response.json()
        except ValueError:
            return {}
        return body if isinstance(body, dict) else {}

    # ------------------------------------------------------------------ plumbing

    @staticmethod
    def _authenticate(
        provider: OAuthProvider, app: OAuthApp, data: dict[str, str], headers: dict[str, str]
    ) -> None:
        secret = app.client_secret.reveal() if app.client_secret else None
        if secret is not None and provider.token_auth_method == "client_secret_basic":
            # RFC 6749 2.3.1: both parts form-urlencoded before base64.
            pair = f"{quote(app.client_id, safe='')}:{quote(secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
            return
        data["client_id"] = app.client_id
        if secret is not None and provider.token_auth_method == "client_secret_post":
            data["client_secret"] = secret

    async def _post(
        self,
        provider: OAuthProvider,
        url: str,
        data: Mapping[str, str],
        headers: Mapping[str, str],
        *,
        during: str,
        empty_ok: bool = False,
    ) -> dict[str, Any] | ErrorResponse:
        try:
            response = await self._http.post(url, data=dict(data), headers=dict(headers))
        except httpx.HTTPError as exc:
            raise self._unreachable(provider, url, exc, during=during) from exc
        status = response.status_code
        if status >= 500 or status == 429:
            raise OAuthUnavailableError(
                f"{provider.name} answered HTTP {status} to the {during}; retrying later",
                provider=provider.key,
            )
        try:
            body = response.json() if response.content else {}
        except ValueError:
            body = None
        if status >= 400:
            if isinstance(body, dict) and isinstance(body.get("error"), str):
                description = str(body.get("error_description") or "")[:_DESCRIPTION_LIMIT]
                return ErrorResponse(body["error"], description, status)
            raise OAuthError(
                f"{provider.name} answered HTTP {status} to the {during} without an OAuth error",
                provider=provider.key,
            )
        if body is None or not isinstance(body, dict):
            if empty_ok:
                return {}
            raise OAuthError(
                f"{provider.name} answered the {during} with something that is not a JSON object",
                provider=provider.key,
            )
        return body

    def _unreachable(
        self, provider: OAuthProvider, url: str, exc: httpx.HTTPError, *, during: str
    ) -> OAuthUnavailableError:
        where = urlsplit(url).netloc
        kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "failed"
        return OAuthUnavailableError(
            f"the {during} to {provider.name} ({where}) {kind}: {type(exc).__name__}",
            provider=provider.key,
        )

    def _token_response(self, provider: OAuthProvider, body: dict[str, Any], *, during: str) -> TokenResponse:
        access = body.get("access_token")
        if not isinstance(access, str) or not access:
            raise OAuthError(f"{provider.name} answered the {during} without an access token")
        expires_at: datetime | None = None
        issued_at = self._clock()
        expires_in = body.get("expires_in")
        if expires_in is not None:
            try:
                expires_at = issued_at + timedelta(seconds=int(expires_in))
            except (TypeError, ValueError):
                expires_at = None
        refresh = body.get("refresh_token")
        id_token = body.get("id_token")
        scope = body.get("scope")
        return TokenResponse(
            access_token=Secret(access),
            token_type=str(body.get("token_type") or "Bearer"),
            expires_at=expires_at,
            refresh_token=Secret(refresh) if isinstance(refresh, str) and refresh else None,
            id_token=Secret(id_token) if isinstance(id_token, str) and id_token else None,
            scope=scope if isinstance(scope, str) else None,
            issued_at=issued_at,
        )
