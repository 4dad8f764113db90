"""Which tenants want the changes made on the server (the opt-in event types), cheaply.

The change events (:data:`mailport.events.CHANGE_TYPES`) cost server round trips, so a watcher
computes them only for a tenant with an **active webhook endpoint that lists one of them**.
Watchers ask :meth:`ChangeInterest.wanted` (a dictionary lookup, no I/O) at every change they
handle; the dictionary is one query over the active endpoints, read again every
``refresh_seconds`` (default 10 s) by one task per process, whatever the number of watchers.
When a tenant newly wants a type, ``on_new`` is called with its id (the orchestrator wakes that
tenant's watchers, so that their streams start within seconds rather than at the next IDLE
renewal).

Pull consumers do not opt in: they read the change events whenever a tenant's webhook asked for
them (they are in the log), but ``GET /v1/events`` alone does not make watchers compute them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from sqlalchemy import select

from mailport.events import CHANGE_TYPES
from mailport.store import Database
from mailport.store.tables import webhook_endpoints
from mailport.tasks import cancel_and_wait, stop_if_cancelled

log = logging.getLogger(__name__)

ACTIVE = "active"  # webhook_endpoints.status (mailport.delivery.models.EndpointStatus)
NOTHING: frozenset[str] = frozenset()


class ChangeInterest:
    def __init__(
        self,
        database: Database,
        *,
        refresh_seconds: float = 10.0,
        on_new: Callable[[str], None] | None = None,
    ) -> None:
        self.database = database
        self.refresh_seconds = refresh_seconds
        self.on_new = on_new
        self._wanted: dict[str, frozenset[str]] = {}
        self._task: asyncio.Task[None] | None = None

    def wanted(self, tenant_id: str) -> frozenset[str]:
        """The opt-in types some active endpoint of the tenant lists (empty: none)."""
        return self._wanted.get(tenant_id, NOTHING)

    async def refresh(self) -> None:
        query = select(webhook_endpoints.c.tenant_id, webhook_endpoints.c.events).where(
            webhook_endpoints.c.status == ACTIVE, webhook_endpoints.c.events.is_not(None)
        )
        found: dict[str, set[str]] = {}
        async with self.database.connect() as conn:
            for row in await conn.execute(query):
                types = CHANGE_TYPES.intersection(row.events.split())
                if types:
                    found.setdefault(row.tenant_id, set()).update(types)
        before, self._wanted = self._wanted, {t: frozenset(types) for t, types in found.items()}
        if self.on_new is not None:
            for tenant_id, types in self._wanted.items():
                if types - before.get(tenant_id, NOTHING):
                    self.on_new(tenant_id)

    async def start(self) -> None:
        await self.refresh()
        self._task = asyncio.create_task(self._loop(), name="change-interest")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task, timeout=5)
            self._task = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_seconds)
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception:
                stop_if_cancelled()
                log.warning("reading which tenants want change events failed; retrying", exc_info=True)
