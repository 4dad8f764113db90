"""``async for event in mailport.watch(...)``: the event log as an async iterator, for library
users who neither receive webhooks nor poll ``GET /v1/events``.

It follows the durable log (so nothing is missed between two reads, and ``after=`` resumes
after a restart), wakes within milliseconds of an append in this process and within
``poll_interval`` of one in another process. With ``ingest=True`` it also runs the mailbox
watchers in this process (a complete embedded mailport: no server needed).

With ``acknowledge=True`` the loop is the pull consumer ``watch`` (scope: ``mailbox_id``) and
acknowledges an event once the consumer asks for the next one, i.e. after the body of the
``async for`` finished with it; the event is accepted when every consumer owing it is done
(:mod:`mailport.events.acceptance`: a webhook endpoint that owes it must answer 2xx).

Leaving the loop early (``break``, ``return``, an exception) must be quiet. Python closes an
abandoned async generator from a task that asyncio schedules later, and ``asyncio.run`` may close
the loop before that task has finished: a generator that closes its own database and watchers in
its ``finally`` is then interrupted half-way ("Exception closing connection … GeneratorExit",
"Event loop is closed"). So what needs closing belongs to a task of its own
(:class:`mailport.runtime.OwnedRuntime`):
a normal end stops it and waits; an abandoned generator leaves it to the loop's shutdown, which
cancels every task and waits until each has finished its cleanup.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable

from sqlalchemy import select

from mailport.config import Settings
from mailport.events import Event, last_seq, row_to_event
from mailport.runtime import OwnedRuntime
from mailport.services import Services
from mailport.store.tables import events as events_table


async def _read(
    services: Services,
    *,
    after: int,
    tenant_id: str | None,
    mailbox_id: str | None,
    types: list[str] | None,
    limit: int = 500,
) -> list[Event]:
    query = select(events_table).where(events_table.c.seq > after)
    if tenant_id is not None:
        query = query.where(events_table.c.tenant_id == tenant_id)
    if mailbox_id is not None:
        query = query.where(events_table.c.mailbox_id == mailbox_id)
    if types:
        query = query.where(events_table.c.type.in_(types))
    async with services.database.connect() as conn:
        rows = await conn.execute(query.order_by(events_table.c.seq).limit(limit))
        return [row_to_event(row) for row in rows]


async def watch(
    settings: Settings | None = None,
    *,
    services: Services | None = None,
    tenant_id: str | None = None,
    mailbox_id: str | None = None,
    after: int | None = None,
    types: Iterable[str] | None = None,
    ingest: bool = False,
    acknowledge: bool = False,
    poll_interval: float = 0.5,
) -> AsyncIterator[Event]:
    """Events as they are appended (from ``after``, else from now), filtered by tenant,
    mailbox and type. Pass ``services`` to share a service graph, else one is built from
    ``settings`` (or the environment) and closed when the iteration ends."""
    runtime = OwnedRuntime(settings, services, watchers=ingest)
    try:
        active = await runtime.start()
        active.events.poll_interval = min(active.events.poll_interval, poll_interval)
        if after is None:
            async with active.database.connect() as conn:
                after = await last_seq(conn)
        wanted = list(types) if types is not None else None
        position = after
        while True:
            batch = await _read(
                active, after=position, tenant_id=tenant_id, mailbox_id=mailbox_id, types=wanted
            )
            if not batch:
                await active.events.wait_after(position, timeout=30.0)
                continue
            for event in batch:
                yield event
                position = event.seq
                if acknowledge:  # as pull consumer "watch" (see mailport.events.acceptance)
                    await active.webhooks.consumed(event.tenant_id, [event], mailbox_id=mailbox_id)
    finally:
        await runtime.stop()
