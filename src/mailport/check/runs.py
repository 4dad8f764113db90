"""The ``check_runs`` table: connection checks of the wizard and the dashboard, shared by every
API instance.

A check takes seconds and its page polls it; behind a load balancer without sticky sessions the
poll lands on any instance. So the instance that starts a check runs it and writes each step
here as the checker records it, and whichever instance a poll reaches renders the run from its
row. The row holds what the page shows (the steps so far, the result, a refused certificate's
PEM a person may choose to trust), never a password or a token: the wizard's sealed draft stays
in the browser.

Every write of the runner is conditional on the run still running *under that runner*: a run
declared lost (its runner stopped updating it, see :meth:`CheckRunStore.give_up`) is final, and
a runner that wakes up late cannot overwrite it. Expired rows are purged by
:meth:`CheckRunStore.purge` (called when runs start, at most once a minute per process).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import and_, delete, insert, select, update

from mailport.store.database import Database
from mailport.store.tables import check_runs

Kind = Literal["imap", "pop3", "api"]
State = Literal["running", "done", "failed"]  # done: everything works; failed: it did not (or was lost)
RUNNING: State = "running"


@dataclass(frozen=True)
class CheckRunRecord:
    """One row: ``data`` is the JSON a page renders (see :mod:`mailport.web.checks`)."""

    id: str
    tenant_id: str
    kind: str
    state: str
    data: dict[str, Any]
    runner: str | None
    created_at: datetime
    updated_at: datetime
    expires_at: datetime

    @property
    def running(self) -> bool:
        return self.state == RUNNING


def _encode(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"))


class CheckRunStore:
    """Create, update, read, give up on and purge check runs."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def create(
        self,
        run_id: str,
        *,
        tenant_id: str,
        kind: Kind,
        data: dict[str, Any],
        runner: str,
        now: datetime,
        expires_at: datetime,
    ) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                insert(check_runs).values(
                    id=run_id,
                    tenant_id=tenant_id,
                    kind=kind,
                    state=RUNNING,
                    data=_encode(data),
                    runner=runner,
                    created_at=now,
                    updated_at=now,
                    expires_at=expires_at,
                )
            )

    async def update(
        self,
        run_id: str,
        *,
        runner: str,
        data: dict[str, Any],
        now: datetime,
        state: State = RUNNING,
        expires_at: datetime | None = None,
    ) -> bool:
        """The runner's progress (or, with ``state``, its end); False when the run is no longer
        this runner's to write (given up on, purged)."""
        values: dict[str, Any] = {"data": _encode(data), "state": state, "updated_at": now}
        if expires_at is not None:
            values["expires_at"] = expires_at
        async with self._db.transaction() as conn:
            result = await conn.execute(
                update(check_runs)
                .where(
                    check_runs.c.id == run_id,
                    check_runs.c.runner == runner,
                    check_runs.c.state == RUNNING,
                )
                .values(**values)
            )
        return bool(result.rowcount)

    async def get(self, tenant_id: str, run_id: str) -> CheckRunRecord | None:
        """The run, only for the tenant that started it (another tenant's is not found)."""
        query = select(check_runs).where(check_runs.c.id == run_id, check_runs.c.tenant_id == tenant_id)
        async with self._db.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        return CheckRunRecord(
            id=row.id,
            tenant_id=row.tenant_id,
            kind=row.kind,
            state=row.state,
            data=json.loads(row.data),
            runner=row.runner,
            created_at=row.created_at,
            updated_at=row.updated_at,
            expires_at=row.expires_at,
        )

    async def give_up(
        self, record: CheckRunRecord, *, data: dict[str, Any], now: datetime, expires_at: datetime
    ) -> bool:
        """Declare a run lost (``failed``), unless its runner wrote to it since ``record`` was read."""
        async with self._db.transaction() as conn:
            result = await conn.execute(
                update(check_runs)
                .where(
                    and_(
                        check_runs.c.id == record.id,
                        check_runs.c.state == RUNNING,
                        check_runs.c.updated_at == record.updated_at,
                    )
                )
                .values(state="failed", data=_encode(data), updated_at=now, expires_at=expires_at)
            )
        return bool(result.rowcount)

    async def started_since(self, tenant_id: str, since: datetime) -> list[datetime]:
        """When the tenant's runs that started after ``since`` started, oldest first (what the
        fleet-wide budget of the web's checks counts)."""
        query = (
            select(check_runs.c.created_at)
            .where(check_runs.c.tenant_id == tenant_id, check_runs.c.created_at > since)
            .order_by(check_runs.c.created_at)
        )
        async with self._db.connect() as conn:
            return [row.created_at for row in (await conn.execute(query)).all()]

    async def purge(self, *, now: datetime) -> int:
        """Forget the runs that expired."""
        async with self._db.transaction() as conn:
            result = await conn.execute(delete(check_runs).where(check_runs.c.expires_at < now))
        return int(result.rowcount or 0)
