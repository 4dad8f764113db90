"""``/v1/tenants``: the instance admin creates, lists and deletes tenants and their API keys;
``/v1/tenants/{id}/jwt``: the admin or the tenant's own key sets its host-app JWT verifier."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response

from mailport.api.deps import Caller, error_responses, get_services, require_admin, require_tenant_admin
from mailport.api.paging import Cursor, Limit
from mailport.auth.schemas import JwtRead, JwtSettings
from mailport.services import Services
from mailport.store.pagination import DEFAULT_LIMIT, decode_cursor, encode_cursor
from mailport.tenants.models import ApiKey, Tenant
from mailport.tenants.schemas import (
    ApiKeyCreated,
    ApiKeyList,
    ApiKeyRead,
    TenantCreate,
    TenantCreated,
    TenantPage,
    TenantRead,
)

router = APIRouter(prefix="/v1/tenants", tags=["tenants (admin)"], responses=error_responses(401, 403, 422))


def _tenant(tenant: Tenant) -> TenantRead:
    return TenantRead.model_validate(tenant, from_attributes=True)


def _key(key: ApiKey) -> ApiKeyRead:
    return ApiKeyRead.model_validate(key, from_attributes=True)


@router.post(
    "", status_code=201, summary="Create a tenant and its first API key", responses=error_responses(409)
)
async def create_tenant(
    body: TenantCreate, _admin: Caller = Depends(require_admin), services: Services = Depends(get_services)
) -> TenantCreated:
    tenant, key = await services.tenants.create_tenant(body.name)
    return TenantCreated(**_tenant(tenant).model_dump(), api_key=key.reveal())


@router.get("", summary="List tenants")
async def list_tenants(
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
    _admin: Caller = Depends(require_admin),
    services: Services = Depends(get_services),
) -> TenantPage:
    found = await services.tenants.repository.page(after=decode_cursor(cursor), limit=limit + 1)
    page = found[:limit]
    more = len(found) > limit
    return TenantPage(
        items=[_tenant(t) for t in page], next_cursor=encode_cursor(page[-1].id) if more else None
    )


@router.get("/{tenant_id}", summary="Get a tenant", responses=error_responses(404))
async def get_tenant(
    tenant_id: str, _admin: Caller = Depends(require_admin), services: Services = Depends(get_services)
) -> TenantRead:
    return _tenant(await services.tenants.repository.get(tenant_id))


@router.delete(
    "/{tenant_id}",
    status_code=204,
    summary="Delete a tenant with its keys and mailboxes",
    responses=error_responses(404),
)
async def delete_tenant(
    tenant_id: str, _admin: Caller = Depends(require_admin), services: Services = Depends(get_services)
) -> Response:
    await services.tenants.delete(tenant_id)
    return Response(status_code=204)


@router.post(
    "/{tenant_id}/keys", status_code=201, summary="Create an API key", responses=error_responses(404)
)
async def create_key(
    tenant_id: str, _admin: Caller = Depends(require_admin), services: Services = Depends(get_services)
) -> ApiKeyCreated:
    await services.tenants.repository.get(tenant_id)
    key, plaintext = await services.tenants.create_key(tenant_id)
    return ApiKeyCreated(**_key(key).model_dump(), api_key=plaintext.reveal())


@router.get("/{tenant_id}/keys", summary="List API keys (prefix only)", responses=error_responses(404))
async def list_keys(
    tenant_id: str, _admin: Caller = Depends(require_admin), services: Services = Depends(get_services)
) -> ApiKeyList:
    await services.tenants.repository.get(tenant_id)
    return ApiKeyList(items=[_key(k) for k in await services.tenants.repository.list_keys(tenant_id)])


@router.delete(
    "/{tenant_id}/keys/{key_id}", status_code=204, summary="Revoke an API key", responses=error_responses(404)
)
async def revoke_key(
    tenant_id: str,
    key_id: str,
    _admin: Caller = Depends(require_admin),
    services: Services = Depends(get_services),
) -> Response:
    await services.tenants.repository.revoke_key(tenant_id, key_id, now=services.tenants.now())
    return Response(status_code=204)


# --- the tenant's host-app JWT verifier (issue 19) ------------------------------------------


@router.get(
    "/{tenant_id}/jwt",
    summary="Get the tenant's JWT verifier (admin key or the tenant's own key)",
    responses=error_responses(404),
)
async def get_jwt(
    tenant_id: str,
    _caller: Caller = Depends(require_tenant_admin),
    services: Services = Depends(get_services),
) -> JwtRead:
    return JwtRead.of(await services.tenants.require_jwt(tenant_id))


@router.put(
    "/{tenant_id}/jwt",
    summary="Set the tenant's JWT verifier: its users' tokens become credentials",
    description="An HS256 secret (at least 32 bytes; never returned: `has_secret`) or a JWKS URL; "
    "issuer, audience, leeway and the claims naming the owner and the tenant. See docs/host-apps.md.",
    responses=error_responses(404, 409),
)
async def put_jwt(
    tenant_id: str,
    body: JwtSettings,
    _caller: Caller = Depends(require_tenant_admin),
    services: Services = Depends(get_services),
) -> JwtRead:
    return JwtRead.of(await services.tenants.set_jwt(tenant_id, body))


@router.delete(
    "/{tenant_id}/jwt",
    status_code=204,
    summary="Remove the tenant's JWT verifier (its users' tokens are refused)",
    responses=error_responses(404),
)
async def delete_jwt(
    tenant_id: str,
    _caller: Caller = Depends(require_tenant_admin),
    services: Services = Depends(get_services),
) -> Response:
    await services.tenants.delete_jwt(tenant_id)
    return Response(status_code=204)
