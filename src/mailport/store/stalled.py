"""End the PostgreSQL sessions of mailport processes that stopped talking in the middle of a query.

``idle_in_transaction_session_timeout`` (:func:`mailport.store.database.open_database`) ends a
session that sits inside a transaction without sending anything, so a paused process (SIGSTOP, a
frozen VM, a partition) cannot hold its row locks -- a fenced lease row, an endpoint's row --
for longer than a lease. It has a gap: asyncpg prepares a statement with Parse, Describe and
*Flush*, and sends Bind, Execute and Sync only once the description came back. Between the two
the server waits for the client in the state ``active`` (``ClientRead``), which neither that
timeout nor ``statement_timeout`` covers (measured on PostgreSQL 15: the session and its locks
stayed until the paused process ran again). A process paused in that window held a lease row
locked for as long as it stayed paused, and the worker taking its work over waited as long.
A process paused while a result larger than the socket's buffers comes in leaves its session
``active`` too, writing (``ClientWrite``).

PostgreSQL 17's ``transaction_timeout`` would close the gap, but mailport supports older
servers, and no driver setting removes the split (SQLAlchemy prepares every parametrised
statement). So every live process, with its heartbeat, ends the sessions of its own
``application_name`` that have been waiting in those states for longer than the idle limit: the
same rule as the server's, applied to the states the server leaves out. A healthy session is in
them for a round trip, or while its client reads a result as fast as it comes.
"""

from __future__ import annotations

import logging

from sqlalchemy import text

from mailport.store.database import APPLICATION_NAME, Database

log = logging.getLogger(__name__)

_STALLED = text(
    """
    SELECT pid, pg_terminate_backend(pid) AS ended
    FROM pg_stat_activity
    WHERE datname = current_database()
      AND usename = current_user
      AND application_name = :application
      AND pid <> pg_backend_pid()
      AND state = 'active'
      AND wait_event IN ('ClientRead', 'ClientWrite')
      AND xact_start IS NOT NULL
      AND state_change < now() - make_interval(secs => :seconds)
    """
)


async def end_stalled_sessions(database: Database) -> list[int]:
    """End the stalled sessions of mailport's processes on this database; returns their pids.
    Nothing to do on SQLite (one machine, no server sessions) or without an idle limit."""
    seconds = database.idle_transaction_seconds
    if database.dialect != "postgresql" or seconds is None:
        return []
    async with database.connect() as conn:
        rows = list(await conn.execute(_STALLED, {"application": APPLICATION_NAME, "seconds": seconds}))
    ended = [int(row.pid) for row in rows if row.ended]
    for pid in ended:
        log.warning(
            "ended database session %d: it stopped in the middle of a query, inside a transaction, "
            "for over %.0f s (a paused process; its locks are free again)",
            pid,
            seconds,
        )
    return ended
