"""The multi-row SQL of :mod:`mailport.store.many_rows`: SQLAlchemy's single-row INSERT with its
VALUES group repeated, what follows it kept; anything else refused."""

from __future__ import annotations

import pytest
from sqlalchemy.dialects import sqlite

from mailport.store.many_rows import multi_row_sql
from mailport.store.tables import thread_roots


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


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO t (a, b) VALUES (%s, %s)",  # another parameter style
        "INSERT INTO t (a) SELECT a FROM u",  # no VALUES group
        "INSERT INTO t (a) VALUES (?) ; INSERT INTO t (a) VALUES (?)",  # two statements
    ],
)
def test_anything_but_a_single_row_qmark_insert_is_refused(sql: str) -> None:
    with pytest.raises(ValueError, match="single-row"):
        multi_row_sql(sql, 2)
