"""FastAPI dependencies shared by the routers: who is calling, and the service graph.

Contract (every router relies on it):

* ``Depends(require_tenant)`` -> :class:`Caller` for a valid tenant API key
  (``Authorization: Bearer <key>``); raises ``UnauthorizedError`` (401) otherwise, and
  ``ForbiddenError`` (403) for the admin key (it has no mailboxes).
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
from mailport.detect import Detector
from mailport.errors import ConfigurationError, UnauthorizedError
from mailport.services import Services

# Declares the scheme in OpenAPI (the "Authorize" button in /docs); we parse the header ourselves
# so that a missing key is our 401 error body, not FastAPI's 403.
bearer_scheme = HTTPBearer(auto_error=False, description="A tenant API key, or the admin key for /v1/tenants")


@dataclass(frozen=True)
class Caller:
    """The authenticated caller of a request."""

    tenant_id: str | None  # None for the instance admin
    is_admin: bool = False
    key_prefix: str = ""


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


async def require_tenant(request: Request, _scheme: Any = Depends(bearer_scheme)) -> Caller:
    """The tenant behind the bearer key (401 unknown/revoked key, 403 the admin key)."""
    principal = await get_services(request).tenants.authenticate_tenant(bearer_token(request))
    return Caller(tenant_id=principal.tenant_id, is_admin=False, key_prefix=principal.key_prefix)


async def require_admin(request: Request, _scheme: Any = Depends(bearer_scheme)) -> Caller:
    """The instance admin (401 missing/unknown key or no admin key configured, 403 a tenant key)."""
    principal = await get_services(request).tenants.authenticate_admin(bearer_token(request))
    return Caller(tenant_id=None, is_admin=True, key_prefix=principal.key_prefix)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries with the one error body, for the given statuses."""
    descriptions = {
        401: "Missing, unknown or revoked API key",
        403: "This key may not do that",
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
