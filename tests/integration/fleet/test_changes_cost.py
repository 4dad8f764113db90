"""Reconciling costs what changed: at a steady state with 500 mailboxes no statement reads
every mailbox, and one changed mailbox is read again alone."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event, update

from mailport.store.tables import mailboxes
from tests.integration.fleet.conftest import Fleet, postgres_only, wait_for


@contextmanager
def statements(fleet: Fleet) -> Iterator[list[tuple[str, Any]]]:
    seen: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        seen.append((" ".join(statement.split()), parameters))

    engine = fleet.services.database.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def _reads_of_mailboxes(seen: list[tuple[str, Any]]) -> list[str]:
    return [s for s, _ in seen if re.search(r"\bFROM mailboxes\b", s) and s.startswith("SELECT")]


@pytest.mark.slow  # 500 mailboxes made and watched: ~30 s on 2 cores
@postgres_only
async def test_a_steady_state_reads_no_mailbox_table_and_a_change_reads_one_row(fleet: Fleet) -> None:
    ids = {m.id for m in await fleet.mailboxes(500)}
    one, two = await fleet.member("a"), await fleet.member("b")
    await fleet.settled(ids, [one, two], timeout=60)
    await asyncio.sleep(1.0)  # the start-up's writes are over

    with statements(fleet) as seen:
        await asyncio.sleep(3.0)
    whole = [s for s in _reads_of_mailboxes(seen) if " WHERE " not in s]
    assert whole == []  # nothing reads every mailbox per tick
    change_reads = [s for s, _ in seen if "FROM mailbox_changes" in s]
    assert 2 <= len(change_reads) <= 2 * (3.0 / min(one.changes.poll_seconds, 0.4) + 2)  # ∝ time, not rows
    total = len(seen)
    tables = Counter(
        next((t for t in re.findall(r"(?:FROM|UPDATE|INTO) (\w+)", stmt)), "other") for stmt, _ in seen
    )

    target = sorted(one.watchers)[0]
    with statements(fleet) as seen:
        async with fleet.services.database.transaction() as conn:
            await conn.execute(update(mailboxes).where(mailboxes.c.id == target).values(check_interval=900))

        async def restarted() -> bool:
            watcher = one.watchers.get(target)
            return watcher is not None and watcher.mailbox.settings.check_interval == 900

        await wait_for(restarted, timeout=5)
    reloads = [s for s in _reads_of_mailboxes(seen) if "mailboxes.id IN" in s]
    assert reloads, seen
    assert all(" WHERE " in s for s in _reads_of_mailboxes(seen))
    print(f"steady state: {total} statements in 3 s for 2 workers x 250 mailboxes: {dict(tables)}")
