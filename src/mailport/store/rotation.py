"""Re-encrypt every stored secret under the first key of the ring (``mailport keys rotate``).

Online and resumable: rows are handled in small batches, each its own transaction; a value
already under the current key is skipped, so an interrupted run simply continues where it
stopped when started again. Each update is a compare-and-swap on the old ciphertext, so a
value changed meanwhile by the running service (already under the current key) is never
overwritten with a stale one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import and_, func, or_, select, update

from mailport.crypto import KeyRing
from mailport.store.database import Database
from mailport.store.tables import SECRET_COLUMNS, metadata


@dataclass
class RotationReport:
    rows_seen: int = 0
    rows_rotated: int = 0
    values_rotated: int = 0
    rows_changed_meanwhile: int = 0


async def count_secret_rows(database: Database) -> int:
    """How many rows hold at least one secret (the progress bar's total)."""
    total = 0
    async with database.connect() as conn:
        for name, columns in SECRET_COLUMNS.items():
            table = metadata.tables[name]
            condition = or_(*(table.c[c].is_not(None) for c in columns))
            total += int(
                (await conn.execute(select(func.count()).select_from(table).where(condition))).scalar_one()
            )
    return total


async def rotate_secrets(
    database: Database,
    key_ring: KeyRing,
    *,
    batch_size: int = 200,
    progress: Callable[[int], None] | None = None,
) -> RotationReport:
    report = RotationReport()
    for name, columns in SECRET_COLUMNS.items():
        table = metadata.tables[name]
        has_secret = or_(*(table.c[c].is_not(None) for c in columns))
        after: object = None
        while True:
            query = select(table.c.id, *(table.c[c] for c in columns)).where(has_secret)
            if after is not None:
                query = query.where(table.c.id > after)
            async with database.transaction() as conn:
                rows = (await conn.execute(query.order_by(table.c.id).limit(batch_size))).all()
                for row in rows:
                    old = {c: row._mapping[c] for c in columns if row._mapping[c] is not None}
                    new = {c: key_ring.rotate(v) for c, v in old.items() if not key_ring.is_current(v)}
                    if not new:
                        continue
                    unchanged = and_(table.c.id == row.id, *(table.c[c] == old[c] for c in new))
                    result = await conn.execute(update(table).where(unchanged).values(**new))
                    if result.rowcount == 1:
                        report.rows_rotated += 1
                        report.values_rotated += len(new)
                    else:
                        report.rows_changed_meanwhile += 1
            report.rows_seen += len(rows)
            if progress is not None and rows:
                progress(len(rows))
            if len(rows) < batch_size:
                break
            after = rows[-1].id
    return report
