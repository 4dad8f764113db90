"""Health, statistics and metrics: ``/v1/mailboxes/{id}/health``, ``/v1/health``, ``/v1/stats``,
``/metrics``. (The watchers themselves run in :mod:`mailport.runtime`.)"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from mailport.api.deps import Caller, error_responses, get_services, require_tenant, require_tenant_key
from mailport.mailboxes.models import Mailbox
from mailport.metrics import CONTENT_TYPE_LATEST, render
from mailport.services import Services
from mailport.sync.health import (
    MailboxHealth,
    TenantHealth,
    TenantStats,
    mailbox_health,
    tenant_health,
    tenant_stats,
)

MAX_MAILBOXES = 10_000


router = APIRouter(tags=["health"])


def _tenant(caller: Caller) -> str:
    assert caller.tenant_id is not None
    return caller.tenant_id


async def _all_mailboxes(services: Services, tenant_id: str, *, owner: str | None = None) -> list[Mailbox]:
    out: list[Mailbox] = []
    after: str | None = None
    while len(out) < MAX_MAILBOXES:
        page = await services.mailboxes.repository.page(tenant_id, owner=owner, after=after, limit=500)
        out.extend(page)
        if len(page) < 500:
            break
        after = page[-1].id
    return out


@router.get(
    "/v1/mailboxes/{mailbox_id}/health",
    summary="A mailbox's connection health and 24-hour statistics",
    responses=error_responses(401, 403, 404, 422),
)
async def get_mailbox_health(
    mailbox_id: str, caller: Caller = Depends(require_tenant), services: Services = Depends(get_services)
) -> MailboxHealth:
    mailbox = await services.mailboxes.get(_tenant(caller), mailbox_id)
    return (await mailbox_health(services.database, [mailbox]))[0]


@router.get(
    "/v1/health",
    summary="Health of every mailbox of the tenant (of a user's token: of its user)",
    responses=error_responses(401, 403, 422),
)
async def get_tenant_health(
    caller: Caller = Depends(require_tenant), services: Services = Depends(get_services)
) -> TenantHealth:
    mailboxes = await _all_mailboxes(services, _tenant(caller), owner=caller.owner)
    return tenant_health(await mailbox_health(services.database, mailboxes))


@router.get(
    "/v1/stats",
    summary="Messages processed and failed, errors, processing time, queue (24 h)",
    responses=error_responses(401, 403, 422),
)
async def get_stats(
    caller: Caller = Depends(require_tenant_key), services: Services = Depends(get_services)
) -> TenantStats:
    mailboxes = await _all_mailboxes(services, _tenant(caller))
    return tenant_stats(await mailbox_health(services.database, mailboxes))


@router.get("/metrics", tags=["ops"], summary="Prometheus metrics of this process", include_in_schema=False)
async def metrics() -> Response:
    return Response(render(), media_type=CONTENT_TYPE_LATEST)


def watchers_ready(request: Request) -> bool | None:
    """For /readyz: None when this process runs no watchers, else whether they are running."""
    runtime = getattr(request.app.state, "runtime", None)
    return None if runtime is None else runtime.watching


def delivery_ready(request: Request) -> bool | None:
    """For /readyz: None unless webhook delivery runs in a child process of this one
    (``MAILPORT_DELIVERY_PROCESS``), else whether the child's dispatcher runs."""
    runtime = getattr(request.app.state, "runtime", None)
    return None if runtime is None else runtime.delivering
