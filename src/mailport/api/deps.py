"""FastAPI dependencies shared by the routers: who is calling, and the service graph.

Contract (every router relies on it):

* ``Depends(require_tenant)`` -> :class:`Caller` for a valid tenant API key
  (``Authorization: Bearer <key>``); raises ``UnauthorizedError`` (401) otherwise.
* ``Depends(require_admin)`` -> :class:`Caller` for ``MAILPORT_ADMIN_KEY``; 401/403 otherwise.
* ``Depends(get_services)`` -> :class:`mailport.bootstrap.Services`.

A tenant key only ever sees its own tenant: repositories take ``caller.tenant_id``.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from mailport.bootstrap import Services
from mailport.errors import UnauthorizedError


@dataclass(frozen=True)
class Caller:
    """The authenticated caller of a request."""

    tenant_id: str | None  # None for the instance admin
    is_admin: bool = False
    key_prefix: str = ""


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise UnauthorizedError("missing API key")
    return token.strip()


async def require_tenant(request: Request) -> Caller:
    """Resolve the tenant API key (implemented with the tenant store, issue 4)."""
    bearer_token(request)
    raise UnauthorizedError("tenant API keys are not available yet")


async def require_admin(request: Request) -> Caller:
    """Resolve the admin key (implemented with the tenant store, issue 4)."""
    bearer_token(request)
    raise UnauthorizedError("the admin key is not available yet")
