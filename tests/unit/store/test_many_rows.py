"""The multi-row SQL of :mod:`mailport.store.many_rows`: SQLAlchemy's single-row INSERT with its
VALUES group repeated, what follows it kept; anything else refused."""

from __future__ import annotations

import pytest
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql import asyncpg, insert

from mailport.store.many_rows import multi_row_sql
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
