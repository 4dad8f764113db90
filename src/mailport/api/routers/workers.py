"""``/v1/workers``: the instance admin sees the fleet — every registered worker process, whether
it is alive, its mailboxes, connects per minute and queues (docs/fleet.md)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from mailport.api.deps import Caller, error_responses, get_services, require_admin
from mailport.clock import utc_now
from mailport.fleet import view
from mailport.fleet.view import WorkerDetail, WorkerList
from mailport.services import Services

router = APIRouter(prefix="/v1/workers", tags=["workers (admin)"], responses=error_responses(401, 403, 422))


@router.get(
    "",
    summary="List the worker processes (admin key)",
    description="Every registered worker, dead ones included (`alive: false`) until the janitor "
    "forgets them; the stats are those of each worker's last heartbeat.",
)
async def list_workers(
    _admin: Caller = Depends(require_admin), services: Services = Depends(get_services)
) -> WorkerList:
    return await view.list_workers(services.database, now=utc_now())


@router.get(
    "/{worker_id}",
    summary="Get a worker and the mailboxes it holds (admin key)",
    responses=error_responses(404),
)
async def get_worker(
    worker_id: str, _admin: Caller = Depends(require_admin), services: Services = Depends(get_services)
) -> WorkerDetail:
    return await view.get_worker(services.database, worker_id, now=utc_now())
