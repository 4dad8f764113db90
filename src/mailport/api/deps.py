"""FastAPI dependencies shared by the routers: who is calling, and the service graph.

Contract (every router relies on it):

* ``Depends(require_tenant)`` -> :class:`Caller` for a valid tenant API key
  (``Authorization: Bearer <key>``), or for a host application's user token (a JWT its tenant's
  verifier accepts: ``Caller.owner`` is the user); raises ``UnauthorizedError`` (401) otherwise
  (a refused JWT: a ``TokenRejectedError`` code such as ``token_expired``), and
  ``ForbiddenError`` (403) for the admin key (it has no mailboxes).
* ``Depends(require_tenant_key)`` -> the same, but only for a tenant API key: a JWT caller gets
  403 ``owner_forbidden`` (tenant-wide configuration: webhooks, OAuth apps, push channels, the
  JWT verifier, API keys, stats).
* ``Depends(require_tenant_admin)`` -> the admin key, or a key of the tenant named by the path's
  ``tenant_id`` (another tenant's key: 404, as if it did not exist; a JWT: 403).
* ``Depends(require_admin)`` -> :class:`Caller` for ``MAILPORT_ADMIN_KEY``; 401 for a missing or
  unknown key, 403 for a tenant key.
* ``Depends(get_services)`` -> :class:`mailport.services.Services`.
* ``Depends(get_detector)`` -> the app's :class:`~mailport.detect.Detector` (the API and the wizard share it).

A tenant key only ever sees its own tenant: repositories take ``caller.tenant_id``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import Depends, Request
from fastapi.security import HTTPBearer

from mailport.api.errors import ERROR_BODY_SCHEMA
from mailport.auth.tokens import looks_like_jwt
from mailport.detect import Detector
from mailport.errors import ConfigurationError, NotFoundError, OwnerForbiddenError, UnauthorizedError
from mailport.services import Services
from mailport.tenants.service import TenantService

# Declares the scheme in OpenAPI (the "Authorize" button in /docs); we parse the header ourselves
# so that a missing key is our 401 error body, not FastAPI's 403.
bearer_scheme = HTTPBearer(
    auto_error=False,
    description="A tenant API key; or a host application's user token (a JWT its tenant's verifier "
    "accepts: that user's mailboxes only, see docs/host-apps.md); or the admin key for /v1/tenants",
)


@dataclass(frozen=True)
class Caller:
    """The authenticated caller of a request."""

    tenant_id: str | None  # None for the instance admin
    is_admin: bool = False
    key_prefix: str = ""
    # The host application's user behind a JWT (issue 19): such a caller reaches only the
    # mailboxes whose ``owner`` is this value, and what hangs off them. None: a tenant key,
    # which reaches every owner's.
    owner: str | None = None


def get_services(request: Request) -> Services:
    services: Services | None = getattr(request.app.state, "services", None)
    if services is None:
        raise ConfigurationError(
            "the service graph is not built yet",
            hint="Run the app with its lifespan (uvicorn does), or pass services= to create_app().",
        )
    return services


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise UnauthorizedError("missing API key")
    return token.strip()


JWT_KEY_PREFIX = "jwt"  # Caller.key_prefix of a JWT caller (logs tell it from a key's prefix)


async def require_tenant(request: Request, _scheme: Any = Depends(bearer_scheme)) -> Caller:
    """The tenant behind the bearer key or JWT (401 unknown/revoked key or refused token, 403
    the admin key). Whether the token is a JWT follows the contract of issue 19: two dots and a
    JSON header (:func:`mailport.auth.tokens.looks_like_jwt`). A JWT caller's path mailbox is
    checked here too (:func:`check_path_mailbox`)."""
    token = bearer_token(request)
    tenants = get_services(request).tenants
    if looks_like_jwt(token):
        caller = await _jwt_caller(tenants, token)
        await check_path_mailbox(request, caller)
        return caller
    principal = await tenants.authenticate_tenant(token)
    return Caller(tenant_id=principal.tenant_id, is_admin=False, key_prefix=principal.key_prefix)


async def check_path_mailbox(request: Request, caller: Caller) -> None:
    """A JWT caller reaches ``/v1/mailboxes/{mailbox_id}/…`` only for a mailbox its user owns
    (404 otherwise, like another tenant's). Checked here, where every tenant route authenticates,
    so that no route, present or future, can forget it."""
    mailbox_id = request.path_params.get("mailbox_id")
    if caller.owner is not None and isinstance(mailbox_id, str):
        assert caller.tenant_id is not None
        await get_services(request).mailboxes.get(caller.tenant_id, mailbox_id, owner=caller.owner)


async def _jwt_caller(tenants: TenantService, token: str) -> Caller:
    identity = await tenants.authenticate_jwt(token)
    return Caller(tenant_id=identity.tenant_id, key_prefix=JWT_KEY_PREFIX, owner=identity.owner)


def refuse_owner(caller: Caller) -> Caller:
    """``caller`` when it holds a tenant key; 403 ``owner_forbidden`` for a user's JWT."""
    if caller.owner is not None:
        raise OwnerForbiddenError("a user's token cannot change the tenant's configuration")
    return caller


async def require_tenant_key(caller: Caller = Depends(require_tenant)) -> Caller:
    """A tenant API key (tenant-wide configuration): 403 ``owner_forbidden`` for a JWT caller."""
    return refuse_owner(caller)


async def require_tenant_admin(
    tenant_id: str, request: Request, _scheme: Any = Depends(bearer_scheme)
) -> Caller:
    """The admin key, or an API key of the path's tenant (another tenant's: 404; a JWT: 403)."""
    token = bearer_token(request)
    tenants = get_services(request).tenants
    if looks_like_jwt(token):
        return refuse_owner(await _jwt_caller(tenants, token))
    principal = await tenants.authenticate(token)
    if principal.is_admin:
        return Caller(tenant_id=None, is_admin=True, key_prefix=principal.key_prefix)
    if principal.tenant_id != tenant_id:
        raise NotFoundError(f"no tenant {tenant_id!r}")
    return Caller(tenant_id=principal.tenant_id, key_prefix=principal.key_prefix)


async def require_admin(request: Request, _scheme: Any = Depends(bearer_scheme)) -> Caller:
    """The instance admin (401 missing/unknown key or no admin key configured, 403 a tenant key)."""
    principal = await get_services(request).tenants.authenticate_admin(bearer_token(request))
    return Caller(tenant_id=None, is_admin=True, key_prefix=principal.key_prefix)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries with the one error body, for the given statuses."""
    descriptions = {
        401: "Missing, unknown or revoked API key, or a refused JWT",
        403: "This key (or a user's JWT) may not do that",
        404: "No such resource (or it belongs to another tenant)",
        409: "Conflicts with an existing resource",
        422: "Invalid input (the `field` names the offending field)",
    }
    return {
        status: {
            "description": descriptions.get(status, "Error"),
            "content": {"application/json": {"schema": ERROR_BODY_SCHEMA}},
        }
        for status in statuses
    }


def get_detector(request: Request, services: Services = Depends(get_services)) -> Detector:
    """One detector per app (it holds the cache); tests may put their own on ``app.state``."""
    detector: Detector | None = getattr(request.app.state, "detector", None)
    if detector is None:
        detector = Detector.from_settings(
            services.settings, guard=services.guard, mail_ssl_context=services.trust.context()
        )
        request.app.state.detector = detector
    return detector
