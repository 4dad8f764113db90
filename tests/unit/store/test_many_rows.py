"""The multi-row SQL of :mod:`mailport.store.many_rows`: SQLAlchemy's single-row INSERT with its
VALUES group repeated, what follows it kept; anything else refused."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Column, DateTime
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql import asyncpg, insert

from mailport.store.many_rows import multi_row_sql, stored_form
from mailport.store.tables import events, thread_roots


def test_the_values_group_is_repeated_and_the_conflict_clause_kept() -> None:
    single = str(
        sqlite.insert(thread_roots)
        .on_conflict_do_nothing(index_elements=["mailbox_id", "thread_key"])
        .compile(dialect=sqlite.dialect(), column_keys=["mailbox_id", "thread_key", "root", "created_at"])
    )
    assert single.count("(?, ?, ?, ?)") == 1
    three = multi_row_sql(single, 3)
    assert three == single.replace("(?, ?, ?, ?)", "(?, ?, ?, ?), (?, ?, ?, ?), (?, ?, ?, ?)")
    assert three.endswith("ON CONFLICT (mailbox_id, thread_key) DO NOTHING")
    assert multi_row_sql(single, 1) == single


def test_numbered_parameters_go_on_from_row_to_row_with_their_casts() -> None:
    columns = ["id", "payload", "created_at"]
    single = str(
        insert(events)
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(events.c.seq, events.c.idempotency_key)
        .compile(dialect=asyncpg.dialect(), column_keys=columns)
    )
    group = "($1::VARCHAR, $2::VARCHAR, $3::TIMESTAMP WITH TIME ZONE)"
    assert group in single
    two = multi_row_sql(single, 2)
    assert two == single.replace(group, group + ", ($4::VARCHAR, $5::VARCHAR, $6::TIMESTAMP WITH TIME ZONE)")
    assert two.endswith(
        "ON CONFLICT (idempotency_key) DO NOTHING RETURNING events.seq, events.idempotency_key"
    )
    assert multi_row_sql(single, 1) == single


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO t (a, b) VALUES (%s, %s)",  # another parameter style
        "INSERT INTO t (a) SELECT a FROM u",  # no VALUES group
        "INSERT INTO t (a) VALUES (?) ; INSERT INTO t (a) VALUES (?)",  # two statements
        "INSERT INTO t (a, b) VALUES (?, $2)",  # two styles at once
    ],
)
def test_anything_but_a_single_row_insert_is_refused(sql: str) -> None:
    with pytest.raises(ValueError, match="single-row"):
        multi_row_sql(sql, 2)


def test_numbered_parameters_out_of_order_are_refused() -> None:
    with pytest.raises(ValueError, match="numbered"):
        multi_row_sql("INSERT INTO t (a, b) VALUES ($2, $1)", 2)


def test_sqlite_timestamps_are_sqlalchemys_text_made_faster() -> None:
    """The fast formatter gives SQLAlchemy's own text for every instant (any zone, any
    microsecond), and a column SQLAlchemy stores otherwise keeps SQLAlchemy's processor."""
    dialect = sqlite.dialect()
    column = thread_roots.c.created_at
    sqlalchemys = column.type.dialect_impl(dialect).bind_processor(dialect)
    fast = stored_form(column, dialect)
    assert fast is not None and fast is not sqlalchemys
    chance = random.Random(21)
    for _ in range(2000):
        zone = timezone(timedelta(minutes=chance.randrange(-14 * 60, 14 * 60 + 1)))
        at = datetime(2000, 1, 1, tzinfo=UTC) + timedelta(
            seconds=chance.randrange(0, 40 * 365 * 86400),
            microseconds=chance.choice([0, chance.randrange(10**6)]),
        )
        assert fast(at.astimezone(zone)) == sqlalchemys(at.astimezone(zone))
    with pytest.raises(ValueError, match="naive"):
        fast(datetime(2026, 12, 7, 12, 0))
    naive_column = Column("at", DateTime())  # stores local fields: not the fast formatter's
    assert stored_form(naive_column, dialect) is not fast
    assert stored_form(column, asyncpg.dialect()) is not fast  # PostgreSQL takes datetimes
